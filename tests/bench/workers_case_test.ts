import assert from "node:assert/strict";
import { type LoadReport, perClient } from "../../bench/loadgen/report.ts";
import {
  parseTaskStat,
  readThreads,
  type ThreadSamples,
  threadShares,
  type ThreadTicks,
  windowShares,
} from "../../bench/scenarios/threads.ts";
import { parseInstanceMetrics } from "../../bench/scenarios/samplers.ts";
import { caseById } from "../../bench/scenarios/cases.ts";
import { lostNothing, threadRole, threadRows } from "../../bench/scenarios/g_workers.ts";
import type { RunRecord } from "../../bench/scenarios/report.ts";

// --- /proc/<pid>/task/<tid>/stat ----------------------------------------------------------------

/** A stat line of thread `tid` named `name` with utime 100 and stime 50. */
const STAT = (tid: number, name: string) =>
  `${tid} (${name}) S 1 2 3 4 5 6 7 8 9 10 100 50 0 0 20 0 1 0 777 1000 50`;

Deno.test("parseTaskStat reads the tid, a name holding spaces and parentheses, and utime + stime", () => {
  assert.deepEqual(parseTaskStat(STAT(42, "worker-1")), { tid: 42, name: "worker-1", ticks: 150 });
  assert.deepEqual(parseTaskStat(STAT(7, "a (b) c) d")), {
    tid: 7,
    name: "a (b) c) d",
    ticks: 150,
  });
  assert.equal(parseTaskStat(""), undefined);
  assert.equal(parseTaskStat("42 (cut short) S 1 2"), undefined);
  assert.equal(parseTaskStat("x (name) S 1 2 3 4 5 6 7 8 9 10 100 50"), undefined);
});

Deno.test("readThreads lists this process's threads, a worker under the name Deno gives its thread", async () => {
  const source = "self.onmessage = () => self.postMessage('up');";
  const url = `data:application/javascript,${encodeURIComponent(source)}`;
  const worker = new Worker(url, { type: "module", name: "sluice-worker-9" });
  try {
    const up = Promise.withResolvers<void>();
    worker.onmessage = () => up.resolve();
    worker.postMessage("ping");
    await up.promise;
    const threads = await readThreads(Deno.pid);
    const main = threads.find((t) => t.tid === Deno.pid);
    assert.ok(main, "the main thread has the process's id");
    assert.ok(threads.every((t) => t.ticks >= 0 && t.name.length > 0));
    // Deno names the OS thread after its own worker id ("worker-N"), not after `name`.
    assert.ok(threads.some((t) => /^worker-\d+$/.test(t.name)), threads.map((t) => t.name).join());
  } finally {
    worker.terminate();
  }
  assert.deepEqual(await readThreads(2 ** 30), []);
});

Deno.test("threadShares: CPU seconds between readings, a new thread from zero, largest first", () => {
  const before: ThreadTicks[] = [
    { tid: 1, name: "deno", ticks: 100 },
    { tid: 2, name: "worker-1", ticks: 1000 },
    { tid: 4, name: "gone", ticks: 5 },
  ];
  const after: ThreadTicks[] = [
    { tid: 1, name: "deno", ticks: 110 },
    { tid: 2, name: "worker-1", ticks: 1300 },
    { tid: 3, name: "worker-2", ticks: 190 },
  ];
  const shares = threadShares(before, after, 100);
  assert.deepEqual(shares.map((t) => [t.name, t.seconds]), [
    ["worker-1", 3],
    ["worker-2", 1.9],
    ["deno", 0.1],
  ]);
  assert.deepEqual(shares.map((t) => t.share.toFixed(2)), ["0.60", "0.38", "0.02"]);
  assert.deepEqual(threadShares(after, after, 100).map((t) => t.share), [0, 0, 0]);
});

Deno.test("windowShares measures from the last sample before the window to the last inside it", () => {
  const at = (ticks: number): ThreadTicks[] => [{ tid: 1, name: "worker-1", ticks }];
  const samples: ThreadSamples = [[1000, at(0)], [1500, at(10)], [2500, at(60)], [3500, at(99)]];
  const w = windowShares(samples, 1600, 3000, 100);
  assert.deepEqual(w, {
    windowSeconds: 1,
    cpuSeconds: 0.5,
    threads: [{ tid: 1, name: "worker-1", seconds: 0.5, share: 1 }],
  });
  assert.equal(windowShares(samples, 2000, 3000, 100)?.windowSeconds, 1, "from 1500 to 2500");
  assert.equal(windowShares(samples.slice(0, 1), 0, 5000, 100), undefined);
  assert.equal(windowShares([], 0, 5000, 100), undefined);
});

// --- /metrics -----------------------------------------------------------------------------------

Deno.test("parseInstanceMetrics reads workers, clients per worker and the PostgreSQL pool", () => {
  const text = [
    "# HELP sluice_workers Worker threads",
    "# TYPE sluice_workers gauge",
    "sluice_workers 2",
    'connected_clients{type="websocket"} 1500',
    'connected_clients{type="eventsource"} 500',
    'sluice_worker_connected_clients{worker="1"} 990',
    'sluice_worker_connected_clients{worker="2"} 1010',
    "pg_pool_total_connections 4",
    "pg_pool_idle_connections 3",
  ].join("\n");
  assert.deepEqual(parseInstanceMetrics(text), {
    workers: 2,
    connected: 2000,
    perWorker: { "1": 990, "2": 1010 },
    pgPool: 4,
  });
  assert.deepEqual(parseInstanceMetrics(""), {
    workers: null,
    connected: null,
    perWorker: {},
    pgPool: null,
  });
});

// --- per-client loss ----------------------------------------------------------------------------

Deno.test("perClient counts the opened clients that read fewer markers than were published", () => {
  const clients = [
    { connectMs: 3, delivered: 10 },
    { connectMs: 4, delivered: 7 },
    { connectMs: undefined, delivered: 0 },
    { connectMs: 2, delivered: 10 },
  ];
  assert.deepEqual(perClient(clients, 10), { short: 1, fewest: 7 });
  assert.deepEqual(perClient(clients.slice(2, 3), 10), { short: 0, fewest: null });
});

// --- case g -------------------------------------------------------------------------------------

function gRun(
  workers: string,
  o: { perSecond: number; shares: [string, number][]; short?: number; cut?: number },
): RunRecord {
  const published = 1000;
  const delivered = published * 2000 - (o.short ?? 0);
  const report = {
    publishing: { published, errors: 0, seconds: 10, minReceivers: 2000 },
    connections: { established: 2000 },
    deliveries: {
      expected: published * 2000,
      delivered,
      missing: published * 2000 - delivered,
      perSecond: o.perSecond,
      perClient: { short: o.short ?? 0, fewest: o.short ? published - 1 : published },
    },
    latencyMs: { p50: 5, p90: 9, p99: 20, max: 40, mean: 6, samples: delivered },
    disconnects: { total: o.cut ?? 0, sse: 0, ws: o.cut ?? 0, closeCodes: {} },
    windowSeconds: 12,
    server: { cpuSecondsWindow: 15 },
    loadgen: { cpuSecondsWindow: 8 },
  } as unknown as LoadReport;
  const threads = o.shares.map(([name, share], i) => ({
    tid: 100 + i,
    name,
    seconds: 20 * share,
    share,
  }));
  return {
    id: `g-${workers}`,
    caseId: "g",
    server: "sluice",
    transport: "ws",
    variant: `SLUICE_WORKERS=${workers}`,
    clients: 2000,
    rate: 100,
    port: 4000,
    serverPid: 100,
    command: "loadgen",
    report,
    subscriber: null,
    threads: { windowSeconds: 12, cpuSeconds: 20, threads },
    instance: {
      workers: workers === "1" ? 1 : 2,
      clientsPerWorker: {},
      pgPoolConnections: 2,
      pgBackends: 2,
    },
  };
}

const g = caseById("g")!;

Deno.test("case g's targets: two threads ≥ 30 %, auto not below one worker, nothing lost", () => {
  const one = gRun("1", { perSecond: 90_000, shares: [["deno", 0.01], ["worker-1", 0.98]] });
  const auto = gRun("auto", {
    perSecond: 120_000,
    shares: [["worker-1", 0.5], ["worker-2", 0.45], ["deno", 0.05]],
  });
  assert.deepEqual(g.targets([one, auto]).map((t) => [t.target.slice(0, 30), t.verdict]), [
    ["g. auto: two server threads ea", "met"],
    ["g. throughput with auto ≥ with", "met"],
    ["g. no message lost, SLUICE_WOR", "met"],
  ]);
  const lopsided = gRun("auto", {
    perSecond: 80_000,
    shares: [["worker-1", 0.8], ["worker-2", 0.15]],
    short: 3,
  });
  const [spread, throughput, loss] = g.targets([one, lopsided]);
  assert.equal(spread.verdict, "missed by 50 %");
  assert.match(spread.figure, /worker-1 80 %, worker-2 15 %/);
  assert.equal(throughput.verdict, "missed by 11 %"); // 80,000 vs 90,000
  assert.equal(loss.verdict, "missed");
  assert.match(loss.figure, /3 of 2,000 clients short \(fewest read 999\)/);
  assert.deepEqual(g.targets([]), []);
});

Deno.test("case g counts a cut client or a short one as loss, and cannot judge without per-client counts", () => {
  const clean = { perSecond: 1, shares: [] as [string, number][] };
  assert.equal(lostNothing(gRun("1", clean)), true);
  assert.equal(lostNothing(gRun("1", { ...clean, cut: 1 })), false);
  assert.equal(lostNothing(gRun("1", { ...clean, short: 1 })), false);
  const old = gRun("auto", clean);
  delete old.report!.deliveries.perClient;
  assert.equal(lostNothing(old), undefined);
  assert.equal(g.targets([old]).at(-1)!.verdict, "not measured");
});

Deno.test("case g names each thread's role and sums the threads below 1 %", () => {
  assert.equal(threadRole("deno", 100, 100), "main thread (supervisor)");
  assert.equal(threadRole("worker-2", 101, 100), "JavaScript worker");
  assert.equal(threadRole("tokio-runtime-w", 102, 100), "main runtime's I/O pool");
  assert.equal(threadRole("V8 DefaultWorke", 103, 100), "V8 platform (GC, compiler)");
  const run = gRun("auto", {
    perSecond: 1,
    shares: [["worker-1", 0.6], ["worker-2", 0.39], ["x", 0.005], ["y", 0.005]],
  });
  const rows = threadRows(run);
  assert.deepEqual(rows.map((r) => r[2]), ["`worker-1`", "`worker-2`", "2 other threads"]);
  assert.deepEqual(rows[2].slice(5, 7), ["0.20", "1 %"]);
  const section = g.section([run], [run], {} as never).join("\n");
  assert.match(section, /^## g\. Worker threads/);
  assert.match(section, /cannot show the speed-up/);
});
