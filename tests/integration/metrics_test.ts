/**
 * GET /metrics from a running Sluice: every metric src/metrics.ts defines
 * under `sluice_`, and Mastodon's own, have HELP and TYPE lines and series.
 */
import assert from "node:assert/strict";
import { Metric, Metrics, WORKER_METRICS } from "../../src/metrics.ts";
import { startServices, startSluice } from "../_support/stack.ts";

/** Mastodon's metric names and types, which dashboards already use. */
const MASTODON: Record<string, string> = {
  connected_clients: "gauge",
  connected_channels: "gauge",
  redis_subscriptions: "gauge",
  redis_messages_received_total: "counter",
  messages_sent_total: "counter",
  pg_pool_total_connections: "gauge",
  pg_pool_idle_connections: "gauge",
  pg_pool_waiting_queries: "gauge",
  process_cpu_seconds_total: "counter",
  process_resident_memory_bytes: "gauge",
  process_open_fds: "gauge",
  process_start_time_seconds: "gauge",
};

/** `sluice_*` names and types of every metric a fresh `Metrics` declares. */
function sluiceMetricsDeclared(): Record<string, string> {
  const declared = Object.values(new Metrics()).filter((m): m is Metric => m instanceof Metric);
  return Object.fromEntries(
    declared.filter((m) => m.name.startsWith("sluice_")).map((m) => [m.name, m.type]),
  );
}

Deno.test("/metrics shows every sluice_ metric and Mastodon's with HELP and TYPE", async () => {
  const services = await startServices();
  const app = await startSluice(services);
  try {
    const response = await fetch(`${app.http}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const sluice = sluiceMetricsDeclared();
    assert.ok(Object.keys(sluice).length >= 10, `only ${Object.keys(sluice)} declared`);
    for (const [name, type] of Object.entries({ ...MASTODON, ...sluice })) {
      assert.match(text, new RegExp(`^# HELP ${name} \\S`, "m"), `HELP of ${name}`);
      assert.match(text, new RegExp(`^# TYPE ${name} ${type}$`, "m"), `TYPE of ${name}`);
      assert.match(text, new RegExp(`^${name}(\\{[^}]*\\})? \\S+$`, "m"), `a series of ${name}`);
    }
    const exposed = [...text.matchAll(/^# TYPE (sluice_\w+) /gm)].map((m) => m[1]);
    assert.deepEqual(
      exposed.filter((name) => !(name in sluice) && !WORKER_METRICS.includes(name)),
      [],
      "exposed but not declared in Metrics",
    );
  } finally {
    await app.close();
    await services.close();
  }
});
