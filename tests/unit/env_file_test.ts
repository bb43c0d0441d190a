/** Env files: dotenv syntax and which file Mastodon reads (src/_env_file.ts). */
import assert from "node:assert/strict";
import { environment, type Getter, readEnvFile } from "../../src/_env_file.ts";
import { ConfigError } from "../../src/errors.ts";

function vars(entries: Record<string, string> = {}): Getter {
  const map = new Map(Object.entries(entries));
  return (name) => map.get(name);
}

function assertConfigError(run: () => unknown, message: string): void {
  assert.throws(run, (error) => {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
    assert.equal(error.message, message);
    return true;
  });
}

Deno.test("readEnvFile understands dotenv syntax", async (t) => {
  const table: [string, string, Record<string, string>][] = [
    ["KEY=value lines", "A=1\nB=two", { A: "1", B: "two" }],
    ["an export prefix", "export A=1\n  export B = 2", { A: "1", B: "2" }],
    ["blank lines and full-line comments", "\n# comment\n  # indented\n\nA=1\n", { A: "1" }],
    ["whitespace around bare values is trimmed", "A =   spaced out   ", { A: "spaced out" }],
    ["a comment after a bare value", "A=value # note", { A: "value" }],
    ["a bare value ends at # even without a space", "A=abc#def", { A: "abc" }],
    ["single quotes keep # and \\n literally", "A='x # y\\n'", { A: "x # y\\n" }],
    ["double quotes expand \\n and \\r", 'A="one\\ntwo\\r"', { A: "one\ntwo\r" }],
    ["backticks may hold both quote kinds", 'A=`it\'s "so"`', { A: `it's "so"` }],
    ["a comment after a quoted value", 'A="x" # note', { A: "x" }],
    ["a quoted value may span lines", 'A="line 1\nline 2"\nB=3', { A: "line 1\nline 2", B: "3" }],
    ["an unterminated quote is kept as text", 'A="open\nB=2', { A: '"open', B: "2" }],
    ["empty values", "A=\nB=''\nC=\"\"", { A: "", B: "", C: "" }],
    ["CRLF line endings", "A=1\r\nB=2\r\n", { A: "1", B: "2" }],
    ["keys may hold dots and dashes", "a.b-c_D=1", { "a.b-c_D": "1" }],
    ["lines that are not entries are skipped", "garbage\nA=1", { A: "1" }],
    ["a later duplicate wins", "A=1\nA=2", { A: "2" }],
  ];
  for (const [name, text, expected] of table) {
    await t.step(name, () => assert.deepEqual(Object.fromEntries(readEnvFile(text)), expected));
  }
});

Deno.test("environment reads the env file by Mastodon's rule, process variables winning", async (t) => {
  const files = new Map([
    [".env", "SOURCE=dotenv\nPORT=4001"],
    [".env.production", "SOURCE=production"],
    ["/etc/sluice.env", "SOURCE=explicit"],
  ]);
  const readTextFile = (path: string) => files.get(path);
  const table: [string, Record<string, string>, string | undefined, string | undefined][] = [
    ["development reads .env", {}, undefined, "dotenv"],
    [
      "NODE_ENV=production reads .env.production",
      { NODE_ENV: "production" },
      undefined,
      "production",
    ],
    ["NODE_ENV=staging reads .env", { NODE_ENV: "staging" }, undefined, "dotenv"],
    ["an explicit file is read instead", { NODE_ENV: "production" }, "/etc/sluice.env", "explicit"],
    ["process variables win", { SOURCE: "process" }, undefined, "process"],
    ["an empty process variable still wins", { SOURCE: "" }, undefined, ""],
  ];
  for (const [name, processVars, envFile, expected] of table) {
    await t.step(name, () => {
      const get = environment({ get: vars(processVars), readTextFile, envFile });
      assert.equal(get("SOURCE"), expected);
    });
  }
  await t.step("a missing default file is fine", () => {
    const get = environment({ get: vars({ A: "1" }), readTextFile: () => undefined });
    assert.equal(get("A"), "1");
    assert.equal(get("B"), undefined);
  });
  await t.step("a missing explicit file stops start-up naming the path", () => {
    assertConfigError(
      () => environment({ get: vars(), readTextFile, envFile: "/nope.env" }),
      'Cannot read env file "/nope.env": no such file',
    );
  });
});
