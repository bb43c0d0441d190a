import assert from "node:assert/strict";
import { createLogger, redactUrl } from "../../src/log.ts";

const url = (pathAndQuery: string) => new URL("http://streaming.test" + pathAndQuery);

Deno.test("redactUrl redacts the token from the parsed query, whatever its encoding", async (t) => {
  const table: Array<[name: string, given: string, logged: string]> = [
    ["plain", "/p?access_token=SECRET", "/p?access_token=[Redacted]"],
    ["name with %5F", "/p?access%5Ftoken=SECRET", "/p?access%5Ftoken=[Redacted]"],
    ["name with lower-case %5f", "/p?access%5ftoken=SECRET", "/p?access%5ftoken=[Redacted]"],
    ["first letter escaped", "/p?%61ccess_token=SECRET", "/p?%61ccess_token=[Redacted]"],
    [
      "every letter escaped, mixed case",
      "/p?%61%63%63%65%73%73%5F%74%6f%6B%65%6E=SECRET",
      "/p?%61%63%63%65%73%73%5F%74%6f%6B%65%6E=[Redacted]",
    ],
    ["upper-case name", "/p?ACCESS_TOKEN=SECRET", "/p?ACCESS_TOKEN=[Redacted]"],
    [
      "repeated, in two encodings",
      "/p?access_token=SECRET&access%5Ftoken=SECRET2",
      "/p?access_token=[Redacted]&access%5Ftoken=[Redacted]",
    ],
    [
      "among other pairs, kept as sent",
      "/api/v1/streaming/hashtag?tag=caf%C3%A9&access_token=SECRET&stream=x+y&flag",
      "/api/v1/streaming/hashtag?tag=caf%C3%A9&access_token=[Redacted]&stream=x+y&flag",
    ],
    ["value containing =", "/p?access_token=SE=CRET", "/p?access_token=[Redacted]"],
    ["escaped value", "/p?access_token=%53ECRET", "/p?access_token=[Redacted]"],
    ["name without value", "/p?access_token", "/p?access_token=[Redacted]"],
    ["empty pairs kept", "/p?&&access_token=SECRET&", "/p?&&access_token=[Redacted]&"],
    ["no query", "/p", "/p"],
    ["empty query", "/p?", "/p"],
    ["other parameters only", "/p?stream=public&local=true", "/p?stream=public&local=true"],
  ];
  for (const [name, given, logged] of table) {
    await t.step(name, () => {
      const parsed = url(given);
      assert.equal(redactUrl(parsed), logged);
      for (const token of parsed.searchParams.getAll("access_token")) {
        if (token !== "") assert.ok(!redactUrl(parsed).includes(token), token);
      }
    });
  }
});

Deno.test("redactUrl keeps a pair whose name does not parse as access_token", () => {
  // "??x": the query's first name is "?access_token", which does not authenticate.
  const given = url("/p??access_token=kept&access+token=kept&access%5token=kept");
  assert.equal(given.searchParams.get("access_token"), null);
  assert.equal(redactUrl(given), "/p??access_token=kept&access+token=kept&access%5token=kept");
});

Deno.test("Every record carries pid and hostname, in pino's field order", () => {
  const lines: string[] = [];
  const log = createLogger({ level: "info", name: "streaming", sink: (l) => lines.push(l) });
  log.info("one", { a: 1 });
  log.child({ module: "x" }).warn("two");
  log.debug("dropped");
  const records = lines.map((l) => JSON.parse(l));
  assert.deepEqual(records.map((r) => Object.keys(r)), [
    ["level", "time", "pid", "hostname", "name", "a", "msg"],
    ["level", "time", "pid", "hostname", "name", "module", "msg"],
  ]);
  for (const record of records) {
    assert.equal(record.pid, Deno.pid);
    assert.equal(record.hostname, Deno.hostname());
    assert.equal(record.name, "streaming");
  }
});

Deno.test({
  name: "Without --allow-sys=hostname the hostname is left out, the pid stays",
  permissions: { sys: false },
  fn() {
    const lines: string[] = [];
    createLogger({ level: "info", sink: (l) => lines.push(l) }).info("one");
    const record = JSON.parse(lines[0]);
    assert.equal(record.pid, Deno.pid);
    assert.ok(!("hostname" in record));
  },
});
