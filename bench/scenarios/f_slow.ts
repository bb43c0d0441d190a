/**
 * Scenario case f: clients that never read beside normal ones, against the
 * same run without them, at a rate both servers keep up with, long enough to
 * fill what the kernel buffers for a socket; its section of bench/RESULTS.md
 * and its targets (RSS plateaus, normal p99 within 2× of the run without).
 *
 * @module
 */
import { deliveredShare, limitingRun, ratio, unfilteredSaturation, verdict } from "./analysis.ts";
import type { ScenarioCase, TargetRow } from "./case.ts";
import { type Context, measure, num, publishArgs } from "./measure.ts";
import { PAYLOAD_BYTES, USER_CHANNEL } from "./plan.ts";
import type { RunRecord, ServerKind } from "./report.ts";
import { commandBlock, DASH, int, mb, msText, pct, ratioText, table } from "./tables.ts";

/** RSS growth over the second half of publishing that still counts as a plateau. */
export const PLATEAU_GROWTH = 0.05;

/** Slow clients, with and without, Sluice and the ceiling, SSE and WS. */
async function run(ctx: Context): Promise<void> {
  const p = ctx.plan;
  const rate = slowCaseRate(ctx);
  const { min, max } = p.slowSeconds;
  const seconds = Math.min(max, Math.max(min, Math.ceil(p.slowBytes / (rate * PAYLOAD_BYTES))));
  ctx.notes.push(await slowCaseNote(rate, seconds, p.slowClients));
  for (const transport of ["sse", "ws"] as const) {
    for (const server of ["sluice", "ceiling"] as const) {
      for (const slow of [0, p.slowClients]) {
        if (ctx.stopping) return;
        await measure(ctx, {
          caseId: "f",
          server,
          transport,
          variant: slow ? "slow" : "",
          clients: p.slowClients,
          rate,
          watch: true,
          args: [
            ...["--stream", "user", "--channel", USER_CHANNEL, "--slow", num(slow)],
            ...publishArgs(ctx, transport, p.slowClients, rate, seconds),
          ],
        });
      }
    }
  }
}

/**
 * The plan's rate, lowered so that sending to every client of the run with
 * slow clients (the normal ones and the slow ones, until they are cut) costs
 * at most 60 % of the lowest saturation measured in case b: the case measures
 * how slow clients are isolated, not how a saturated server behaves.
 */
export function slowCaseRate(ctx: Pick<Context, "plan" | "runs" | "notes">): number {
  const p = ctx.plan;
  const receivers = 2 * p.slowClients;
  const ladders = unfilteredSaturation(ctx.runs).flatMap((u) => [u.sluice, u.ceiling]);
  const rates = ladders.flatMap((run) =>
    run?.rate && limitingRun(ctx.runs.filter((r) => sameLadder(r, run)))
      ? [run.rate * run.clients / receivers]
      : []
  );
  if (rates.length === 0) return p.slowRate;
  const capped = Math.round(Math.min(p.slowRate, 0.6 * Math.min(...rates)));
  if (capped < p.slowRate) {
    ctx.notes.push(
      `Case f ran at ${capped} msg/s instead of ${p.slowRate}: with ${receivers} clients ` +
        "(normal and slow), 60 % of the lowest saturation measured in case b.",
    );
  }
  return Math.max(1, capped);
}

function sameLadder(x: RunRecord, y: RunRecord): boolean {
  return x.caseId === y.caseId && x.server === y.server && x.transport === y.transport;
}

/** How much each slow client was sent, against what the kernel holds for sockets nobody reads. */
async function slowCaseNote(rate: number, seconds: number, slow: number): Promise<string> {
  const sysctl = async (name: string) =>
    (await Deno.readTextFile(`/proc/sys/net/ipv4/${name}`).catch(() => "")).trim().split(/\s+/)
      .map(Number);
  const wmemMax = (await sysctl("tcp_wmem"))[2];
  const memMaxPages = (await sysctl("tcp_mem"))[2];
  const limits = [
    wmemMax ? `net.ipv4.tcp_wmem max ${mb(wmemMax)} per socket` : "",
    memMaxPages ? `net.ipv4.tcp_mem max ${mb(memMaxPages * 4096)} for all TCP sockets` : "",
  ].filter(Boolean).join(", ");
  return `Case f published ${rate} msg/s for ${seconds} s: about ` +
    `${mb(rate * seconds * PAYLOAD_BYTES)} per slow client, ${slow} slow clients. A loopback ` +
    "socket that is never read absorbs a few MB in the kernel before the server's own queue " +
    "grows (about 3.7 MB in a test on the development machine" +
    (limits ? `; ${limits}` : "") + "), so slow clients are cut only once the rest exceeds the " +
    "server's per-client queue. When all never-read sockets together reach the system-wide " +
    "TCP limit, the kernel stops growing the buffers of every socket, normal clients' included.";
}

/** Case f figures per transport and server: with and without slow clients. */
function slowPairs(runs: readonly RunRecord[]) {
  const f = runs.filter((run) => run.caseId === "f");
  return [...new Set(f.map((run) => `${run.server}|${run.transport}`))].map((key) => {
    const [server, transport] = key.split("|") as [ServerKind, RunRecord["transport"]];
    const slow = f.find((r) =>
      r.server === server && r.transport === transport && r.variant === "slow"
    );
    const plain = f.find((r) =>
      r.server === server && r.transport === transport && r.variant === ""
    );
    const halves = slow?.rssHalves;
    return {
      server,
      transport,
      slow,
      plain,
      /** RSS growth from the first to the second half of publishing (≤ 5 %: a plateau). */
      growth: halves && halves.first > 0 ? halves.second / halves.first - 1 : null,
      p99Ratio: ratio(slow?.report?.latencyMs.p99, plain?.report?.latencyMs.p99),
    };
  });
}

function section(runs: RunRecord[]): string[] {
  const detail = runs.map((run) => {
    const r = run.report;
    const s = r?.server;
    return [
      run.id,
      run.server,
      run.transport,
      run.variant === "slow" ? `${int(r?.slow.opened)} slow` : "none",
      mb(s?.rssIdleBytes),
      mb(s?.rssPeakBytes),
      mb(s?.rssEndBytes),
      run.rssHalves ? `${mb(run.rssHalves.first)} → ${mb(run.rssHalves.second)}` : DASH,
      msText(r?.latencyMs.p99),
      pct(deliveredShare(run)),
      run.variant === "slow" ? `${int(r?.slow.cutByServer)} of ${int(r?.slow.opened)}` : DASH,
      int(r?.disconnects.total),
    ];
  });
  const summary = slowPairs(runs).map((p) => [
    p.server,
    p.transport,
    mb(
      p.slow?.report?.server?.rssPeakBytes && p.plain?.report?.server?.rssPeakBytes
        ? p.slow.report.server.rssPeakBytes - p.plain.report.server.rssPeakBytes
        : null,
    ),
    p.growth === null ? DASH : `${(100 * p.growth).toFixed(1)} %`,
    verdict(p.growth, PLATEAU_GROWTH, "max"),
    ratioText(p.p99Ratio),
    verdict(p.p99Ratio, 2, "max"),
    int(p.slow?.report?.slow.cutByServer),
  ]);
  return [
    "## f. Slow clients",
    "",
    "Normal clients beside clients that never read (`--slow`), stream `user`, against the same " +
    "run without slow clients. The RSS halves are the largest server RSS sampled (every 250 ms) " +
    "in the first and in the second half of publishing; the publishing window is located from " +
    "the load generator's progress lines (once a second), so its edges are approximate. These " +
    "runs keep the progress lines, so they have no `--quiet`.",
    "",
    ...table(
      "server|transport|peak RSS added by slow clients|RSS growth, 2nd vs 1st half|" +
        `plateau (≤ ${100 * PLATEAU_GROWTH} %)|normal p99 with/without|within 2×|slow clients cut`,
      summary,
    ),
    ...table(
      "run|server|transport|slow|RSS idle|peak|end|RSS 1st → 2nd half|" +
        "normal p99|delivered|slow cut|normal cut",
      detail,
    ),
    ...commandBlock(runs),
  ];
}

function targets(runs: readonly RunRecord[]): TargetRow[] {
  return slowPairs(runs).filter((pair) => pair.server === "sluice").flatMap((p) => [{
    target: `f. ${p.transport.toUpperCase()}: RSS plateaus with slow clients`,
    figure: p.growth === null ? DASH : `${(100 * p.growth).toFixed(1)} % growth in 2nd half; ` +
      `${int(p.slow?.report?.slow.cutByServer)} of ${int(p.slow?.report?.slow.opened)} slow cut`,
    verdict: verdict(p.growth, PLATEAU_GROWTH, "max"),
  }, {
    target: `f. ${p.transport.toUpperCase()}: normal p99 within 2× of the run without slow clients`,
    figure: `${ratioText(p.p99Ratio)} (${msText(p.slow?.report?.latencyMs.p99)} vs ${
      msText(p.plain?.report?.latencyMs.p99)
    })`,
    verdict: verdict(p.p99Ratio, 2, "max"),
  }]);
}

/** Case f: slow clients. */
export const slowClients: ScenarioCase = {
  id: "f",
  summary: "slow clients",
  run,
  section,
  uses: [{
    caseId: "b",
    whenRun: "its publishing rate (at most 60 % of the lowest saturation measured in case b)",
  }],
  targets,
};
