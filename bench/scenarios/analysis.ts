/**
 * Verdicts drawn from the scenario runs (bench/scenarios.ts): whether a
 * publishing run kept up and if not why, the next rate of a saturation
 * ladder, the saturation point and what stopped it, CPU utilisation and who
 * ran out of it, case b's saturation (which cases c and f start from), the
 * RSS halves of a window, and "met" or "missed by N %" against a target.
 * Pure: no I/O, no clock.
 *
 * @module
 */
import type { RunRecord, ServerKind } from "./report.ts";

/** How a fan-out run ended, best first. */
export type RunStatus =
  | "kept up"
  | "behind"
  | "slow"
  | "publisher short"
  | "connect failures"
  | "failed";

/** Delivered below this share of expected: behind. */
export const KEEP_UP_SHARE = 0.98;
/** p99 latency above this: too slow. */
export const MAX_P99_MS = 1000;
/** Published below this share of the asked rate: the publisher (loadgen) is the limit. */
export const PUBLISHER_SHARE = 0.9;
/** CPU utilisation from which a process counts as saturated. */
export const BUSY = 0.85;

/** Deliveries the run should have made: the seeded expectation, else the loadgen's. */
export function expectedOf(run: RunRecord): number {
  return run.expected ?? run.report?.deliveries.expected ?? 0;
}

/** Whether a publishing run kept up, and if not, why. */
export function runStatus(run: RunRecord): RunStatus {
  const r = run.report;
  if (r === null || r.publishing === null) return "failed";
  if (r.connections.failed > 0 || r.connections.established < run.clients) {
    return "connect failures";
  }
  const asked = run.rate ?? 0;
  const achieved = r.publishing.seconds > 0 ? r.publishing.published / r.publishing.seconds : 0;
  if (achieved < PUBLISHER_SHARE * asked) return "publisher short";
  const expected = expectedOf(run);
  if (expected === 0 || r.deliveries.delivered < KEEP_UP_SHARE * expected) return "behind";
  if (r.latencyMs.p99 === null || r.latencyMs.p99 > MAX_P99_MS) return "slow";
  return "kept up";
}

/** How a saturation ladder climbs: first rate, step factor, most runs, finest gap to bisect. */
export interface Ladder {
  start: number;
  factor: number;
  maxSteps: number;
  /** Stop bisecting once the first failing rate is within this factor of the best passing one. */
  minGap: number;
}

function roundRate(rate: number): number {
  return rate >= 10 ? Math.round(rate) : Math.round(rate * 10) / 10;
}

/**
 * The next rate to try, or undefined when the ladder is done: climb by
 * `factor` while runs keep up, then bisect (geometric mean) between the best
 * passing and the lowest failing rate above it until they are `minGap` apart;
 * if the first rate already fails, step down.
 */
export function nextRate(
  tried: readonly { rate: number; ok: boolean }[],
  ladder: Ladder,
): number | undefined {
  if (tried.length >= ladder.maxSteps) return undefined;
  if (tried.length === 0) return ladder.start;
  const rates = new Set(tried.map((t) => t.rate));
  const good = tried.filter((t) => t.ok).map((t) => t.rate);
  const bad = tried.filter((t) => !t.ok).map((t) => t.rate);
  let next: number;
  if (good.length === 0) {
    next = roundRate(Math.min(...bad) / (ladder.factor * ladder.factor));
    if (next < 1) return undefined;
  } else {
    const best = Math.max(...good);
    const above = bad.filter((rate) => rate > best);
    if (above.length === 0) next = roundRate(best * ladder.factor);
    else {
      const lowest = Math.min(...above);
      if (lowest / best <= ladder.minGap) return undefined;
      next = roundRate(Math.sqrt(best * lowest));
    }
  }
  return rates.has(next) ? undefined : next;
}

/** The run with the most deliveries per second among those that kept up. */
export function saturation(runs: readonly RunRecord[]): RunRecord | undefined {
  let best: RunRecord | undefined;
  for (const run of runs) {
    if (runStatus(run) !== "kept up") continue;
    if (!best || perSecond(run) > perSecond(best)) best = run;
  }
  return best;
}

/** The lowest-rate failing run above the saturation point (what stopped the ladder). */
export function limitingRun(runs: readonly RunRecord[]): RunRecord | undefined {
  const floor = saturation(runs)?.rate ?? 0;
  return runs.filter((run) => runStatus(run) !== "kept up" && (run.rate ?? 0) > floor)
    .sort((x, y) => (x.rate ?? 0) - (y.rate ?? 0))[0];
}

/** Deliveries per second over the publishing time (0 without a report). */
export function perSecond(run: RunRecord): number {
  return run.report?.deliveries.perSecond ?? 0;
}

/** Server CPU seconds per million deliveries. */
export function cpuPerMillion(run: RunRecord): number | null {
  const r = run.report;
  const cpu = r?.server?.cpuSecondsWindow;
  if (!r || cpu === null || cpu === undefined || r.deliveries.delivered === 0) return null;
  return cpu / r.deliveries.delivered * 1e6;
}

/**
 * CPU utilisation (1 = one core) of the server and of the load generator over
 * the active part of the window: publishing plus the worst latency, never
 * more than the window (a drain that only waits is not counted as work time).
 */
export function utilisation(run: RunRecord): { server: number | null; loadgen: number | null } {
  const r = run.report;
  if (!r) return { server: null, loadgen: null };
  const tail = (r.latencyMs.max ?? 0) / 1000;
  const active = r.publishing
    ? Math.min(r.windowSeconds, r.publishing.seconds + tail)
    : r.windowSeconds;
  const share = (cpu: number | null | undefined) =>
    cpu === null || cpu === undefined || active <= 0 ? null : cpu / active;
  return { server: share(r.server?.cpuSecondsWindow), loadgen: share(r.loadgen.cpuSecondsWindow) };
}

/** Who ran out of CPU in a run: the server (core 0), the load generator (core 1), or neither. */
export function bottleneck(run: RunRecord): string {
  if (runStatus(run) === "publisher short") return "publisher (loadgen)";
  const { server, loadgen } = utilisation(run);
  const serverBusy = (server ?? 0) >= BUSY;
  const loadgenBusy = (loadgen ?? 0) >= BUSY;
  if (serverBusy && loadgenBusy) return "both";
  if (serverBusy) return "server";
  if (loadgenBusy) return "loadgen";
  return "neither at ≥85 % CPU";
}

/** "met" or "missed by N %" for a figure against a ceiling (`max`) or a floor (`min`). */
export function verdict(value: number | null, limit: number, kind: "max" | "min"): string {
  if (value === null || !Number.isFinite(value)) return "not measured";
  const met = kind === "max" ? value <= limit : value >= limit;
  if (met) return "met";
  const miss = kind === "max" ? (value - limit) / limit : (limit - value) / limit;
  return `missed by ${(100 * miss).toFixed(0)} %`;
}

/** x / y, or null when either is missing or y is 0. */
export function ratio(x: number | null | undefined, y: number | null | undefined): number | null {
  return x === null || x === undefined || !y ? null : x / y;
}

/** Delivered as a share of expected, or null without a report or expectation. */
export function deliveredShare(run: RunRecord | undefined): number | null {
  if (!run?.report) return null;
  const expected = expectedOf(run);
  return expected === 0 ? null : run.report.deliveries.delivered / expected;
}

/** Whether Redis dropped the server's subscriber during the run. */
export function dropped(run: RunRecord): boolean {
  return (run.subscriber?.connections ?? 0) > 1;
}

/** Saturation figures of case b per transport and server. */
export function unfilteredSaturation(runs: readonly RunRecord[]) {
  const of = (server: ServerKind, transport: string) =>
    saturation(
      runs.filter((r) => r.caseId === "b" && r.server === server && r.transport === transport),
    );
  return (["sse", "ws"] as const).map((transport) => ({
    transport,
    sluice: of("sluice", transport),
    ceiling: of("ceiling", transport),
  }));
}

/**
 * The largest RSS sampled in the first and in the second half of a window
 * (`[time ms, bytes]` samples), or null when a half has no sample.
 */
export function rssHalves(
  samples: readonly (readonly [number, number])[],
  start: number,
  end: number,
): { first: number; second: number } | null {
  const middle = (start + end) / 2;
  let first = 0, second = 0;
  for (const [at, bytes] of samples) {
    if (at >= start && at < middle) first = Math.max(first, bytes);
    else if (at >= middle && at <= end) second = Math.max(second, bytes);
  }
  return first > 0 && second > 0 ? { first, second } : null;
}
