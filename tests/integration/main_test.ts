/**
 * main.ts as an admin runs it: a real process with Mastodon's environment
 * and narrow-enough permission flags (never `--allow-all`).
 */
import assert from "node:assert/strict";
import { SseReader, WsClient } from "../_support/clients.ts";
import { spawnMain } from "../_support/main_process.ts";
import { serviceEnv, startServices } from "../_support/stack.ts";
import { freePort } from "../../scripts/free_port.ts";

/** Variables that point Sluice at nothing: enough to start, for tests of start-up alone. */
function nowhere(): Record<string, string> {
  return { PORT: String(freePort()), REDIS_PORT: String(freePort()), DB_PORT: String(freePort()) };
}

Deno.test("A bad variable stops start-up with one line naming it", async () => {
  const main = spawnMain({ PORT: "abc" });
  const { code, stderr } = await main.exited();
  assert.equal(code, 1);
  const lines = stderr.trim().split("\n");
  assert.equal(lines.length, 1);
  assert.match(lines[0], /PORT/);
  assert.match(lines[0], /"abc"/);
  assert.deepEqual([...main.logs.records, ...main.logs.other], [], "nothing on stdout");
});

Deno.test("SIGTERM closes WebSockets with 1001, ends SSE streams and exits 0", async () => {
  const services = await startServices();
  const port = freePort();
  const main = spawnMain({ ...serviceEnv(services), PORT: String(port) });
  const base = `127.0.0.1:${port}`;
  await main.listening();
  const sse = await SseReader.open(`http://${base}/api/v1/streaming/user?access_token=token-alice`);
  const ws = await WsClient.open(`ws://${base}/api/v1/streaming?access_token=token-alice`);
  await sse.contains(":)\n");
  main.child.kill("SIGTERM");
  assert.equal((await ws.closed()).code, 1001);
  await sse.end();
  assert.equal(sse.error, undefined, "the SSE response was ended, not cut");
  const { code } = await main.exited();
  assert.equal(code, 0);
  await services.close();
});

Deno.test("SOCKET listens on a unix socket that everyone may use", async () => {
  const services = await startServices();
  const dir = await Deno.makeTempDir();
  const path = `${dir}/streaming.sock`;
  const main = spawnMain({ ...serviceEnv(services), SOCKET: path }, {
    flags: [`--allow-write=${dir}`],
  });
  await main.listening();
  const conn = await Deno.connect({ transport: "unix", path });
  await conn.write(new TextEncoder().encode(
    "GET /api/v1/streaming/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  ));
  const text = new TextDecoder().decode(await new Response(conn.readable).arrayBuffer());
  assert.match(text, /^HTTP\/1\.1 200 /);
  assert.match(text, /\r\n\r\nOK$/);
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o666);
  main.child.kill("SIGTERM");
  assert.equal((await main.exited()).code, 0);
  await Deno.remove(dir, { recursive: true });
  await services.close();
});

Deno.test("Obsolete variables are logged once each as ignored", async () => {
  const main = spawnMain({ ...nowhere(), STREAMING_CLUSTER_NUM: "4", AUTHORIZED_FETCH: "true" });
  await main.listening();
  await main.answering();
  main.child.kill("SIGTERM");
  assert.equal((await main.exited()).code, 0);
  const mentions = (name: string) =>
    main.logs.filter((r) => String(r.msg).includes(name)).map((r) => [r.level, r.msg]);
  for (const name of ["STREAMING_CLUSTER_NUM", "AUTHORIZED_FETCH"]) {
    const [record, ...more] = mentions(name);
    assert.equal(record?.[0], "warn", `${name} is warned about`);
    assert.match(String(record[1]), /ignored/);
    assert.deepEqual(more, [], `${name} is logged once`);
  }
  assert.deepEqual(mentions("WHITELIST_MODE"), [], "variables that are not set are not mentioned");
  assert.deepEqual(mentions("LIMITED_FEDERATION_MODE"), []);
});

Deno.test("--env-file=PATH reads the variables from that file", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await t.step("Sluice listens where the file says", async () => {
      const vars = nowhere();
      const path = `${dir}/streaming.env`;
      await Deno.writeTextFile(
        path,
        Object.entries(vars).map(([k, v]) => `${k}=${v}`).join("\n") + "\nWHITELIST_MODE=true\n",
      );
      const main = spawnMain({}, { args: [`--env-file=${path}`] });
      await main.listening();
      await main.answering(vars.PORT);
      main.child.kill("SIGTERM");
      assert.equal((await main.exited()).code, 0);
      const warned = main.logs.filter((r) => String(r.msg).includes("WHITELIST_MODE"));
      assert.equal(warned.length, 1, "WHITELIST_MODE from the file is read too");
    });
    await t.step("a missing file stops start-up with one line naming it", async () => {
      const path = `${dir}/missing.env`;
      const main = spawnMain(nowhere(), { args: [`--env-file=${path}`] });
      const { code, stderr } = await main.exited();
      assert.equal(code, 1);
      const lines = stderr.trim().split("\n");
      assert.equal(lines.length, 1, stderr);
      assert.ok(lines[0].includes(path), lines[0]);
      assert.deepEqual([...main.logs.records, ...main.logs.other], [], "nothing on stdout");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
