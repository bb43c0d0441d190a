/**
 * The runners of scenario cases a to e (bench/scenarios.ts; case f is in
 * bench/scenarios/slow_case.ts): which runs each case makes, Sluice beside
 * the ceiling, and the rate ladders that find the saturation of fan-out.
 *
 * @module
 */
import { type Ladder, nextRate, runStatus, unfilteredSaturation } from "./analysis.ts";
import { type Context, measure, type RunSpec } from "./measure.ts";
import { PAYLOAD_BYTES, USER_CHANNEL, VIEWERS } from "./plan.ts";
import type { ServerKind } from "./report.ts";
import { expectedDeliveries } from "./seed.ts";

/** A number as a command-line argument. */
export function num(value: number): string {
  return String(value);
}

/** Load generator arguments of a publishing run: transport, clients, rate and timings. */
export function publishArgs(
  ctx: Context,
  transport: string,
  clients: number,
  rate: number,
  duration = ctx.plan.duration,
): string[] {
  const { warmup, drainMs } = ctx.plan;
  return [
    ...["--transport", transport, "--clients", num(clients), "--rate", num(rate)],
    ...["--payload-bytes", num(PAYLOAD_BYTES), "--duration", num(duration)],
    ...["--warmup", num(warmup), "--drain-ms", num(drainMs)],
  ];
}

/** Case a: idle memory per connection at each size, SSE and WS. */
export async function caseA(ctx: Context): Promise<void> {
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

/** Climbs a rate ladder with fresh servers until it finds the saturation point. */
async function ladder(ctx: Context, steps: Ladder, spec: (rate: number) => RunSpec) {
  const tried: { rate: number; ok: boolean }[] = [];
  for (let rate = nextRate(tried, steps); rate !== undefined; rate = nextRate(tried, steps)) {
    if (ctx.stopping) return;
    const run = await measure(ctx, spec(rate));
    tried.push({ rate, ok: runStatus(run) === "kept up" });
  }
}

/** Case b: unfiltered fan-out ladders, Sluice and the ceiling. */
export async function caseB(ctx: Context): Promise<void> {
  const clients = ctx.plan.fanoutClients;
  for (const transport of ["sse", "ws"] as const) {
    for (const server of ["sluice", "ceiling"] as const) {
      await ladder(ctx, ctx.plan.ladder, (rate) => ({
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

/** Case c: filtered fan-out ladders, Sluice only, from half the unfiltered saturation. */
export async function caseC(ctx: Context): Promise<void> {
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
    await ladder(ctx, steps, (rate) => ({
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

/** Case d: latency at 10 msg/s, SSE, WS and mixed. */
export async function caseD(ctx: Context): Promise<void> {
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

/** Case e: connection storms, one token and distinct tokens. */
export async function caseE(ctx: Context): Promise<void> {
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
