/**
 * The targets of the benchmark issue, each checked against the figures of
 * the scenario runs (bench/scenarios.ts): idle memory per connection,
 * unfiltered and filtered fan-out against their references, p99 latency,
 * the connection storm, and the slow-client plateau. Pure: no I/O, no clock.
 *
 * @module
 */
import {
  filteredSaturation,
  limitingRun,
  perSecond,
  PLATEAU_GROWTH,
  ratio,
  slowPairs,
  unfilteredSaturation,
  verdict,
} from "./analysis.ts";
import type { RunRecord } from "./report.ts";
import { DASH, int, kb, msText, ratioText } from "./tables.ts";

/** One row of the targets table. */
export interface TargetRow {
  target: string;
  figure: string;
  verdict: string;
}

/** The issue's targets, each checked against the figures that were measured. */
export function targetRows(runs: readonly RunRecord[]): TargetRow[] {
  const rows: TargetRow[] = [];
  for (const [transport, limit] of [["sse", 25], ["ws", 8]] as const) {
    const idle = runs.filter((run) =>
      run.caseId === "a" && run.server === "sluice" && run.transport === transport
    ).sort((x, y) =>
      y.clients - x.clients
    )[0];
    if (!idle) continue;
    const per = idle.report?.server?.rssPerConnectionBytes;
    rows.push({
      target: `a. idle ${transport.toUpperCase()} ≤ ${limit} KB per connection at 10,000`,
      figure: `${kb(per)} at ${int(idle.clients)}`,
      verdict: verdict(per === null || per === undefined ? null : per / 1024, limit, "max"),
    });
  }
  const unfiltered = unfilteredSaturation(runs);
  for (const { transport, sluice, ceiling } of unfiltered) {
    const r = ratio(sluice && perSecond(sluice), ceiling && perSecond(ceiling));
    if (!sluice && !ceiling) continue;
    const open = (["sluice", "ceiling"] as const).filter((server) =>
      !limitingRun(
        runs.filter((run) =>
          run.caseId === "b" && run.server === server && run.transport === transport
        ),
      )
    );
    rows.push({
      target: `b. unfiltered ${transport.toUpperCase()} ≥ 0.8 × ceiling`,
      figure: `${ratioText(r)} (${int(sluice && perSecond(sluice))} vs ${
        int(ceiling && perSecond(ceiling))
      } deliveries/s${open.length ? `; ${open.join(" and ")} never fell behind` : ""})`,
      verdict: verdict(r, 0.8, "min"),
    });
  }
  for (const { transport, filtered } of filteredSaturation(runs)) {
    const base = unfiltered.find((u) => u.transport === transport)?.sluice;
    if (!runs.some((run) => run.caseId === "c" && run.transport === transport)) continue;
    const r = ratio(filtered && perSecond(filtered), base && perSecond(base));
    const open = !limitingRun(
      runs.filter((run) => run.caseId === "c" && run.transport === transport),
    );
    rows.push({
      target: `c. filtered ${transport.toUpperCase()} ≥ 0.6 × Sluice unfiltered`,
      figure: `${ratioText(r)} (${int(filtered && perSecond(filtered))} vs ${
        int(base && perSecond(base))
      } deliveries/s${open ? "; the filtered ladder never fell behind" : ""})`,
      verdict: verdict(r, 0.6, "min"),
    });
  }
  const latency = runs.filter((run) =>
    run.caseId === "d" && run.server === "sluice" && run.transport !== "mix"
  );
  for (const run of latency) {
    const p99 = run.report?.latencyMs.p99 ?? null;
    rows.push({
      target: `d. p99 ≤ 20 ms at 1,000 × 10 msg/s, ${run.transport.toUpperCase()}`,
      figure: `${msText(p99)} at ${int(run.clients)} clients`,
      verdict: verdict(p99, 20, "max"),
    });
  }
  for (const run of runs.filter((r) => r.caseId === "e" && r.server === "sluice")) {
    const all = run.report?.connections.establishAllMs ?? null;
    const failed = run.report?.connections.failed ?? 0;
    rows.push({
      target: `e. 5,000 connections ≤ 1.5 s, ${run.transport.toUpperCase()}, ${run.variant}`,
      figure: `${msText(all)} for ${int(run.clients)}, ${failed} failed`,
      verdict: failed > 0 ? `missed: ${failed} failed` : verdict(all, 1500, "max"),
    });
  }
  for (const p of slowPairs(runs).filter((pair) => pair.server === "sluice")) {
    rows.push({
      target: `f. ${p.transport.toUpperCase()}: RSS plateaus with slow clients`,
      figure: p.growth === null ? DASH : `${(100 * p.growth).toFixed(1)} % growth in 2nd half; ` +
        `${int(p.slow?.report?.slow.cutByServer)} of ${int(p.slow?.report?.slow.opened)} slow cut`,
      verdict: verdict(p.growth, PLATEAU_GROWTH, "max"),
    }, {
      target:
        `f. ${p.transport.toUpperCase()}: normal p99 within 2× of the run without slow clients`,
      figure: `${ratioText(p.p99Ratio)} (${msText(p.slow?.report?.latencyMs.p99)} vs ${
        msText(p.plain?.report?.latencyMs.p99)
      })`,
      verdict: verdict(p.p99Ratio, 2, "max"),
    });
  }
  return rows;
}
