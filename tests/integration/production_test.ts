/**
 * The README's production command, exactly as written, with Mastodon's
 * production recipe in `.env.production`: PostgreSQL through its socket
 * directory, Redis through `unix://`, Sluice listening on `SOCKET`. An SSE
 * client on that socket gets a published event, and SIGTERM goes through
 * `deno task` and the launcher to Sluice.
 */
import assert from "node:assert/strict";
import { startPostgresServer } from "../../scripts/postgres_server.ts";
import { startRedisServer } from "../../scripts/redis_server.ts";
import { RespConnection } from "../../src/redis/resp.ts";
import { SseReader } from "../_support/clients.ts";
import { runReadmeCommand } from "../_support/readme_command.ts";

/** Redis MONITOR: resolves once a command matching `pattern` has been seen. */
async function monitorRedis(port: number) {
  const abort = new AbortController();
  const conn = await RespConnection.open(
    { kind: "tcp", host: "127.0.0.1", port, tls: false },
    abort.signal,
  );
  assert.equal(await conn.call(["MONITOR"]), "OK");
  return {
    async seen(pattern: RegExp): Promise<string> {
      for (;;) {
        const line = await conn.read();
        if (line === undefined) throw new Error(`Redis closed MONITOR before ${pattern}`);
        if (typeof line === "string" && pattern.test(line)) return line;
      }
    },
    close: () => conn.close(),
  };
}

/** A GET over a unix socket, its raw bytes (headers and chunked body) read as they come. */
async function getOverUnixSocket(path: string, target: string): Promise<SseReader> {
  const conn = await Deno.connect({ transport: "unix", path });
  await conn.write(new TextEncoder().encode(`GET ${target} HTTP/1.1\r\nHost: localhost\r\n\r\n`));
  return new SseReader(new Response(conn.readable));
}

Deno.test("The README's production command serves Mastodon's production recipe over unix sockets", async () => {
  const dir = await Deno.makeTempDir({ prefix: "sluice-production-" });
  const redisSocket = `${dir}/redis.sock`;
  await using pg = await startPostgresServer();
  await using redis = await startRedisServer({
    args: ["--unixsocket", redisSocket, "--unixsocketperm", "777"],
  });
  const socket = `${dir}/streaming.sock`;
  await Deno.writeTextFile(
    `${dir}/.env.production`,
    [
      "# Mastodon's production recipe (what mastodon:setup writes), as the streaming server sees it",
      "LOCAL_DOMAIN=example.com",
      "SECRET_KEY_BASE=not-read-by-the-streaming-server",
      `DB_HOST=${pg.socketDir}`,
      `DB_PORT=${pg.port}`,
      `DB_USER=${pg.user}`,
      `DB_NAME=${pg.database}`,
      "DB_PASS=",
      `REDIS_URL=unix://${redisSocket}`,
      `SOCKET=${socket}`,
    ].join("\n") + "\n",
  );
  const monitor = await monitorRedis(redis.port);
  const sluice = await runReadmeCommand(dir);
  try {
    await sluice.logs.find((r) => /listening on unix:/.test(String(r.msg)), "listening");
    await sluice.logs.find((r) => r.msg === "Redis subscriber connected", "Redis through unix://");
    const ready = await getOverUnixSocket(socket, "/api/v1/streaming/health/ready");
    await ready.contains("\r\n\r\nOK");
    await ready.close();
    const sse = await getOverUnixSocket(
      socket,
      "/api/v1/streaming/public?access_token=token-alice",
    );
    await monitor.seen(/"subscribe".*"timeline:public"/i);
    await sse.contains(":)");
    await publish(redis.port, "timeline:public", '{"event":"delete","payload":"42"}');
    await sse.contains("event: delete\ndata: 42\n\n");
    await sse.close();
    sluice.child.kill("SIGTERM");
    const { code, stderr } = await sluice.exited();
    assert.equal(code, 0, stderr);
    await sluice.logs.find((r) => r.msg === "Shutting down", "Sluice's own shutdown");
    await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound, "the socket is removed on exit");
  } finally {
    monitor.close();
    try {
      sluice.child.kill("SIGTERM"); // deno task passes it on to the launcher and Sluice
    } catch { /* already exited */ }
    await sluice.exited();
    await Deno.remove(dir, { recursive: true });
  }
});

async function publish(port: number, channel: string, message: string): Promise<void> {
  const abort = new AbortController();
  const conn = await RespConnection.open(
    { kind: "tcp", host: "127.0.0.1", port, tls: false },
    abort.signal,
  );
  try {
    assert.equal(await conn.call(["PUBLISH", channel, message]), 1, "one subscriber: Sluice");
  } finally {
    conn.close();
  }
}
