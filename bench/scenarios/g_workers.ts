/**
 * Scenario case g: worker threads. Sluice, not pinned, with `SLUICE_WORKERS=1`
 * and then `auto`, each under an unfiltered WebSocket fan-out (`user`, 2,000
 * clients × 100 msg/s of about 1 KB); per run the deliveries against the
 * demand, messages lost (counted per client), each server thread's share of
 * the server's CPU time, latency, PostgreSQL connections and clients per
 * worker; its section of bench/RESULTS.md and its targets. Sluice only.
 *
 * @module
 */
import { perSecond, ratio, utilisation, verdict } from "./analysis.ts";
import type { ScenarioCase, TargetRow } from "./case.ts";
import { type Context, measure, num } from "./measure.ts";
import { USER_CHANNEL } from "./plan.ts";
import type { RunRecord } from "./report.ts";
import type { ThreadShare } from "./threads.ts";
import { commandBlock, DASH, int, msText, pct, ratioText, table } from "./tables.ts";

/** Payload of case g's statuses, in bytes ("about 1 KB"). */
export const WORKERS_PAYLOAD_BYTES = 1000;
/** Each of at least two threads must have this share of the server's CPU time with `auto`. */
export const SPREAD_SHARE = 0.3;
/** Auto's throughput over one worker's: "not below". */
const THROUGHPUT_FLOOR = 1;
/** Threads below this share of the server's CPU are summed into one row. */
const MINOR_SHARE = 0.01;

async function run(ctx: Context): Promise<void> {
  const { clients, rate, duration, drainMs } = ctx.plan.workers;
  for (const workers of ["1", "auto"]) {
    if (ctx.stopping) return;
    await measure(ctx, {
      caseId: "g",
      server: "sluice",
      transport: "ws",
      variant: `SLUICE_WORKERS=${workers}`,
      clients,
      rate,
      sluice: { workers, unpinned: true },
      watch: true,
      threads: true,
      args: [
        ...["--stream", "user", "--channel", USER_CHANNEL, "--transport", "ws"],
        ...["--clients", num(clients), "--rate", num(rate)],
        ...["--payload-bytes", num(WORKERS_PAYLOAD_BYTES), "--duration", num(duration)],
        ...["--warmup", num(ctx.plan.warmup), "--drain-ms", num(drainMs)],
      ],
    });
  }
}

/** Messages lost in a run: deliveries missing, clients short of messages, clients cut. */
export function losses(
  run: RunRecord,
): { missing: number; short: number | null; cut: number; unopened: number } | undefined {
  const r = run.report;
  if (!r?.publishing) return undefined;
  return {
    missing: r.deliveries.missing,
    short: r.deliveries.perClient?.short ?? null,
    cut: r.disconnects.total,
    unopened: run.clients - r.connections.established,
  };
}

/** Whether a run lost nothing: every client opened, stayed and read every message. */
export function lostNothing(run: RunRecord): boolean | undefined {
  const l = losses(run);
  if (l === undefined || l.short === null) return undefined;
  return l.missing === 0 && l.short === 0 && l.cut === 0 && l.unopened === 0;
}

function lossText(run: RunRecord): string {
  const l = losses(run);
  if (l === undefined) return DASH;
  const fewest = run.report?.deliveries.perClient?.fewest;
  return `${int(l.missing)} missing; ${l.short === null ? DASH : int(l.short)} of ` +
    `${int(run.clients)} clients short${l.short ? ` (fewest read ${int(fewest)})` : ""}; ` +
    `${int(l.cut)} cut, ${int(l.unopened)} not opened`;
}

/** What a thread is, from its name as /proc shows it (Deno names a worker's thread `worker-N`). */
export function threadRole(name: string, tid: number, pid: number | null): string {
  if (tid === pid) return "main thread (supervisor)";
  if (/^worker-\d+$/.test(name)) return "JavaScript worker";
  if (name.startsWith("tokio-runtime")) return "main runtime's I/O pool";
  if (name.startsWith("V8 ")) return "V8 platform (GC, compiler)";
  return "";
}

/** The threads at or above 1 % of the server's CPU, the rest summed into one row. */
export function threadRows(run: RunRecord): string[][] {
  const t = run.threads;
  if (!t) return [];
  const major = t.threads.filter((x) => x.share >= MINOR_SHARE);
  const minor = t.threads.filter((x) => x.share < MINOR_SHARE);
  const row = (x: ThreadShare) => [
    run.id,
    run.variant,
    `\`${x.name}\``,
    String(x.tid),
    threadRole(x.name, x.tid, run.serverPid),
    x.seconds.toFixed(2),
    pct(x.share),
    pct(x.seconds / t.windowSeconds),
  ];
  const rest = minor.reduce((sum, x) => sum + x.seconds, 0);
  const others = [run.id, run.variant, `${minor.length} other threads`, DASH, "", rest.toFixed(2)];
  return [
    ...major.map(row),
    ...(minor.length ? [[...others, pct(rest / (t.cpuSeconds || 1)), DASH]] : []),
  ];
}

function runRow(run: RunRecord): string[] {
  const r = run.report;
  const i = run.instance;
  const u = utilisation(run);
  const demanded = (run.rate ?? 0) * run.clients;
  const perWorker = i ? Object.entries(i.clientsPerWorker).map(([w, n]) => `${w}: ${int(n)}`) : [];
  const threadCpu = run.threads ? run.threads.cpuSeconds / run.threads.windowSeconds : null;
  return [
    run.id,
    run.variant,
    i ? String(i.workers) : DASH,
    int(demanded),
    int(r && perSecond(run)),
    ratioText(ratio(r && perSecond(run), demanded)),
    lossText(run),
    ...[msText(r?.latencyMs.p50), msText(r?.latencyMs.p90), msText(r?.latencyMs.p99)],
    `${pct(u.server)} (${pct(threadCpu)})`,
    pct(u.loadgen),
    i ? `${int(i.pgBackends)} (pool ${int(i.pgPoolConnections)})` : DASH,
    perWorker.join(", ") || DASH,
  ];
}

function section(runs: RunRecord[]): string[] {
  const auto = byVariant(runs, "auto")?.instance?.workers;
  return [
    "## g. Worker threads",
    "",
    "Sluice alone, **not pinned** (`taskset` with every core, which undoes the scenario " +
    "process's own pinning to core 1 that it would otherwise inherit), started with " +
    "`SLUICE_WORKERS=1` and then `SLUICE_WORKERS=auto` (one worker per CPU of its affinity" +
    `${auto ? `: ${auto} in this run` : ""}). Each run: ` +
    "WebSocket clients of stream `user` (channel timeline:1; every client gets every status, " +
    `no per-viewer filtering), ${WORKERS_PAYLOAD_BYTES}-byte payloads. Messages lost are ` +
    "counted per client: a client that read fewer markers than were published is short. " +
    "Lost is what had not arrived when the load generator stopped waiting (the end of " +
    "`--drain-ms`, 30 s after the last message, so a message merely late is not lost): a " +
    "message still queued in the server by then counts as lost, as does one dropped; clients " +
    "the server cut (a worker over its share of `SLUICE_QUEUE_BUDGET_BYTES`) are counted apart. " +
    "The target of no loss is the issue's for several workers; the one-worker run shows its " +
    "loss in the table.",
    "",
    "**What a 2-core machine can and cannot show.** The load generator (pinned to core 1 with " +
    "Redis and PostgreSQL) competes with the server for the same two cores, so with two " +
    "workers the server cannot get two whole cores. The figures show whether the work " +
    "spreads over the worker threads and whether anything is lost; they cannot show the " +
    "speed-up two workers give on a machine with cores to spare for them.",
    "",
    ...table(
      "run|SLUICE_WORKERS|workers|demanded deliveries/s|achieved deliveries/s|achieved/demanded|" +
        "lost|p50|p90|p99|server CPU (threads' sum)|loadgen CPU|PostgreSQL backends (pool)|" +
        "clients per worker",
      runs.map(runRow),
    ),
    "CPU is the share of one core (200 % = both cores): the server's from the load generator's " +
    "reading of /proc/PID/stat over publishing plus the worst latency, in brackets the sum of " +
    "its threads over publishing and the drain. Each thread's CPU time is utime + stime from " +
    "/proc/PID/task/TID/stat over publishing and the drain, named from .../comm: Deno names a " +
    "worker's thread `worker-N` after its own worker id, not the `name` given to `new Worker` " +
    "(`sluice-worker-N`), and the main thread keeps the process's name.",
    "",
    ...table(
      "run|SLUICE_WORKERS|thread|tid|what|CPU s|share of server CPU|share of one core",
      runs.flatMap(threadRows),
    ),
    ...commandBlock(runs),
  ];
}

function byVariant(runs: readonly RunRecord[], workers: string): RunRecord | undefined {
  return runs.find((r) => r.caseId === "g" && r.variant === `SLUICE_WORKERS=${workers}`);
}

function spreadRow(auto: RunRecord): TargetRow {
  const shares = auto.threads?.threads ?? [];
  const second = shares.length >= 2 ? shares[1].share : auto.threads ? 0 : null;
  return {
    target: `g. auto: two server threads each ≥ ${100 * SPREAD_SHARE} % of the server's CPU time`,
    figure: shares.slice(0, 3).map((t) => `${t.name} ${pct(t.share)}`).join(", ") || DASH,
    verdict: verdict(second, SPREAD_SHARE, "min"),
  };
}

function lossRow(run: RunRecord): TargetRow {
  const ok = lostNothing(run);
  return {
    target: `g. no message lost, ${run.variant}`,
    figure: lossText(run),
    verdict: ok === undefined ? "not measured" : ok ? "met" : "missed",
  };
}

function targets(runs: readonly RunRecord[]): TargetRow[] {
  const one = byVariant(runs, "1");
  const auto = byVariant(runs, "auto");
  const rows: TargetRow[] = [];
  if (auto) rows.push(spreadRow(auto));
  if (one && auto) {
    const r = ratio(auto.report && perSecond(auto), one.report && perSecond(one));
    rows.push({
      target: `g. throughput with auto ≥ with one worker`,
      figure: `${ratioText(r)} (${int(auto.report && perSecond(auto))} vs ${
        int(one.report && perSecond(one))
      } deliveries/s)`,
      verdict: verdict(r, THROUGHPUT_FLOOR, "min"),
    });
  }
  // The issue asks every client of every worker to get every message with
  // several workers; the one-worker run's loss is shown in its table row.
  return auto ? [...rows, lossRow(auto)] : rows;
}

/** Case g: worker threads. */
export const workerThreads: ScenarioCase = {
  id: "g",
  summary: "worker threads",
  run,
  section,
  targets,
};
