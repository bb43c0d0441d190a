import assert from "node:assert/strict";
import { Metrics, sumWorkers, type WorkerSnapshot } from "../../src/metrics.ts";
import { ProcessMetrics } from "../../src/process_metrics.ts";
import { planWorkers } from "../../src/workers.ts";

const TCP = { kind: "tcp" as const, hostname: "127.0.0.1", port: 4000 };
const UNIX = { kind: "unix" as const, path: "/run/sluice.sock" };

Deno.test("planWorkers: auto is the CPU count, DB_POOL is split and never exceeded", async (t) => {
  await t.step("auto on 4 CPUs, DB_POOL=10", () => {
    const plan = planWorkers({
      requested: "auto",
      cpus: 4,
      listen: TCP,
      pool: 10,
      reusePort: true,
    });
    assert.equal(plan.count, 4);
    assert.deepEqual(plan.pools, [3, 3, 2, 2]);
    assert.deepEqual(plan.warnings, []);
    assert.match(plan.reason, /auto: 4 CPUs/);
  });
  await t.step("a count beyond the CPUs is honoured", () => {
    assert.equal(
      planWorkers({ requested: 3, cpus: 1, listen: TCP, pool: 10, reusePort: true }).count,
      3,
    );
  });
  await t.step("more workers than DB_POOL connections: one connection each", () => {
    const plan = planWorkers({ requested: 4, cpus: 4, listen: TCP, pool: 2, reusePort: true });
    assert.equal(plan.count, 2);
    assert.deepEqual(plan.pools, [1, 1]);
    assert.match(plan.warnings[0], /DB_POOL=2/);
  });
  await t.step("the pool shares always add up to DB_POOL", () => {
    for (let pool = 1; pool <= 20; pool++) {
      for (let requested = 1; requested <= 8; requested++) {
        const plan = planWorkers({ requested, cpus: 8, listen: TCP, pool, reusePort: true });
        assert.equal(plan.pools.reduce((a, b) => a + b), pool);
        assert.ok(plan.pools.every((n) => n >= 1));
      }
    }
  });
  await t.step("a unix socket: one worker; a warning only when a count was asked for", () => {
    const auto = planWorkers({
      requested: "auto",
      cpus: 4,
      listen: UNIX,
      pool: 10,
      reusePort: true,
    });
    assert.equal(auto.count, 1);
    assert.deepEqual(auto.warnings, []);
    const asked = planWorkers({ requested: 3, cpus: 4, listen: UNIX, pool: 10, reusePort: true });
    assert.equal(asked.count, 1);
    assert.deepEqual(asked.pools, [10]);
    assert.match(asked.warnings[0], /SOCKET/);
  });
  await t.step("no SO_REUSEPORT (no --unstable-net): one worker, the flag named", () => {
    const plan = planWorkers({
      requested: "auto",
      cpus: 2,
      listen: TCP,
      pool: 10,
      reusePort: false,
    });
    assert.equal(plan.count, 1);
    assert.match(plan.warnings[0], /--unstable-net/);
  });
  await t.step("one worker needs no SO_REUSEPORT and warns of nothing", () => {
    const plan = planWorkers({ requested: 1, cpus: 2, listen: TCP, pool: 10, reusePort: false });
    assert.equal(plan.count, 1);
    assert.deepEqual(plan.warnings, []);
  });
});

function snapshot(worker: number, sse: number, ws: number, heapBytes = 100): WorkerSnapshot {
  const metrics = new Metrics();
  metrics.connectedClients.set(sse, { type: "eventsource" });
  metrics.connectedClients.set(ws, { type: "websocket" });
  metrics.redisMessagesReceived.inc({}, worker * 10);
  return { ...metrics.snapshot(worker), heapBytes };
}

Deno.test("sumWorkers adds every series of every worker, labels kept apart", () => {
  const summed = sumWorkers([snapshot(1, 3, 4), snapshot(2, 5, 0)]);
  const clients = summed.find((m) => m.name === "connected_clients")!;
  assert.deepEqual(
    new Map(clients.series),
    new Map([['{type="websocket"}', 4], ['{type="eventsource"}', 8]]),
  );
  const received = summed.find((m) => m.name === "redis_messages_received_total")!;
  assert.deepEqual(received.series, [["", 30]]);
  assert.equal(received.type, "counter");
});

Deno.test("renderInstance: sums, the worker series, and the process series once with the heaps summed", async () => {
  const process = new ProcessMetrics({ allowed: () => false });
  const text = await new Metrics({ process }).renderInstance(
    [snapshot(1, 3, 4, 1000), snapshot(2, 5, 0, 2000)],
    { restarts: 2 },
  );
  assert.match(text, /^connected_clients\{type="eventsource"\} 8$/m);
  assert.match(text, /^sluice_workers 2$/m);
  assert.match(text, /^sluice_worker_restarts_total 2$/m);
  assert.match(text, /^sluice_worker_connected_clients\{worker="1"\} 7$/m);
  assert.match(text, /^sluice_worker_connected_clients\{worker="2"\} 5$/m);
  assert.match(text, /^process_heap_bytes 3000$/m);
  assert.equal(text.match(/^# TYPE process_cpu_seconds_total /gm)?.length, 1);
  assert.equal(text.match(/^# TYPE connected_clients /gm)?.length, 1);
});
