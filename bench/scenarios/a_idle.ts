/**
 * Scenario case a: idle memory per connection at each size, SSE and WS,
 * Sluice beside the ceiling, and Sluice's own share (Sluice − ceiling, per
 * connection at each size and marginal between sizes); its section of
 * bench/RESULTS.md and its targets (≤ 25 KB per SSE, ≤ 8 KB per WebSocket
 * connection at 10,000; Sluice's own share ≤ 2 KB per connection).
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

/** Sluice's own share: the allowed bytes per connection above the ceiling's. */
const OWN_SHARE_LIMIT_KB = 2;

const perConnection = (run?: RunRecord) => run?.report?.server?.rssPerConnectionBytes ?? null;

/** Sluice − ceiling, bytes per connection; null when either is missing. */
function share(s: number | null, c: number | null): number | null {
  return s === null || c === null ? null : s - c;
}

function idleRss(run?: RunRecord): number | null {
  return run?.report?.server?.rssIdleBytes ?? null;
}

/** Per transport and pair of consecutive sizes: idle RSS growth per added connection. */
function marginalRows(runs: readonly RunRecord[]): string[][] {
  const rows: string[][] = [];
  for (const transport of ["sse", "ws"] as const) {
    const sizes = unique(runs.filter((r) => r.transport === transport).map((r) => r.clients))
      .sort((x, y) => x - y);
    for (let i = 1; i < sizes.length; i++) {
      const [from, to] = [sizes[i - 1], sizes[i]];
      const slope = (server: "sluice" | "ceiling") => {
        const [a, b] = [from, to].map((clients) =>
          idleRss(find(runs, server, { transport, clients }))
        );
        return a === null || b === null ? null : (b - a) / (to - from);
      };
      const [s, c] = [slope("sluice"), slope("ceiling")];
      rows.push([transport, `${int(from)} → ${int(to)}`, kb(s), kb(c), kb(share(s, c))]);
    }
  }
  return rows;
}

function section(runs: RunRecord[]): string[] {
  const rows = unique(runs.map((run) => `${run.transport} ${run.clients}`)).map((key) => {
    const [transport, clients] = key.split(" ");
    const where = { transport: transport as RunRecord["transport"], clients: Number(clients) };
    const s = find(runs, "sluice", where);
    const c = find(runs, "ceiling", where);
    const per = perConnection;
    const rss = (run?: RunRecord) =>
      `${mb(run?.report?.server?.rssBaselineBytes)} → ${mb(run?.report?.server?.rssIdleBytes)}`;
    const est = (run?: RunRecord) => int(run?.report?.connections.established);
    return [
      transport,
      int(Number(clients)),
      kb(per(s)),
      kb(per(c)),
      kb(share(per(s), per(c))),
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
      "transport|connections|Sluice per conn|ceiling per conn|Sluice own (S − C)|Sluice/ceiling|" +
        "Sluice RSS before → idle|ceiling RSS before → idle|established (S / C)|" +
        "runs",
      rows,
    ),
    "Marginal memory: idle RSS growth per added connection between two sizes (fresh processes " +
    "at each size); Sluice's own share is Sluice − ceiling. V8 grows its young generation with " +
    "the allocation rate up to a cap and keeps it, so a small size can show a one-off growth " +
    "as per-connection memory; `bench/idle_memory.ts` measures the JS heap per connection " +
    "inside both servers (forced GC, heap snapshots with `--snapshots`, the young generation " +
    "fixed with `--semi-space-mb`).",
    "",
    ...table(
      "transport|sizes|Sluice per added conn|ceiling per added conn|Sluice own (S − C)",
      marginalRows(runs),
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
  for (const transport of ["sse", "ws"] as const) {
    const largest = Math.max(
      0,
      ...runs.filter((r) => r.caseId === "a" && r.transport === transport).map((r) => r.clients),
    );
    const where = { caseId: "a", transport, clients: largest };
    const own = share(
      perConnection(find(runs, "sluice", where)),
      perConnection(find(runs, "ceiling", where)),
    );
    if (largest === 0) continue;
    rows.push({
      target:
        `a. Sluice's own idle ${transport.toUpperCase()} share ≤ ${OWN_SHARE_LIMIT_KB} KB per connection (Sluice − ceiling)`,
      figure: `${kb(own)} at ${int(largest)}`,
      verdict: verdict(own === null ? null : own / 1024, OWN_SHARE_LIMIT_KB, "max"),
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
