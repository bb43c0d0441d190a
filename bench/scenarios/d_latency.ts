/**
 * Scenario case d: latency at 10 msg/s for 1,000 SSE, 1,000 WS and 5,000
 * mixed clients, Sluice beside the ceiling; its section of bench/RESULTS.md
 * and its targets (p99 ≤ 20 ms at 1,000 × 10 msg/s).
 *
 * @module
 */
import { deliveredShare, ratio, verdict } from "./analysis.ts";
import type { ScenarioCase, TargetRow } from "./case.ts";
import { type Context, measure, publishArgs } from "./measure.ts";
import { USER_CHANNEL } from "./plan.ts";
import type { RunRecord } from "./report.ts";
import { commandBlock, find, int, msText, pair, pct, ratioText, table, unique } from "./tables.ts";

async function run(ctx: Context): Promise<void> {
  const p = ctx.plan;
  const configs = [
    ["sse", p.latencyClients],
    ["ws", p.latencyClients],
    ["mix", p.mixedClients],
  ] as const;
  for (const [transport, clients] of configs) {
    for (const server of ["sluice", "ceiling"] as const) {
      if (ctx.stopping) return;
      await measure(ctx, {
        caseId: "d",
        server,
        transport,
        clients,
        rate: 10,
        args: [
          ...["--stream", "user", "--channel", USER_CHANNEL],
          ...publishArgs(ctx, transport, clients, 10, p.latencyDuration),
        ],
      });
    }
  }
}

function latencyText(run: RunRecord | undefined): string[] {
  const l = run?.report?.latencyMs;
  return [msText(l?.p50), msText(l?.p90), msText(l?.p99), msText(l?.max)];
}

function section(runs: RunRecord[]): string[] {
  const keys = unique(runs.map((run) => `${run.transport} ${run.clients}`));
  const rows = keys.map((key) => {
    const [transport, clients] = key.split(" ");
    const where = { transport: transport as RunRecord["transport"], clients: Number(clients) };
    const s = find(runs, "sluice", where);
    const c = find(runs, "ceiling", where);
    return [
      `${int(Number(clients))} ${transport}`,
      ...latencyText(s),
      ...latencyText(c),
      ratioText(ratio(s?.report?.latencyMs.p99, c?.report?.latencyMs.p99)),
      pair(s, c, (run) => pct(deliveredShare(run))),
      [s?.id, c?.id].filter(Boolean).join(", "),
    ];
  });
  return [
    "## d. Latency",
    "",
    "Stream `user`, 10 messages/s of 1.5 KB; latency from PUBLISH to the client reading the marker.",
    "",
    ...table(
      "clients|Sluice p50|p90|p99|max|ceiling p50|p90|p99|max|" +
        "p99 Sluice/ceiling|delivered (S / C)|runs",
      rows,
    ),
    ...commandBlock(runs),
  ];
}

function targets(runs: readonly RunRecord[]): TargetRow[] {
  const latency = runs.filter((run) =>
    run.caseId === "d" && run.server === "sluice" && run.transport !== "mix"
  );
  return latency.map((run) => {
    const p99 = run.report?.latencyMs.p99 ?? null;
    return {
      target: `d. p99 ≤ 20 ms at 1,000 × 10 msg/s, ${run.transport.toUpperCase()}`,
      figure: `${msText(p99)} at ${int(run.clients)} clients`,
      verdict: verdict(p99, 20, "max"),
    };
  });
}

/** Case d: latency. */
export const latency: ScenarioCase = { id: "d", summary: "latency", run, section, targets };
