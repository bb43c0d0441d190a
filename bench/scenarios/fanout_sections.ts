/**
 * The fan-out sections of bench/RESULTS.md: case b (unfiltered, Sluice and
 * the ceiling) and case c (filtered, Sluice against both unfiltered
 * figures), each with its saturation summary, what stopped each ladder, and
 * every rate tried. Pure: no I/O, no clock.
 *
 * @module
 */
import {
  bottleneck,
  cpuPerMillion,
  deliveredShare,
  dropped,
  expectedOf,
  filteredSaturation,
  KEEP_UP_SHARE,
  limitingRun,
  MAX_P99_MS,
  perSecond,
  ratio,
  runStatus,
  unfilteredSaturation,
  utilisation,
} from "./analysis.ts";
import type { RunRecord, ScenarioResults, ServerKind } from "./report.ts";
import { commandBlock, DASH, int, msText, pair, pct, ratioText, table } from "./tables.ts";

function ladderRows(runs: RunRecord[], filtered: boolean): string[][] {
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

const LADDER_HEAD = "run|server|transport|rate/s|published/s|delivered|of expected|deliveries/s|" +
  "p50|p99|server CPU|loadgen CPU|CPU s / M deliveries|cut|outcome";

function limitText(runs: RunRecord[]): string {
  const run = limitingRun(runs);
  if (!run) return "no failing rate tried";
  const u = utilisation(run);
  return `${run.id}: ${runStatus(run)} at ${run.rate}/s (server ${pct(u.server)}, loadgen ` +
    `${pct(u.loadgen)}) → ${bottleneck(run)}`;
}

/** Section b: unfiltered fan-out, Sluice beside the ceiling. */
export function sectionB(runs: RunRecord[]): string[] {
  const rows = unfilteredSaturation(runs).map(({ transport, sluice, ceiling }) => {
    const side = (server: ServerKind) =>
      runs.filter((r) => r.server === server && r.transport === transport);
    return [
      transport,
      int(sluice && perSecond(sluice)),
      int(ceiling && perSecond(ceiling)),
      ratioText(ratio(sluice && perSecond(sluice), ceiling && perSecond(ceiling))),
      pair(sluice, ceiling, (run) => cpuPerMillion(run)?.toFixed(2) ?? DASH),
      pair(sluice, ceiling, (run) => pct(utilisation(run).server)),
      pair(sluice, ceiling, (run) => pct(utilisation(run).loadgen)),
      limitText(side("sluice")),
      limitText(side("ceiling")),
    ];
  });
  return [
    "## b. Unfiltered fan-out",
    "",
    `Stream \`user\` (channel timeline:1), 1.5 KB payloads, rates raised until delivery falls ` +
    `behind (delivered < ${100 * KEEP_UP_SHARE} % of expected, or p99 > ${MAX_P99_MS} ms). ` +
    "Saturation is the best rate that kept up. CPU is the share of one core over publishing plus " +
    "the worst latency; the load generator shares core 1 with Redis, so when it is near 100 % the " +
    "load generator, not the server, set the limit.",
    "",
    ...table(
      "transport|Sluice deliveries/s|ceiling deliveries/s|Sluice/ceiling|" +
        "CPU s / M deliveries (S / C)|server CPU at saturation (S / C)|" +
        "loadgen CPU at saturation (S / C)|Sluice stopped by|ceiling stopped by",
      rows,
    ),
    "Every rate tried:",
    "",
    ...table(LADDER_HEAD, ladderRows(runs, false)),
    ...commandBlock(runs),
  ];
}

/** Section c: filtered fan-out, with the seeded viewers' kinds. */
export function sectionC(runs: RunRecord[], all: RunRecord[], results: ScenarioResults): string[] {
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
