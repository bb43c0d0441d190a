/**
 * The saturation ladders of the fan-out cases (bench/scenarios/b_unfiltered.ts,
 * c_filtered.ts): climbing the publishing rate with a fresh server per run
 * until delivery falls behind, and the RESULTS.md tables both cases share:
 * every rate tried, and what stopped a ladder.
 *
 * @module
 */
import {
  bottleneck,
  cpuPerMillion,
  deliveredShare,
  dropped,
  expectedOf,
  type Ladder,
  limitingRun,
  nextRate,
  runStatus,
  utilisation,
} from "./analysis.ts";
import { type Context, measure, type RunSpec } from "./measure.ts";
import type { RunRecord } from "./report.ts";
import { DASH, int, msText, pct } from "./tables.ts";

/** Climbs a rate ladder with fresh servers until it finds the saturation point. */
export async function climb(ctx: Context, steps: Ladder, spec: (rate: number) => RunSpec) {
  const tried: { rate: number; ok: boolean }[] = [];
  for (let rate = nextRate(tried, steps); rate !== undefined; rate = nextRate(tried, steps)) {
    if (ctx.stopping) return;
    const run = await measure(ctx, spec(rate));
    tried.push({ rate, ok: runStatus(run) === "kept up" });
  }
}

/** The header of the table of every rate tried. */
export const LADDER_HEAD =
  "run|server|transport|rate/s|published/s|delivered|of expected|deliveries/s|" +
  "p50|p99|server CPU|loadgen CPU|CPU s / M deliveries|cut|outcome";

/** One row per rate tried; `filtered` adds viewer-events and the seeded expectation. */
export function ladderRows(runs: readonly RunRecord[], filtered: boolean): string[][] {
  return runs.map((run) => {
    const r = run.report;
    const u = utilisation(run);
    const published = r?.publishing
      ? r.publishing.published / Math.max(r.publishing.seconds, 1e-9)
      : null;
    return [
      run.id,
      run.server,
      run.transport,
      String(run.rate ?? DASH),
      int(published),
      ...(filtered ? [int((published ?? 0) * run.clients), int(expectedOf(run))] : []),
      int(r?.deliveries.delivered),
      pct(deliveredShare(run)),
      int(r?.deliveries.perSecond),
      msText(r?.latencyMs.p50),
      msText(r?.latencyMs.p99),
      pct(u.server),
      pct(u.loadgen),
      cpuPerMillion(run)?.toFixed(2) ?? DASH,
      int(r?.disconnects.total),
      `${runStatus(run)}${dropped(run) ? " (Redis subscriber reconnected)" : ""}`,
    ];
  });
}

/** What stopped one ladder: its first failing rate above the saturation point, and who was busy. */
export function limitText(runs: readonly RunRecord[]): string {
  const run = limitingRun(runs);
  if (!run) return "no failing rate tried";
  const u = utilisation(run);
  return `${run.id}: ${runStatus(run)} at ${run.rate}/s (server ${pct(u.server)}, loadgen ` +
    `${pct(u.loadgen)}) → ${bottleneck(run)}`;
}
