/** Connection URLs split by hand (src/_connection_url.ts). */
import assert from "node:assert/strict";
import { splitUrl } from "../../src/_connection_url.ts";
import { ConfigError } from "../../src/errors.ts";

/** The parts of a URL with the query as text, for deepEqual. */
function parts(text: string) {
  const { query, ...rest } = splitUrl("X_URL", text);
  return { ...rest, query: query.toString() };
}

const NONE = { username: "", password: "", host: "", port: "", path: "", query: "" };

Deno.test("splitUrl splits connection URLs, including forms WHATWG URL rejects", async (t) => {
  const table: [string, string, ReturnType<typeof parts>][] = [
    [
      "every part, percent-decoded",
      "postgres://us%3Aer:p%40ss@db.example:5433/main?sslmode=require",
      {
        scheme: "postgres",
        username: "us:er",
        password: "p@ss",
        host: "db.example",
        port: "5433",
        path: "/main",
        query: "sslmode=require",
      },
    ],
    ["an empty host after credentials", "postgres://mastodon@/live?host=/run/postgresql", {
      ...NONE,
      scheme: "postgres",
      username: "mastodon",
      path: "/live",
      query: "host=%2Frun%2Fpostgresql",
    }],
    ["userinfo ends at its last @", "redis://a@b:c@d@host", {
      ...NONE,
      scheme: "redis",
      username: "a@b",
      password: "c@d",
      host: "host",
    }],
    ["an IPv6 literal loses its brackets", "redis://[::1]:6380/2", {
      ...NONE,
      scheme: "redis",
      host: "::1",
      port: "6380",
      path: "/2",
    }],
    ["a unix socket path", "unix:///var/run/redis.sock?db=3", {
      ...NONE,
      scheme: "unix",
      path: "/var/run/redis.sock",
      query: "db=3",
    }],
    ["the scheme is lower-cased and a fragment dropped", "REDIS://h#frag", {
      ...NONE,
      scheme: "redis",
      host: "h",
    }],
  ];
  for (const [name, text, expected] of table) {
    await t.step(name, () => assert.deepEqual(parts(text), expected));
  }
});

Deno.test("splitUrl errors name the variable and never the URL", async (t) => {
  const table: [string, string, string][] = [
    [
      "no scheme",
      "//db.example:5432",
      "Cannot parse X_URL: expected scheme://[user[:password]@]host[:port][/path]",
    ],
    [
      "a bad escape in the password",
      "redis://u:s3cr%zz@h",
      "Cannot parse X_URL: invalid percent-encoding",
    ],
  ];
  for (const [name, text, message] of table) {
    await t.step(name, () => {
      assert.throws(() => splitUrl("X_URL", text), (error) => {
        assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${error}`);
        assert.equal(error.message, message);
        return true;
      });
    });
  }
});
