/**
 * The process series of /metrics under exactly the README's permissions
 * (the README's start command, not --allow-all): numbers, plausible ones,
 * and an open-descriptor count that follows the connections.
 */
import assert from "node:assert/strict";
import { freePort } from "../../scripts/free_port.ts";
import { runReadmeCommand } from "../_support/readme_command.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Every `process_*` series of one scrape, by name. */
async function processSeries(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const series = [...text.matchAll(/^(process_\w+) (\S+)$/gm)].map(([, name, value]) => {
    assert.match(value, /^\d+(\.\d+)?(e\+\d+)?$/, `${name} is a number: ${value}`);
    return [name, Number(value)];
  });
  return Object.fromEntries(series);
}

/** A kept-alive connection that has been answered once, so the server surely holds it. */
async function heldConnection(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode("GET /api/v1/streaming/health HTTP/1.1\r\nHost: x\r\n\r\n"));
  const buffer = new Uint8Array(1024);
  let text = "";
  while (!text.endsWith("\r\n\r\nOK")) {
    const n = await conn.read(buffer);
    if (n === null) throw new Error(`connection closed after ${JSON.stringify(text)}`);
    text += decoder.decode(buffer.subarray(0, n));
  }
  return conn;
}

Deno.test("Process metrics are numbers under the README's permissions", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "sluice-metrics-" });
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/.env.production`,
    `PORT=${port}\nREDIS_PORT=${freePort()}\nDB_HOST=127.0.0.1\nDB_PORT=${freePort()}\n`,
  );
  const startedBefore = Date.now() / 1000;
  try {
    await t.step("the README's command grants no more than it lists", async () => {
      const printed = await runReadmeCommand(dir, ["--print-command"]);
      const { code, stderr } = await printed.exited();
      assert.equal(code, 0, stderr);
      const command = printed.logs.other.join("\n");
      assert.doesNotMatch(command, / (-A|--allow-all)\b/);
      assert.match(command, / --allow-run=ls,getconf /);
      assert.match(command, / --allow-net=127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+ /);
    });

    const sluice = await runReadmeCommand(dir);
    const connections: Deno.TcpConn[] = [];
    try {
      await sluice.logs.find((r) => /listening on http/.test(String(r.msg)), "listening");
      const before = await processSeries(port);
      await t.step("every process series is there and plausible", () => {
        assert.ok(before.process_cpu_seconds_total > 0, "CPU seconds");
        assert.ok(before.process_resident_memory_bytes > 10e6, "resident memory");
        assert.ok(before.process_heap_bytes > 1e6, "heap");
        const start = before.process_start_time_seconds;
        assert.ok(start >= startedBefore - 1 && start <= Date.now() / 1000, `start time ${start}`);
        assert.ok(before.process_open_fds >= 3, "open descriptors");
        assert.ok(before.process_max_fds >= before.process_open_fds, "maximum descriptors");
      });
      await t.step("open descriptors rise with open connections", async () => {
        for (let i = 0; i < 30; i++) connections.push(await heldConnection(port));
        const after = await processSeries(port);
        // A few descriptors of earlier child processes may close in between: a margin for them.
        assert.ok(
          after.process_open_fds >= before.process_open_fds + 24,
          `${before.process_open_fds} → ${after.process_open_fds}`,
        );
        assert.ok(after.process_cpu_seconds_total >= before.process_cpu_seconds_total);
      });
      assert.deepEqual(sluice.logs.filter((r) => /left out/.test(String(r.msg))), []);
    } finally {
      for (const conn of connections) conn.close();
      sluice.child.kill("SIGTERM");
      const { code, stderr } = await sluice.exited();
      assert.equal(code, 0, stderr);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
