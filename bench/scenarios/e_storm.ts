/**
 * Scenario case e: 5,000 authenticated connections opened at once, with one
 * token and with 1,000 distinct tokens, Sluice beside the ceiling; its
 * section of bench/RESULTS.md and its targets (all established ≤ 1.5 s).
 *
 * @module
 */
import { ratio, verdict } from "./analysis.ts";
import type { ScenarioCase, TargetRow } from "./case.ts";
import { type Context, measure, num } from "./measure.ts";
import { VIEWERS } from "./plan.ts";
import type { RunRecord, ServerKind } from "./report.ts";
import { commandBlock, DASH, find, int, msText, ratioText, table, unique } from "./tables.ts";

async function run(ctx: Context): Promise<void> {
  const clients = ctx.plan.stormClients;
  const distinct = `${VIEWERS.toLocaleString("en-US")} distinct tokens`;
  const runs: [ServerKind, string, string[]][] = [
    ["sluice", "same token", []],
    ["sluice", distinct, ["--tokens-file", ctx.tokensFile]],
    ["ceiling", "same token", []],
  ];
  for (const transport of ["sse", "ws"] as const) {
    for (const [server, variant, tokens] of runs) {
      if (ctx.stopping) return;
      await measure(ctx, {
        caseId: "e",
        server,
        transport,
        variant,
        clients,
        args: [
          ...["--idle", "--stream", "user", "--transport", transport, "--clients", num(clients)],
          ...["--ramp-ms", "0", "--max-connecting", "500", "--warmup", "0", "--duration", "1"],
          ...tokens,
        ],
      });
    }
  }
}

function cells(run?: RunRecord): string[] {
  const k = run?.report?.connections;
  if (!k) return [DASH, DASH, DASH, DASH];
  const failures = Object.entries(k.failures).map(([why, n]) => `${n}× ${why}`).join("; ");
  return [
    msText(k.establishAllMs),
    msText(k.connectMs.p50),
    msText(k.connectMs.p99),
    `${k.failed}${failures ? ` (${failures})` : ""}`,
  ];
}

function section(runs: RunRecord[]): string[] {
  const keys = unique(runs.map((run) => `${run.transport}|${run.variant}`));
  const rows = keys.map((key) => {
    const [transport, variant] = key.split("|");
    const where = { transport: transport as RunRecord["transport"], variant };
    const s = find(runs, "sluice", where);
    const c = find(runs, "ceiling", { transport: where.transport });
    return [
      transport,
      variant,
      ...cells(s),
      ...cells(c),
      ratioText(ratio(
        s?.report?.connections.establishAllMs,
        c?.report?.connections.establishAllMs,
      )),
      [s?.id, c?.id].filter(Boolean).join(", "),
    ];
  });
  return [
    "## e. Connection storm",
    "",
    "Authenticated connections opened at once (no ramp, 500 attempts in flight), stream `user`; " +
    "the ceiling does not authenticate, so its same-token run is the reference for both rows.",
    "",
    ...table(
      "transport|tokens|Sluice all established|connect p50|p99|failures|" +
        "ceiling all established|connect p50|p99|failures|Sluice/ceiling|runs",
      rows,
    ),
    ...commandBlock(runs),
  ];
}

function targets(runs: readonly RunRecord[]): TargetRow[] {
  return runs.filter((r) => r.caseId === "e" && r.server === "sluice").map((run) => {
    const all = run.report?.connections.establishAllMs ?? null;
    const failed = run.report?.connections.failed ?? 0;
    return {
      target: `e. 5,000 connections ≤ 1.5 s, ${run.transport.toUpperCase()}, ${run.variant}`,
      figure: `${msText(all)} for ${int(run.clients)}, ${failed} failed`,
      verdict: failed > 0 ? `missed: ${failed} failed` : verdict(all, 1500, "max"),
    };
  });
}

/** Case e: connection storm. */
export const connectionStorm: ScenarioCase = {
  id: "e",
  summary: "connection storm",
  run,
  section,
  targets,
};
