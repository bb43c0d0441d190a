/**
 * Scenario case a: idle memory per connection at each size, SSE and WS,
 * Sluice beside the ceiling; its section of bench/RESULTS.md and its
 * targets (≤ 25 KB per SSE, ≤ 8 KB per WebSocket connection at 10,000).
 *
 * @module
 */
import { ratio, verdict } from "./analysis.ts";
import type { ScenarioCase, TargetRow } from "./case.ts";
import { type Context, measure, num } from "./measure.ts";
import type { RunRecord } from "./report.ts";
import { commandBlock, find, int, kb, mb, ratioText, table, unique } from "./tables.ts";

async function run(ctx: Context): Promise<void> {
  const p = ctx.plan;
  for (const transport of ["sse", "ws"] as const) {
    for (const clients of p.idleSizes) {
      for (const server of ["sluice", "ceiling"] as const) {
        if (ctx.stopping) return;
        await measure(ctx, {
          caseId: "a",
          server,
          transport,
          clients,
          args: [
            ...["--idle", "--stream", "user", "--transport", transport, "--clients", num(clients)],
            ...["--warmup", num(p.idleWarmup), "--duration", num(p.idleHold)],
          ],
        });
      }
    }
  }
}

function section(runs: RunRecord[]): string[] {
  const rows = unique(runs.map((run) => `${run.transport} ${run.clients}`)).map((key) => {
    const [transport, clients] = key.split(" ");
    const where = { transport: transport as RunRecord["transport"], clients: Number(clients) };
    const s = find(runs, "sluice", where);
    const c = find(runs, "ceiling", where);
    const per = (run?: RunRecord) => run?.report?.server?.rssPerConnectionBytes ?? null;
    const rss = (run?: RunRecord) =>
      `${mb(run?.report?.server?.rssBaselineBytes)} → ${mb(run?.report?.server?.rssIdleBytes)}`;
    const est = (run?: RunRecord) => int(run?.report?.connections.established);
    return [
      transport,
      int(Number(clients)),
      kb(per(s)),
      kb(per(c)),
      ratioText(ratio(per(s), per(c))),
      rss(s),
      rss(c),
      `${est(s)} / ${est(c)}`,
      [s?.id, c?.id].filter(Boolean).join(", "),
    ];
  });
  return [
    "## a. Idle memory per connection",
    "",
    "Server RSS after the warm-up minus RSS before connecting, divided by the connections " +
    "(`--idle`, stream `user`, token-alice).",
    "",
    ...table(
      "transport|connections|Sluice per conn|ceiling per conn|Sluice/ceiling|" +
        "Sluice RSS before → idle|ceiling RSS before → idle|established (S / C)|" +
        "runs",
      rows,
    ),
    ...commandBlock(runs),
  ];
}

function targets(runs: readonly RunRecord[]): TargetRow[] {
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
  return rows;
}

/** Case a: idle memory per connection. */
export const idleMemory: ScenarioCase = {
  id: "a",
  summary: "idle memory",
  run,
  section,
  targets,
};
