import assert from "node:assert/strict";
import { pg } from "../../deps.ts";
import {
  findPostgresBinDir,
  findPsql,
  type PostgresServer,
  startPostgresServer,
} from "../../scripts/postgres_server.ts";

/** Runs psql with the given connection arguments and returns its trimmed output. */
async function psql(args: string[], sql: string): Promise<string> {
  const program = await findPsql(await findPostgresBinDir());
  const output = await new Deno.Command(program, {
    args: ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", ...args, "-c", sql],
    stdin: "null",
  }).output();
  assert.ok(output.success, new TextDecoder().decode(output.stderr));
  return new TextDecoder().decode(output.stdout).trim();
}

function socketArgs(server: PostgresServer): string[] {
  return [
    "-h",
    server.socketDir,
    "-p",
    String(server.port),
    "-U",
    server.user,
    "-d",
    server.database,
  ];
}

Deno.test("startPostgresServer loads the Mastodon schema and the seed into mastodon_test", async () => {
  await using server = await startPostgresServer();
  assert.equal(server.database, "mastodon_test");
  assert.equal(
    await server.query("SELECT token FROM oauth_access_tokens WHERE id = 1"),
    "token-alice",
  );
  assert.equal(
    await server.query("SELECT username FROM accounts ORDER BY id LIMIT 2"),
    "alice\nbob",
  );
});

Deno.test("startPostgresServer with seed: false creates the tables but leaves them empty", async () => {
  await using server = await startPostgresServer({ seed: false });
  assert.equal(await server.query("SELECT count(*) FROM oauth_access_tokens"), "0");
  assert.equal(await server.query("SELECT to_regclass('custom_filter_keywords') IS NOT NULL"), "t");
});

Deno.test("the server accepts psql over TCP at its url and over the unix socket in socketDir", async () => {
  await using server = await startPostgresServer();
  assert.equal(server.url, `postgres://postgres@127.0.0.1:${server.port}/mastodon_test`);
  assert.equal(await psql([server.url], "SELECT inet_server_addr()"), "127.0.0.1");
  // inet_server_addr() is NULL (printed as nothing) on a unix-socket connection.
  assert.equal(await psql(socketArgs(server), "SELECT inet_server_addr()"), "");
  assert.equal(await psql(socketArgs(server), "SELECT count(*) FROM lists"), "2");
});

Deno.test("node-postgres reaches the server through the unix socket, as production installs do", async () => {
  await using server = await startPostgresServer();
  const { socketDir: host, port, user, database } = server;
  // A Client, not a Pool: Client.end() waits for the socket to close, Pool.end() does not.
  const client = new pg.Client({ host, port, user, database });
  await client.connect();
  try {
    const sql = "SELECT resource_owner_id FROM oauth_access_tokens WHERE token = $1";
    const result = await client.query(sql, ["token-bob"]);
    assert.deepEqual(result.rows, [{ resource_owner_id: "2" }]);
  } finally {
    await client.end();
  }
});

Deno.test("with a password, TCP clients must give it; the unix socket needs none", async () => {
  await using server = await startPostgresServer({ password: "pg pass#1" });
  const { host, port, user, database } = server;
  const connect = async (password?: string) => {
    const client = new pg.Client({ host, port, user, database, password });
    try {
      await client.connect();
      return (await client.query("SELECT 1 AS one")).rows[0].one;
    } finally {
      await client.end().catch(() => {});
    }
  };
  assert.equal(await connect("pg pass#1"), 1);
  await assert.rejects(connect("wrong"), /password authentication failed/);
  assert.equal(await server.query("SELECT count(*) FROM lists"), "2");
});

Deno.test("query() changes data and reports SQL errors", async () => {
  await using server = await startPostgresServer();
  await server.query("UPDATE oauth_access_tokens SET revoked_at = now() WHERE id = 1");
  assert.equal(
    await server.query("SELECT revoked_at IS NOT NULL FROM oauth_access_tokens WHERE id = 1"),
    "t",
  );
  await assert.rejects(server.query("SELECT * FROM no_such_table"), /no_such_table/);
});

Deno.test("restart() brings the server back on the same port with the same data", async () => {
  await using server = await startPostgresServer();
  const port = server.port;
  await server.query("INSERT INTO accounts (id, username) VALUES (100, 'zoe')");
  await server.restart();
  assert.equal(server.port, port);
  assert.equal(await psql([server.url], "SELECT username FROM accounts WHERE id = 100"), "zoe");
});

Deno.test("halt() stops the server until restart() brings it back with the same data", async () => {
  await using server = await startPostgresServer();
  await server.query("INSERT INTO accounts (id, username) VALUES (100, 'zoe')");
  await server.halt();
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: server.port }),
    Deno.errors.ConnectionRefused,
  );
  await server.restart();
  assert.equal(await psql([server.url], "SELECT username FROM accounts WHERE id = 100"), "zoe");
});

Deno.test("stop() shuts the server down and removes its directory", async () => {
  const server = await startPostgresServer();
  await server.stop();
  await assert.rejects(Deno.stat(server.socketDir), Deno.errors.NotFound);
  await assert.rejects(
    Deno.connect({ hostname: "127.0.0.1", port: server.port }),
    Deno.errors.ConnectionRefused,
  );
  await server.stop(); // a second stop is harmless
});
