/**
 * SOCKET after a crash: the socket file a killed Sluice leaves behind is
 * removed at the next start when nothing listens on it; a socket another
 * process listens on, or a file that is not a socket, stops start-up with
 * one line instead of an uncaught AddrInUse.
 */
import assert from "node:assert/strict";
import { freePort } from "../../scripts/free_port.ts";
import { type MainProcess, spawnMain } from "../_support/main_process.ts";

/** Sluice on `socket`, pointed at no Redis or PostgreSQL (listening needs neither). */
function sluiceOn(socket: string): MainProcess {
  const dir = socket.slice(0, socket.lastIndexOf("/"));
  return spawnMain(
    { SOCKET: socket, REDIS_PORT: String(freePort()), DB_PORT: String(freePort()) },
    { flags: [`--allow-write=${dir}`] },
  );
}

async function health(socket: string): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path: socket });
  await conn.write(new TextEncoder().encode(
    "GET /api/v1/streaming/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  ));
  return new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
}

async function stop(main: MainProcess): Promise<void> {
  main.child.kill("SIGTERM");
  assert.equal((await main.exited()).code, 0);
}

Deno.test("A socket left by a killed Sluice is removed at the next start", async () => {
  const dir = await Deno.makeTempDir();
  const socket = `${dir}/streaming.sock`;
  try {
    const crashed = sluiceOn(socket);
    await crashed.listening();
    crashed.child.kill("SIGKILL");
    await crashed.exited();
    assert.ok((await Deno.lstat(socket)).isSocket, "kill -9 leaves the socket file behind");
    await assert.rejects(
      Deno.connect({ transport: "unix", path: socket }),
      Deno.errors.ConnectionRefused,
      "and nothing listens on it",
    );

    const next = sluiceOn(socket);
    await next.listening();
    const removed = next.logs.filter((r) => /stale unix socket/.test(String(r.msg)));
    assert.deepEqual(removed.map((r) => [r.level, r.path]), [["info", socket]]);
    assert.match(await health(socket), /\r\n\r\nOK$/);
    await stop(next);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A socket another process listens on stops start-up with one line", async (t) => {
  const dir = await Deno.makeTempDir();
  const socket = `${dir}/streaming.sock`;
  try {
    const first = sluiceOn(socket);
    await first.listening();
    await t.step("the second Sluice exits 1 naming the socket", async () => {
      const second = sluiceOn(socket);
      const { code, stderr } = await second.exited();
      assert.equal(code, 1);
      const lines = stderr.trim().split("\n");
      assert.equal(lines.length, 1, stderr);
      assert.match(lines[0], /another process is listening/);
      assert.ok(lines[0].includes(socket), lines[0]);
      assert.equal(second.logs.filter((r) => /listening on/.test(String(r.msg))).length, 0);
    });
    await t.step("and the first one still serves", async () => {
      assert.match(await health(socket), /\r\n\r\nOK$/);
    });
    await stop(first);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A file at SOCKET that is not a socket stops start-up with one line", async () => {
  const dir = await Deno.makeTempDir();
  const socket = `${dir}/streaming.sock`;
  try {
    await Deno.writeTextFile(socket, "not a socket");
    const main = sluiceOn(socket);
    const { code, stderr } = await main.exited();
    assert.equal(code, 1);
    assert.equal(stderr.trim().split("\n").length, 1, stderr);
    assert.match(stderr, /is not a socket/);
    assert.equal(await Deno.readTextFile(socket), "not a socket", "the file is left alone");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
