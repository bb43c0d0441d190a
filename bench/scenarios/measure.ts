/**
 * One scenario run (bench/scenarios.ts): a fresh server under test, the load
 * generator against it while the server's RSS and Redis subscriber are
 * sampled, the server stopped, and the outcome recorded and reported on
 * stderr; plus the context every run shares and the load generator
 * arguments of a publishing run.
 *
 * @module
 */
import type { LoadReport } from "../loadgen/report.ts";
import { rssHalves, runStatus, utilisation } from "./analysis.ts";
import { PAYLOAD_BYTES, type Plan, USER_CHANNEL } from "./plan.ts";
import {
  loadgenWords,
  runLoadgen,
  type Services,
  type SluiceOptions,
  startTarget,
  type Target,
} from "./procs.ts";
import { type CaseId, type RunRecord, type ServerKind, shellJoin } from "./report.ts";
import { sampleRss, watchInstance, watchSubscriber } from "./samplers.ts";
import { clockTicksPerSecond } from "../loadgen/proc.ts";
import { sampleThreads, windowShares } from "./threads.ts";

/** What every run needs. */
export interface Context extends Services {
  plan: Plan;
  tokensFile: string;
  runs: RunRecord[];
  notes: string[];
  stopping: boolean;
  started: number;
}

/** What sets one run apart. */
export interface RunSpec {
  caseId: CaseId;
  server: ServerKind;
  transport: RunRecord["transport"];
  variant?: string;
  clients: number;
  rate?: number;
  /** Redis channel the ceiling relays. */
  channel?: string;
  /** Load generator arguments after --url, --server-pid and --redis. */
  args: string[];
  /** Watch the loadgen's phases and sample the server's RSS (case f). */
  watch?: boolean;
  /** Deliveries expected given the seeded filters (case c). */
  expected?: (report: LoadReport) => number;
  /** How Sluice is started (default: one worker on core 0). */
  sluice?: SluiceOptions;
  /** Sample the server's threads and its /metrics and PostgreSQL backends (case g; needs `watch`). */
  threads?: boolean;
}

/** A number as a command-line argument. */
export function num(value: number): string {
  return String(value);
}

/** Load generator arguments of a publishing run: transport, clients, rate and timings. */
export function publishArgs(
  ctx: Pick<Context, "plan">,
  transport: string,
  clients: number,
  rate: number,
  duration = ctx.plan.duration,
): string[] {
  const { warmup, drainMs } = ctx.plan;
  return [
    ...["--transport", transport, "--clients", num(clients), "--rate", num(rate)],
    ...["--payload-bytes", num(PAYLOAD_BYTES), "--duration", num(duration)],
    ...["--warmup", num(warmup), "--drain-ms", num(drainMs)],
  ];
}

/** A progress line on stderr, with the time since the start. */
export function say(ctx: Pick<Context, "started">, message: string): void {
  const s = Math.round((Date.now() - ctx.started) / 1000);
  const clock = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  console.error(`[scenarios +${clock}] ${message}`);
}

/** One run: a fresh server, the load generator against it, the server stopped. */
export async function measure(ctx: Context, spec: RunSpec): Promise<RunRecord> {
  const n = ctx.runs.filter((run) => run.caseId === spec.caseId).length + 1;
  const record: RunRecord = {
    id: `${spec.caseId}${n}`,
    caseId: spec.caseId,
    server: spec.server,
    transport: spec.transport,
    variant: spec.variant ?? "",
    clients: spec.clients,
    rate: spec.rate ?? null,
    port: null,
    serverPid: null,
    command: "",
    report: null,
    subscriber: null,
  };
  ctx.runs.push(record);
  let target: Target | undefined;
  try {
    target = await startTarget(ctx, spec.server, spec.channel ?? USER_CHANNEL, spec.sluice);
    record.port = target.port;
    record.serverPid = target.pid;
    const words = loadgenWords(ctx, String(target.port), String(target.pid), spec.args);
    record.command = shellJoin(words);
    const rss = spec.watch ? sampleRss(target.pid) : undefined;
    const inside = spec.threads ? watchInside(ctx, target) : undefined;
    const subscriber = watchSubscriber(ctx.redis.port);
    const outcome = await runLoadgen(ctx, record.id, words, spec.watch ?? false);
    rss?.stop();
    const finish = await inside?.stop();
    record.subscriber = await subscriber.stop();
    if (outcome.error !== undefined) record.error = outcome.error;
    if (outcome.report) {
      record.report = outcome.report;
      if (spec.expected) record.expected = spec.expected(outcome.report);
      const window = outcome.phases.window(outcome.exitedAt);
      if (rss) record.rssHalves = window ? rssHalves(rss.samples, ...window) : null;
      if (finish) Object.assign(record, finish(window));
    }
  } catch (error) {
    record.error = error instanceof Error ? error.message : String(error);
  } finally {
    await target?.stop();
  }
  say(ctx, describe(record));
  return record;
}

const BACKENDS_SQL = "SELECT count(*) FROM pg_stat_activity " +
  "WHERE datname = current_database() AND pid <> pg_backend_pid()";

/**
 * Samples the server's threads, its /metrics and the database's backends
 * while the load generator runs; `stop()` gives what to record for a window.
 */
function watchInside(ctx: Context, target: Target) {
  const threads = sampleThreads(target.pid);
  const instance = watchInstance(target.port, async () => {
    const count = Number(await ctx.pg.query(BACKENDS_SQL).catch(() => ""));
    return Number.isInteger(count) ? count : undefined;
  });
  return {
    async stop() {
      await threads.stop();
      const figures = await instance.stop();
      const ticks = await clockTicksPerSecond();
      return (window: [number, number] | undefined): Partial<RunRecord> => ({
        instance: figures,
        threads: window ? windowShares(threads.samples, ...window, ticks) ?? null : null,
      });
    },
  };
}

function describe(run: RunRecord): string {
  const head = `${run.id} ${run.server} ${run.transport} ×${run.clients}` +
    `${run.variant ? ` (${run.variant})` : ""}${run.rate ? ` at ${run.rate}/s` : ""}`;
  const r = run.report;
  if (!r) return `${head}: FAILED ${run.error ?? ""}`;
  const u = utilisation(run);
  const pct = (x: number | null) => x === null ? "–" : `${Math.round(100 * x)} %`;
  if (!r.publishing) {
    const c = r.connections;
    const perConn = r.server?.rssPerConnectionBytes;
    return `${head}: ${c.established}/${c.attempted} established in ${c.establishAllMs} ms` +
      `${perConn ? `, ${(perConn / 1024).toFixed(1)} KB per connection` : ""}`;
  }
  return `${head}: ${runStatus(run)}, ${Math.round(r.deliveries.perSecond ?? 0)} deliveries/s, ` +
    `p99 ${r.latencyMs.p99} ms, server CPU ${pct(u.server)}, loadgen CPU ${pct(u.loadgen)}` +
    `${r.slow.attempted ? `, ${r.slow.cutByServer}/${r.slow.opened} slow cut` : ""}`;
}
