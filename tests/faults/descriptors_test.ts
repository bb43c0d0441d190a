/**
 * Fault: the process runs out of file descriptors (`ulimit -n 512`) under
 * 1,000 connection attempts. Sluice must keep its open streams, refuse what
 * it cannot accept, log the episode once, count it, and accept again once
 * descriptors are free, without exiting.
 */
import assert from "node:assert/strict";
import { SseReader } from "../_support/clients.ts";
import { PERMISSIONS, spawnMain, stopping } from "../_support/main_process.ts";
import { serviceEnv, startServices } from "../_support/stack.ts";
import { freePort } from "../../scripts/free_port.ts";

const MAIN = decodeURIComponent(new URL("../../main.ts", import.meta.url).pathname);
const STREAM = "/api/v1/streaming/public";
const REQUEST = new TextEncoder().encode(
  `GET ${STREAM} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token-alice\r\n\r\n`,
);

/** Opens a stream, retrying while the listener is down (refused or reset), until `deadlineMs`. */
async function openWhenAccepting(url: string, deadlineMs: number): Promise<SseReader> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    try {
      const reader = await SseReader.open(url, { Authorization: "Bearer token-alice" });
      if (reader.response.status === 200) return reader;
      await reader.close();
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, 200)); // the listener retries on its own
  }
}

Deno.test("Out of descriptors (ulimit -n 512, 1,000 attempts, 2 workers): open streams go on, the process survives and accepts again", async () => {
  const services = await startServices();
  const port = freePort();
  const main = spawnMain(
    { ...serviceEnv(services), PORT: String(port), SLUICE_WORKERS: "2" },
    {
      program: [
        "bash",
        "-c",
        'ulimit -n 512 && exec "$@"',
        "bash",
        Deno.execPath(),
        "run",
        "--unstable-net",
        ...PERMISSIONS,
        MAIN,
      ],
    },
  );
  const held: Deno.Conn[] = [];
  try {
    await stopping(main, async () => {
      await main.listening();
      const early = await SseReader.open(`http://127.0.0.1:${port}${STREAM}`, {
        Authorization: "Bearer token-alice",
      });
      await early.contains(":)");
      let refused = 0;
      for (let i = 0; i < 1000; i++) {
        try {
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          held.push(conn);
          await conn.write(REQUEST).catch(() => refused++);
        } catch {
          refused++;
        }
      }
      const failure = await main.logs.find(
        (r) => r.level === "error" && /Cannot accept connections/.test(String(r.msg)),
        "the listener failure logged",
      );
      assert.match(JSON.stringify(failure.err), /Too many open files|os error 24/);

      // The stream opened before goes on.
      await services.client.publish("timeline:public", '{"event":"delete","payload":"77"}');
      await early.contains("data: 77");

      for (const conn of held.splice(0)) conn.close();
      const later = await openWhenAccepting(`http://127.0.0.1:${port}${STREAM}`, 20_000);
      await later.contains(":)");
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const errors = Number(/^sluice_accept_errors_total (\d+)$/m.exec(metrics)?.[1]);
      assert.ok(errors >= 1, `accept errors counted: ${errors}`);
      console.log(`of 1,000 attempts ${refused} refused; ${errors} listener failures counted`);
      const logged = main.logs.filter((r) => /Cannot accept connections/.test(String(r.msg)));
      const workers = logged.map((r) => r.worker);
      assert.deepEqual(workers, [...new Set(workers)], "one log line per worker for the episode");
      await Promise.all([early.close(), later.close()]);
    });
  } finally {
    for (const conn of held) conn.close();
    await services.close();
  }
});
