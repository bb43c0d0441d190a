/**
 * Scenario case f (bench/scenarios.ts): clients that never read beside
 * normal ones, against the same run without them, at a rate both servers
 * keep up with, long enough to fill what the kernel buffers for a socket.
 *
 * @module
 */
import { limitingRun, unfilteredSaturation } from "./analysis.ts";
import { num, publishArgs } from "./cases.ts";
import { type Context, measure } from "./measure.ts";
import { PAYLOAD_BYTES, USER_CHANNEL } from "./plan.ts";
import type { RunRecord } from "./report.ts";

/** Case f: slow clients, with and without, Sluice and the ceiling, SSE and WS. */
export async function caseF(ctx: Context): Promise<void> {
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
  const mb = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MB`;
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
