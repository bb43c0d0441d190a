import assert from "node:assert/strict";
import { createLogger } from "../../src/log.ts";
import { Metric, Metrics } from "../../src/metrics.ts";
import { ProcessMetrics, type Runner } from "../../src/process_metrics.ts";

Deno.test("Mastodon's metrics are exposed with their names, types and primed labels", async () => {
  const text = await new Metrics().render();
  for (
    const [name, type] of [
      ["connected_clients", "gauge"],
      ["connected_channels", "gauge"],
      ["redis_subscriptions", "gauge"],
      ["redis_messages_received_total", "counter"],
      ["messages_sent_total", "counter"],
      ["pg_pool_total_connections", "gauge"],
      ["pg_pool_idle_connections", "gauge"],
      ["pg_pool_waiting_queries", "gauge"],
      ["process_cpu_seconds_total", "counter"],
      ["process_resident_memory_bytes", "gauge"],
      ["process_open_fds", "gauge"],
      ["process_start_time_seconds", "gauge"],
    ]
  ) {
    assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, "m"), name);
  }
  assert.match(text, /^connected_clients\{type="websocket"\} 0$/m);
  assert.match(text, /^connected_channels\{type="eventsource",channel="hashtag:local"\} 0$/m);
  assert.match(text, /^messages_sent_total\{type="eventsource"\} 0$/m);
});

Deno.test("A series keeps its value across inc, dec and set, and escapes label values", () => {
  const m = new Metric("x_total", "counter", "help", []);
  const series = m.series({ a: 'q"\\' });
  series.value += 2;
  m.inc({ a: 'q"\\' });
  m.dec({ a: 'q"\\' }, 0.5);
  assert.equal(m.get({ a: 'q"\\' }), 2.5);
  assert.equal(
    m.render(),
    '# HELP x_total help\n# TYPE x_total counter\nx_total{a="q\\"\\\\"} 2.5\n',
  );
});

/** The value of the one series of `name` in `text`, or undefined when it is left out. */
function value(text: string, name: string): number | undefined {
  const match = new RegExp(`^${name} (\\S+)$`, "m").exec(text);
  return match ? Number(match[1]) : undefined;
}

Deno.test("Process metrics: descriptors counted by ls and getconf, the rest without a permission", async () => {
  const calls: string[] = [];
  const run: Runner = (program, args) => {
    calls.push([program, ...args].join(" "));
    return Promise.resolve(program === "ls" ? "0\n1\n2\n7\n" : "1024\n");
  };
  const text = await new ProcessMetrics({ run, allowed: () => true }).render();
  assert.deepEqual(calls, [`ls -U /proc/${Deno.pid}/fd`, "getconf OPEN_MAX"]);
  assert.equal(value(text, "process_open_fds"), 4);
  assert.equal(value(text, "process_max_fds"), 1024);
  assert.match(text, /^# TYPE process_max_fds gauge$/m);
  assert.ok(value(text, "process_cpu_seconds_total")! > 0);
  assert.ok(value(text, "process_resident_memory_bytes")! > 1e6);
  const start = value(text, "process_start_time_seconds")!;
  assert.ok(start <= Date.now() / 1000 && start > Date.now() / 1000 - 3600, String(start));
  assert.doesNotMatch(text, /NaN/);
});

Deno.test("Process metrics: concurrent scrapes share one count", async () => {
  let runs = 0;
  const run: Runner = (program) => {
    runs++;
    return Promise.resolve(program === "ls" ? "0\n" : "8\n");
  };
  const metrics = new ProcessMetrics({ run, allowed: () => true });
  await Promise.all([metrics.render(), metrics.render(), metrics.render()]);
  assert.equal(runs, 2, "one ls and one getconf");
  await metrics.render();
  assert.equal(runs, 4, "a later scrape counts again");
});

Deno.test("Process metrics: without the tools, the two series are left out and one warning names the flag", async (t) => {
  const lines: string[] = [];
  const log = createLogger({ level: "info", sink: (line) => lines.push(line) });
  await t.step("not allowed to run them", async () => {
    const metrics = new ProcessMetrics({ log, allowed: () => false, run: () => Promise.reject() });
    for (let i = 0; i < 2; i++) {
      const text = await metrics.render();
      assert.equal(value(text, "process_open_fds"), undefined);
      assert.doesNotMatch(text, /process_max_fds|NaN/);
      assert.ok(value(text, "process_cpu_seconds_total")! > 0);
    }
    assert.equal(lines.length, 1, "warned once");
    assert.match(JSON.parse(lines[0]).msg, /--allow-run=ls,getconf/);
  });
  await t.step("a tool that fails or prints nonsense", async () => {
    lines.length = 0;
    for (const run of [() => Promise.reject(new Error("gone")), () => Promise.resolve("x")]) {
      const metrics = new ProcessMetrics({ log, allowed: () => true, run });
      const text = await metrics.render();
      assert.doesNotMatch(text, /process_open_fds|process_max_fds|NaN/);
    }
    assert.equal(lines.length, 2);
    assert.match(JSON.parse(lines[0]).msg, /gone/);
  });
});

Deno.test("Process metrics with the real ls and getconf count this process's descriptors", async () => {
  const metrics = new ProcessMetrics({ allowed: () => true });
  const before = value(await metrics.render(), "process_open_fds")!;
  const files = await Promise.all(Array.from({ length: 20 }, () => Deno.open(Deno.execPath())));
  try {
    const text = await metrics.render();
    // Pipes of earlier child processes may close in between: a margin for them.
    assert.ok(value(text, "process_open_fds")! >= before + 12, `${before} → ${text}`);
    assert.ok(value(text, "process_max_fds")! >= value(text, "process_open_fds")!);
  } finally {
    for (const file of files) file.close();
  }
});
