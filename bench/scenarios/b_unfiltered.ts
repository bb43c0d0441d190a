/**
 * Scenario case b: unfiltered fan-out (`user`, one account, every client gets
 * every status) up to saturation, Sluice beside the ceiling, SSE and WS; its
 * section of bench/RESULTS.md and its targets (Sluice ≥ 0.8 × the ceiling).
 *
 * @module
 */
import {
  cpuPerMillion,
  KEEP_UP_SHARE,
  limitingRun,
  MAX_P99_MS,
  perSecond,
  ratio,
  unfilteredSaturation,
  utilisation,
  verdict,
} from "./analysis.ts";
import type { ScenarioCase, TargetRow } from "./case.ts";
import { climb, LADDER_HEAD, ladderRows, limitText } from "./ladder.ts";
import { type Context, publishArgs } from "./measure.ts";
import { USER_CHANNEL } from "./plan.ts";
import type { RunRecord, ServerKind } from "./report.ts";
import { commandBlock, DASH, int, pair, pct, ratioText, table } from "./tables.ts";

async function run(ctx: Context): Promise<void> {
  const clients = ctx.plan.fanoutClients;
  for (const transport of ["sse", "ws"] as const) {
    for (const server of ["sluice", "ceiling"] as const) {
      await climb(ctx, ctx.plan.ladder, (rate) => ({
        caseId: "b",
        server,
        transport,
        clients,
        rate,
        args: [
          ...["--stream", "user", "--channel", USER_CHANNEL],
          ...publishArgs(ctx, transport, clients, rate),
        ],
      }));
    }
  }
}

function section(runs: RunRecord[]): string[] {
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

function targets(runs: readonly RunRecord[]): TargetRow[] {
  const rows: TargetRow[] = [];
  for (const { transport, sluice, ceiling } of unfilteredSaturation(runs)) {
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
  return rows;
}

/** Case b: unfiltered fan-out. */
export const unfilteredFanout: ScenarioCase = {
  id: "b",
  summary: "unfiltered fan-out",
  run,
  section,
  targets,
};
