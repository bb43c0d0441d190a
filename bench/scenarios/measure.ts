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
import { loadgenWords, runLoadgen, type Services, startTarget, type Target } from "./procs.ts";
import { type CaseId, type RunRecord, type ServerKind, shellJoin } from "./report.ts";
import { sampleRss, watchSubscriber } from "./samplers.ts";

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
    target = await startTarget(ctx, spec.server, spec.channel ?? USER_CHANNEL);
    record.port = target.port;
    record.serverPid = target.pid;
    const words = loadgenWords(ctx, String(target.port), String(target.pid), spec.args);
    record.command = shellJoin(words);
    const rss = spec.watch ? sampleRss(target.pid) : undefined;
    const subscriber = watchSubscriber(ctx.redis.port);
    const outcome = await runLoadgen(ctx, record.id, words, spec.watch ?? false);
    rss?.stop();
    record.subscriber = await subscriber.stop();
    if (outcome.error !== undefined) record.error = outcome.error;
    if (outcome.report) {
      record.report = outcome.report;
      if (spec.expected) record.expected = spec.expected(outcome.report);
      const window = outcome.phases.window(outcome.exitedAt);
      if (rss) record.rssHalves = window ? rssHalves(rss.samples, ...window) : null;
    }
  } catch (error) {
    record.error = error instanceof Error ? error.message : String(error);
  } finally {
    await target?.stop();
  }
  say(ctx, describe(record));
  return record;
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
