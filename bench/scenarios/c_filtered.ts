/**
 * Scenario case c: filtered fan-out (`public`, 1,000 seeded viewers with
 * distinct tokens), Sluice only, from half the unfiltered saturation of
 * case b; its section of bench/RESULTS.md and its targets (filtered ≥ 0.6 ×
 * Sluice unfiltered).
 *
 * @module
 */
import {
  expectedOf,
  limitingRun,
  perSecond,
  ratio,
  saturation,
  unfilteredSaturation,
  utilisation,
  verdict,
} from "./analysis.ts";
import type { ScenarioCase, TargetRow } from "./case.ts";
import { climb, LADDER_HEAD, ladderRows, limitText } from "./ladder.ts";
import { type Context, publishArgs } from "./measure.ts";
import { VIEWERS } from "./plan.ts";
import type { RunRecord, ScenarioResults } from "./report.ts";
import { expectedDeliveries } from "./seed.ts";
import { commandBlock, int, pct, ratioText, table } from "./tables.ts";

async function run(ctx: Context): Promise<void> {
  const clients = ctx.plan.fanoutClients;
  const unfiltered = unfilteredSaturation(ctx.runs);
  for (const transport of ["sse", "ws"] as const) {
    const base = unfiltered.find((u) => u.transport === transport)?.sluice?.rate;
    const steps = base
      ? {
        ...ctx.plan.ladder,
        start: Math.max(1, Math.round(base / 2)),
        factor: ctx.plan.filteredFactor,
      }
      : ctx.plan.ladder;
    await climb(ctx, steps, (rate) => ({
      caseId: "c",
      server: "sluice",
      transport,
      clients,
      rate,
      channel: "timeline:public",
      args: [
        ...["--stream", "public", "--author", "remote", "--tokens-file", ctx.tokensFile],
        ...publishArgs(ctx, transport, clients, rate),
      ],
      expected: (report) => expectedDeliveries(clients, VIEWERS, report.publishing?.published ?? 0),
    }));
  }
}

/** Saturation of case c per transport. */
function filteredSaturation(runs: readonly RunRecord[]) {
  return (["sse", "ws"] as const).map((transport) => ({
    transport,
    filtered: saturation(runs.filter((r) => r.caseId === "c" && r.transport === transport)),
  }));
}

function section(runs: RunRecord[], all: readonly RunRecord[], results: ScenarioResults) {
  const unfiltered = unfilteredSaturation(all);
  const rows = filteredSaturation(all).map(({ transport, filtered }) => {
    const base = unfiltered.find((u) => u.transport === transport);
    const r = filtered?.report;
    const viewerEvents = r?.publishing ? r.publishing.published * (filtered?.clients ?? 0) : 0;
    return [
      transport,
      int(filtered && perSecond(filtered)),
      int(base?.sluice && perSecond(base.sluice)),
      ratioText(ratio(filtered && perSecond(filtered), base?.sluice && perSecond(base.sluice))),
      int(base?.ceiling && perSecond(base.ceiling)),
      ratioText(ratio(filtered && perSecond(filtered), base?.ceiling && perSecond(base.ceiling))),
      pct(filtered && viewerEvents ? expectedOf(filtered) / viewerEvents : null),
      int(r?.publishing ? viewerEvents / r.publishing.seconds : null),
      pct(filtered ? utilisation(filtered).server : null),
      pct(filtered ? utilisation(filtered).loadgen : null),
      limitText(runs.filter((run) => run.transport === transport)),
    ];
  });
  const head = LADDER_HEAD.replace("published/s|", "published/s|viewer-events/s|expected|");
  return [
    "## c. Filtered fan-out",
    "",
    `Stream \`public\`, Sluice only, ${results.seed.viewers} seeded viewers with distinct tokens ` +
    "(`--tokens-file`), statuses by the remote author (account 78, federationbot@mastodon.host, " +
    "language en). The ceiling's unfiltered figure (case b) is the reference. Expected deliveries " +
    "are computed from the seed (the load generator's own `expected` assumes every client gets " +
    "every message); keyword filters never drop a status, they add `filtered`.",
    "",
    ...table(
      "viewers|kind|gets the statuses",
      results.seed.kinds.map((k) => [String(k.count), k.kind, k.delivered ? "yes" : "no"]),
    ),
    ...table(
      "transport|filtered deliveries/s|Sluice unfiltered (b)|" +
        "filtered/unfiltered|ceiling unfiltered (b)|filtered/ceiling|" +
        "deliveries expected given the filters|viewer-events/s|server CPU|" +
        "loadgen CPU|stopped by",
      rows,
    ),
    "Every rate tried:",
    "",
    ...table(head, ladderRows(runs, true)),
    ...commandBlock(runs),
  ];
}

function targets(runs: readonly RunRecord[]): TargetRow[] {
  const rows: TargetRow[] = [];
  const unfiltered = unfilteredSaturation(runs);
  for (const { transport, filtered } of filteredSaturation(runs)) {
    const base = unfiltered.find((u) => u.transport === transport)?.sluice;
    const ladder = runs.filter((run) => run.caseId === "c" && run.transport === transport);
    if (ladder.length === 0) continue;
    const r = ratio(filtered && perSecond(filtered), base && perSecond(base));
    rows.push({
      target: `c. filtered ${transport.toUpperCase()} ≥ 0.6 × Sluice unfiltered`,
      figure: `${ratioText(r)} (${int(filtered && perSecond(filtered))} vs ${
        int(base && perSecond(base))
      } deliveries/s${limitingRun(ladder) ? "" : "; the filtered ladder never fell behind"})`,
      verdict: verdict(r, 0.6, "min"),
    });
  }
  return rows;
}

/** Case c: filtered fan-out. */
export const filteredFanout: ScenarioCase = {
  id: "c",
  summary: "filtered fan-out",
  run,
  section,
  uses: [{
    caseId: "b",
    whenRun: "the first rate of its ladders (half of case b's Sluice saturation)",
    whenRendered: "its ratios to the unfiltered figures of case b (section and targets)",
  }],
  targets,
};
