import assert from "node:assert/strict";
import { Metric, Metrics } from "../../src/metrics.ts";

Deno.test("Mastodon's metrics are exposed with their names, types and primed labels", () => {
  const text = new Metrics().render();
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
