/**
 * main.ts as an admin runs it: a real process with Mastodon's environment,
 * the same permission flags as `deno task start`.
 */
import assert from "node:assert/strict";
import { SseReader, WsClient } from "../_support/clients.ts";
import { serviceEnv, startServices } from "../_support/stack.ts";
import { freePort } from "../../scripts/free_port.ts";

const PERMISSIONS = [
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-sys=hostname,osRelease",
];

function spawnMain(env: Record<string, string>, extraFlags: string[] = []) {
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...PERMISSIONS,
      ...extraFlags,
      new URL("../../main.ts", import.meta.url).pathname,
    ],
    env: { LOG_LEVEL: "warn", ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Polls a readiness check until it passes (the process starts asynchronously). */
async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

Deno.test("A bad variable stops start-up with one line naming it", async () => {
  const child = spawnMain({ PORT: "abc" });
  const { code, stderr, stdout } = await child.output();
  assert.equal(code, 1);
  const lines = new TextDecoder().decode(stderr).trim().split("\n");
  assert.equal(lines.length, 1);
  assert.match(lines[0], /PORT/);
  assert.match(lines[0], /"abc"/);
  assert.equal(stdout.length, 0);
});

Deno.test("SIGTERM closes WebSockets with 1001, ends SSE streams and exits 0", async () => {
  const services = await startServices();
  const port = freePort();
  const child = spawnMain({ ...serviceEnv(services), PORT: String(port) });
  const base = `127.0.0.1:${port}`;
  await until(async () => (await fetch(`http://${base}/api/v1/streaming/health`)).ok, "health");
  const sse = await SseReader.open(`http://${base}/api/v1/streaming/user?access_token=token-alice`);
  const ws = await WsClient.open(`ws://${base}/api/v1/streaming?access_token=token-alice`);
  await sse.contains(":)\n");
  child.kill("SIGTERM");
  assert.equal((await ws.closed()).code, 1001);
  await sse.end();
  assert.equal(sse.error, undefined, "the SSE response was ended, not cut");
  const { code } = await child.output();
  assert.equal(code, 0);
  await services.close();
});

Deno.test("SOCKET listens on a unix socket that everyone may use", async () => {
  const services = await startServices();
  const dir = await Deno.makeTempDir();
  const path = `${dir}/streaming.sock`;
  const child = spawnMain({ ...serviceEnv(services), SOCKET: path }, [`--allow-write=${dir}`]);
  const get = async () => {
    const conn = await Deno.connect({ transport: "unix", path });
    await conn.write(new TextEncoder().encode(
      "GET /api/v1/streaming/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ));
    const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
    return text;
  };
  await until(async () => (await get()).startsWith("HTTP/1.1 200"), "health over the socket");
  assert.match(await get(), /\r\n\r\nOK$/);
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o666);
  child.kill("SIGTERM");
  assert.equal((await child.output()).code, 0);
  await Deno.remove(dir, { recursive: true });
  await services.close();
});
