/**
 * `deno task bench:scenarios`: the standard benchmark cases, Sluice and the
 * reference broadcaster (bench/ceiling.ts) side by side, written to
 * bench/RESULTS.md.
 *
 *   a. idle memory per connection at 1k, 5k, 10k connections, SSE and WS
 *   b. unfiltered fan-out (`user`, 1,000 clients, 1.5 KB) up to saturation
 *   c. filtered fan-out (`public`, 1,000 seeded viewers), Sluice only
 *   d. latency at 1,000 × 10 msg/s (SSE, WS) and 5,000 mixed × 10 msg/s
 *   e. 5,000 connections at once: one token, then 1,000 distinct tokens
 *   f. 1,000 clients that never read beside 1,000 normal ones
 *
 *   deno run -A bench/scenarios.ts [--only a,b,…] [--quick] [--out bench/RESULTS.md] [--json FILE]
 *
 * The process pins itself to core 1 (`taskset`), so redis-server, PostgreSQL
 * and every load generator run share core 1, while each server under test
 * runs alone on core 0: a fresh process per run, stopped with SIGTERM. Without
 * taskset nothing is pinned and RESULTS.md says so. Progress goes to stderr.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type PostgresServer, startPostgresServer } from "../scripts/postgres_server.ts";
import { type RedisServer, startRedisServer } from "../scripts/redis_server.ts";
import type { LoadReport } from "./_loadgen_report.ts";
import {
  type CaseId,
  type Ladder,
  limitingRun,
  nextRate,
  renderResults,
  rssHalves,
  type RunRecord,
  runStatus,
  type ScenarioResults,
  type ServerKind,
  shellJoin,
  unfilteredSaturation,
  utilisation,
} from "./_scenario_report.ts";
import {
  expectedDeliveries,
  profileCounts,
  seedStatements,
  viewerToken,
} from "./_scenario_seed.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const CASES: readonly CaseId[] = ["a", "b", "c", "d", "e", "f"];
const VIEWERS = 1000;
const PAYLOAD_BYTES = 1500;
const NOFILE = 20_000;
const USER_CHANNEL = "timeline:1";
const SERVER_PERMISSIONS = ["--allow-net", "--allow-env", "--allow-read", "--allow-sys"];
const LOADGEN_PERMISSIONS = [
  ...["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", "--allow-run"],
];
/** The deno on PATH (the command lines in RESULTS.md read as typed). */
const DENO = "deno";
const READY_TIMEOUT_MS = 30_000;
/** SIGKILL a server that has not exited this long after SIGTERM (the measurement is over). */
const STOP_DEADLINE_MS = 3_000;
const LOADGEN_TIMEOUT_MS = 180_000;
const RSS_SAMPLE_MS = 250;
/** Variables that would point Sluice elsewhere than at our services. */
const BLANKED = ["SOCKET", "DATABASE_URL", "REDIS_URL", "REDIS_SENTINELS", "REDIS_NAMESPACE"];

/** Sizes and durations of every case. */
interface Plan {
  idleSizes: number[];
  idleWarmup: number;
  idleHold: number;
  fanoutClients: number;
  ladder: Ladder;
  /** Step factor of the filtered ladder when it starts from the unfiltered saturation. */
  filteredFactor: number;
  duration: number;
  warmup: number;
  drainMs: number;
  latencyClients: number;
  mixedClients: number;
  latencyDuration: number;
  stormClients: number;
  slowClients: number;
  slowRate: number;
  /** Case f publishes long enough to send each slow client this many bytes, within the bounds. */
  slowBytes: number;
  slowSeconds: { min: number; max: number };
}

const FULL: Plan = {
  idleSizes: [1000, 5000, 10_000],
  idleWarmup: 2,
  idleHold: 1,
  fanoutClients: 1000,
  ladder: { start: 20, factor: 1.5, maxSteps: 9, minGap: 1.25 },
  filteredFactor: 1.3,
  duration: 5,
  warmup: 1,
  drainMs: 3000,
  latencyClients: 1000,
  mixedClients: 5000,
  latencyDuration: 10,
  stormClients: 5000,
  slowClients: 1000,
  slowRate: 100,
  slowBytes: 6 * 2 ** 20,
  slowSeconds: { min: 15, max: 40 },
};

const QUICK: Plan = {
  idleSizes: [500],
  idleWarmup: 1,
  idleHold: 0.5,
  fanoutClients: 200,
  ladder: { start: 20, factor: 2, maxSteps: 2, minGap: 1.25 },
  filteredFactor: 2,
  duration: 2,
  warmup: 0.5,
  drainMs: 1000,
  latencyClients: 200,
  mixedClients: 500,
  latencyDuration: 2,
  stormClients: 1000,
  slowClients: 200,
  slowRate: 50,
  slowBytes: 0,
  slowSeconds: { min: 3, max: 3 },
};

/** What every run needs. */
interface Context {
  plan: Plan;
  pinned: boolean;
  redis: RedisServer;
  pg: PostgresServer;
  dir: string;
  tokensFile: string;
  runs: RunRecord[];
  notes: string[];
  /** Servers that had to be SIGKILLed after the SIGTERM deadline. */
  killed: string[];
  stopping: boolean;
  started: number;
}

/** What sets one run apart. */
interface RunSpec {
  caseId: CaseId;
  server: ServerKind;
  transport: RunRecord["transport"];
  variant?: string;
  clients: number;
  rate?: number;
  /** Redis channel the ceiling relays. */
  channel?: string;
  /** Load generator arguments after --url, --server-pid and --redis. */
  args: string[];
  /** Watch the loadgen's phases and sample the server's RSS (case f). */
  watch?: boolean;
  /** Deliveries expected given the seeded filters (case c). */
  expected?: (report: LoadReport) => number;
}

function say(ctx: Pick<Context, "started">, message: string): void {
  const s = Math.round((Date.now() - ctx.started) / 1000);
  const clock = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  console.error(`[scenarios +${clock}] ${message}`);
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

function pin(ctx: Context, core: 0 | 1): string[] {
  return ctx.pinned ? ["taskset", "-c", String(core)] : [];
}

/** `bash -c 'ulimit -n 20000; exec WORDS'`, so the pid is the program's own. */
function wrapped(words: string[], redirect = ""): string[] {
  return ["bash", "-c", `ulimit -n ${NOFILE}; exec ${shellJoin(words)}${redirect}`];
}

function serverWords(ctx: Context, server: ServerKind, port: number, channel: string): string[] {
  const deno = DENO;
  if (server === "sluice") return [...pin(ctx, 0), deno, "run", ...SERVER_PERMISSIONS, "main.ts"];
  return [
    ...[...pin(ctx, 0), deno, "run", "--allow-net", "bench/ceiling.ts", "--port", String(port)],
    ...["--redis", ctx.redis.url, "--channel", channel],
  ];
}

function sluiceEnv(ctx: Context, port: number): Record<string, string> {
  return {
    NODE_ENV: "production",
    PORT: String(port),
    BIND: "127.0.0.1",
    REDIS_HOST: "127.0.0.1",
    REDIS_PORT: String(ctx.redis.port),
    DB_HOST: "127.0.0.1",
    DB_PORT: String(ctx.pg.port),
    DB_USER: ctx.pg.user,
    DB_NAME: ctx.pg.database,
    DB_PASS: "",
  };
}

/** A server under test, running. */
interface Target {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

async function startTarget(ctx: Context, server: ServerKind, channel: string): Promise<Target> {
  const port = freePort();
  const log = `${ctx.dir}/${server}-${port}.log`;
  const env: Record<string, string> = { ...Deno.env.toObject(), ...sluiceEnv(ctx, port) };
  for (const name of BLANKED) delete env[name];
  const [program, ...args] = wrapped(serverWords(ctx, server, port, channel), ` >${log} 2>&1`);
  const child = new Deno.Command(program, { args, cwd: ROOT, env, clearEnv: true, stdin: "null" })
    .spawn();
  const stop = async () => {
    const kill = (signal: Deno.Signal) => {
      try {
        child.kill(signal);
      } catch { /* already exited */ }
    };
    kill("SIGTERM");
    const late = setTimeout(() => {
      ctx.killed.push(`${server} on port ${port}`);
      kill("SIGKILL");
    }, STOP_DEADLINE_MS);
    await child.status;
    clearTimeout(late);
  };
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (!exited && Date.now() < deadline) {
    if (await isReady(server, port, log)) return { pid: child.pid, port, stop };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop();
  const tail = (await Deno.readTextFile(log).catch(() => "")).trim().split("\n").slice(-3);
  throw new Error(`${server} did not become ready on port ${port}: ${tail.join(" | ")}`);
}

/** Sluice: the health check answers OK; the ceiling: it printed that it listens (Redis subscribed). */
async function isReady(server: ServerKind, port: number, log: string): Promise<boolean> {
  if (server === "ceiling") {
    return (await Deno.readTextFile(log).catch(() => "")).includes("ceiling listening");
  }
  try {
    const response = await fetch(`http://127.0.0.1:${port}/api/v1/streaming/health`);
    return (await response.text()) === "OK";
  } catch {
    return false;
  }
}

/** The load generator's phases as it reported them (only when not `--quiet`). */
class PhaseClock {
  readonly seen: { at: number; phase: string }[] = [];

  /** Reads `[loadgen] PHASE: …` lines as they come. */
  async follow(stream: ReadableStream<Uint8Array>): Promise<string> {
    let pending = "", all = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      all += chunk;
      const lines = (pending + chunk).split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const match = /^\[loadgen\] ([a-z ]+):/.exec(line);
        if (match) this.seen.push({ at: Date.now(), phase: match[1] });
      }
    }
    return all;
  }

  /** Publishing (with the drain) as [start, end] in epoch ms, halfway between progress lines. */
  window(exitedAt: number): [number, number] | undefined {
    const first = this.seen.findIndex((s) => s.phase === "publishing");
    if (first < 0) return undefined;
    const after = this.seen.findIndex((s, i) => i > first && s.phase !== "publishing");
    const last = after < 0 ? this.seen.length - 1 : after - 1;
    const before = this.seen[first - 1]?.at ?? this.seen[first].at - 1000;
    const next = after < 0 ? exitedAt : this.seen[after].at;
    return [(before + this.seen[first].at) / 2, (this.seen[last].at + next) / 2];
  }
}

/** Samples a process's RSS every 250 ms. */
function sampleRss(pid: number): { samples: [number, number][]; stop(): void } {
  const samples: [number, number][] = [];
  const timer = setInterval(async () => {
    const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (kb) samples.push([Date.now(), Number(kb[1]) * 1024]);
  }, RSS_SAMPLE_MS);
  return { samples, stop: () => clearInterval(timer) };
}

async function runLoadgen(ctx: Context, id: string, words: string[], watch: boolean) {
  const json = `${ctx.dir}/${id}.json`;
  const tail = watch ? ["--json", json] : ["--json", json, "--quiet"];
  const [program, ...args] = wrapped([...words, ...tail]);
  const child = new Deno.Command(program, {
    args,
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(LOADGEN_TIMEOUT_MS),
  }).spawn();
  const phases = new PhaseClock();
  const [stdout, stderr, status] = await Promise.all([
    new Response(child.stdout).text(),
    phases.follow(child.stderr),
    child.status,
  ]);
  const exitedAt = Date.now();
  if (!status.success) {
    const why = (stderr.trim() || stdout.trim()).split("\n").slice(-2).join(" | ");
    return { error: `loadgen exited with ${status.code}: ${why}`, phases, exitedAt };
  }
  const report = JSON.parse(await Deno.readTextFile(json)) as LoadReport;
  return { report, phases, exitedAt };
}

async function redisCli(ctx: Context, ...command: string[]): Promise<string | undefined> {
  const output = await new Deno.Command("redis-cli", {
    args: ["-p", String(ctx.redis.port), ...command],
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  return output?.success ? new TextDecoder().decode(output.stdout).trim() : undefined;
}

/** `id` and `omem` of each pubsub client in a `CLIENT LIST` reply. */
export function parsePubsubClients(list: string): { id: string; outputBytes: number }[] {
  return list.split("\n").flatMap((line) => {
    const id = /(?:^|\s)id=(\d+)/.exec(line)?.[1];
    const omem = /(?:^|\s)omem=(\d+)/.exec(line)?.[1];
    return id === undefined ? [] : [{ id, outputBytes: Number(omem ?? 0) }];
  });
}

/** Samples the pubsub clients of Redis every second while a run goes on. */
function watchSubscriber(ctx: Context): { stop(): Promise<RunRecord["subscriber"]> } {
  const ids = new Set<string>();
  let maxOutputBytes = 0, samples = 0;
  const sample = async () => {
    const list = await redisCli(ctx, "client", "list", "type", "pubsub");
    if (list === undefined) return;
    samples++;
    for (const client of parsePubsubClients(list)) {
      ids.add(client.id);
      maxOutputBytes = Math.max(maxOutputBytes, client.outputBytes);
    }
  };
  const timer = setInterval(sample, 1000);
  return {
    async stop() {
      clearInterval(timer);
      await sample();
      return samples === 0 ? null : { maxOutputBytes, connections: ids.size };
    },
  };
}

/** One run: a fresh server, the load generator against it, the server stopped. */
async function measure(ctx: Context, spec: RunSpec): Promise<RunRecord> {
  const n = ctx.runs.filter((run) => run.caseId === spec.caseId).length + 1;
  const record: RunRecord = {
    id: `${spec.caseId}${n}`,
    caseId: spec.caseId,
    server: spec.server,
    transport: spec.transport,
    variant: spec.variant ?? "",
    clients: spec.clients,
    rate: spec.rate ?? null,
    port: null,
    serverPid: null,
    command: "",
    report: null,
    subscriber: null,
  };
  ctx.runs.push(record);
  let target: Target | undefined;
  try {
    target = await startTarget(ctx, spec.server, spec.channel ?? USER_CHANNEL);
    record.port = target.port;
    record.serverPid = target.pid;
    const words = [
      ...[...pin(ctx, 1), DENO, "run", ...LOADGEN_PERMISSIONS, "bench/loadgen.ts"],
      ...["--url", `http://127.0.0.1:${target.port}`, "--server-pid", String(target.pid)],
      ...["--redis", ctx.redis.url, ...spec.args],
    ];
    record.command = shellJoin(words);
    const rss = spec.watch ? sampleRss(target.pid) : undefined;
    const subscriber = watchSubscriber(ctx);
    const outcome = await runLoadgen(ctx, record.id, words, spec.watch ?? false);
    rss?.stop();
    record.subscriber = await subscriber.stop();
    if (outcome.error !== undefined) record.error = outcome.error;
    if (outcome.report) {
      record.report = outcome.report;
      if (spec.expected) record.expected = spec.expected(outcome.report);
      const window = outcome.phases.window(outcome.exitedAt);
      if (rss) record.rssHalves = window ? rssHalves(rss.samples, ...window) : null;
    }
  } catch (error) {
    record.error = error instanceof Error ? error.message : String(error);
  } finally {
    await target?.stop();
  }
  say(ctx, describe(record));
  return record;
}

function describe(run: RunRecord): string {
  const head = `${run.id} ${run.server} ${run.transport} ×${run.clients}` +
    `${run.variant ? ` (${run.variant})` : ""}${run.rate ? ` at ${run.rate}/s` : ""}`;
  const r = run.report;
  if (!r) return `${head}: FAILED ${run.error ?? ""}`;
  const u = utilisation(run);
  const pct = (x: number | null) => x === null ? "–" : `${Math.round(100 * x)} %`;
  if (!r.publishing) {
    const c = r.connections;
    const perConn = r.server?.rssPerConnectionBytes;
    return `${head}: ${c.established}/${c.attempted} established in ${c.establishAllMs} ms` +
      `${perConn ? `, ${(perConn / 1024).toFixed(1)} KB per connection` : ""}`;
  }
  return `${head}: ${runStatus(run)}, ${Math.round(r.deliveries.perSecond ?? 0)} deliveries/s, ` +
    `p99 ${r.latencyMs.p99} ms, server CPU ${pct(u.server)}, loadgen CPU ${pct(u.loadgen)}` +
    `${r.slow.attempted ? `, ${r.slow.cutByServer}/${r.slow.opened} slow cut` : ""}`;
}

function num(value: number): string {
  return String(value);
}

function publishArgs(
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

async function caseA(ctx: Context): Promise<void> {
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

async function caseB(ctx: Context): Promise<void> {
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

async function caseC(ctx: Context): Promise<void> {
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

async function caseD(ctx: Context): Promise<void> {
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

async function caseE(ctx: Context): Promise<void> {
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

async function caseF(ctx: Context): Promise<void> {
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

/** The plan's rate, lowered to 60 % of the slowest measured saturation so both servers keep up. */
function slowCaseRate(ctx: Context): number {
  const p = ctx.plan;
  const ladders = unfilteredSaturation(ctx.runs).flatMap((u) => [u.sluice, u.ceiling]);
  const rates = ladders.flatMap((run) =>
    run?.rate && limitingRun(ctx.runs.filter((r) => sameLadder(r, run)))
      ? [run.rate * run.clients / p.slowClients]
      : []
  );
  if (rates.length === 0) return p.slowRate;
  const capped = Math.round(Math.min(p.slowRate, 0.6 * Math.min(...rates)));
  if (capped < p.slowRate) {
    ctx.notes.push(
      `Case f ran at ${capped} msg/s instead of ${p.slowRate}: 60 % of the lowest saturation ` +
        "measured in case b, so that the runs without slow clients keep up.",
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

const RUNNERS: Record<CaseId, (ctx: Context) => Promise<void>> = {
  a: caseA,
  b: caseB,
  c: caseC,
  d: caseD,
  e: caseE,
  f: caseF,
};

async function text(program: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(program, {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  })
    .output().catch(() => undefined);
  return output?.success ? new TextDecoder().decode(output.stdout).trim() : "";
}

async function machine(): Promise<ScenarioResults["machine"]> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const commit = await text("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = (await text("git", ["status", "--porcelain", "--untracked-files=no"])) !== "";
  return {
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown",
    cores: cpuinfo.match(/^processor\s*:/gm)?.length ?? navigator.hardwareConcurrency,
    memoryBytes: Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0) * 1024,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    date: new Date().toISOString(),
    commit: commit ? `${commit}${dirty ? " + uncommitted changes" : ""}` : "unknown",
    loadAverage: (await Deno.readTextFile("/proc/loadavg").catch(() => "")).split(" ")
      .slice(0, 3).join(" "),
  };
}

/** Pins this process (every thread) to core 1, so the services and load generators it starts are too. */
async function pinSelf(): Promise<boolean> {
  const output = await new Deno.Command("taskset", {
    args: ["-a", "-p", "-c", "1", String(Deno.pid)],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => undefined);
  return output?.success ?? false;
}

function commandTemplates(ctx: Context): ScenarioResults["commands"] {
  const env = Object.entries(sluiceEnv(ctx, 0)).map(([k, v]) =>
    `${k}=${k === "PORT" ? "<port>" : v}`
  );
  const log = " >LOG 2>&1";
  const loadgen = [
    ...[...pin(ctx, 1), DENO, "run", ...LOADGEN_PERMISSIONS, "bench/loadgen.ts"],
    ...["--url", "http://127.0.0.1:PORT", "--server-pid", "PID", "--redis", ctx.redis.url],
    ...["ARGS", "--json", "RUN.json", "--quiet"],
  ];
  return {
    sluice: `env ${env.join(" ")} \\\n  ` +
      shellJoin(wrapped(serverWords(ctx, "sluice", 0, USER_CHANNEL), log)),
    ceiling: shellJoin(wrapped(serverWords(ctx, "ceiling", 0, USER_CHANNEL), log))
      .replace("--port 0 ", "--port PORT "),
    loadgen: shellJoin(wrapped(loadgen)),
    services: `redis-server --port ${ctx.redis.port} --bind 127.0.0.1 --save '' --appendonly no` +
      ` (scripts/redis_server.ts)\npostgres -p ${ctx.pg.port} -c fsync=off … ` +
      `(scripts/postgres_server.ts: test_data/mastodon-schema.sql + mastodon-seed.sql, then ` +
      `${VIEWERS} viewers from bench/_scenario_seed.ts)` +
      (ctx.pinned ? "; both inherit the scenario process's pinning to core 1" : ""),
  };
}

async function seed(ctx: Pick<Context, "pg" | "dir">): Promise<string> {
  for (const statement of seedStatements(VIEWERS)) await ctx.pg.query(statement);
  const file = `${ctx.dir}/tokens.txt`;
  const tokens = Array.from({ length: VIEWERS }, (_, i) => viewerToken(i));
  await Deno.writeTextFile(file, tokens.join("\n") + "\n");
  return file;
}

/** Parsed command line. */
interface Cli {
  cases: CaseId[];
  quick: boolean;
  out: string;
  json?: string;
}

const USAGE =
  `Usage: deno run -A bench/scenarios.ts [--only a,b,c,d,e,f] [--quick] [--out FILE] [--json FILE]
  --only LIST   cases to run (default all): a idle memory, b unfiltered fan-out, c filtered
                fan-out, d latency, e connection storm, f slow clients
  --quick       small client counts and 2 s runs: a smoke run of a minute or two
  --out FILE    Markdown results (default bench/RESULTS.md)
  --json FILE   every raw figure as JSON`;

/** Parses the command line; throws RangeError on bad input, returns "help" for --help. */
export function parseCli(args: string[]): Cli | "help" {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      only: { type: "string" },
      quick: { type: "boolean", default: false },
      out: { type: "string", default: "bench/RESULTS.md" },
      json: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return "help";
  const only = values.only?.split(",").map((c) => c.trim().toLowerCase()).filter(Boolean);
  const unknown = only?.filter((c) => !CASES.includes(c as CaseId));
  if (unknown?.length) throw new RangeError(`--only: unknown case(s) ${unknown.join(", ")}`);
  const cases = CASES.filter((c) => only === undefined || only.includes(c));
  if (cases.length === 0) throw new RangeError("--only: no case given");
  return { cases, quick: values.quick, out: values.out, json: values.json };
}

async function main(args: string[]): Promise<number> {
  let cli;
  try {
    cli = parseCli(args);
  } catch (error) {
    if (!(error instanceof RangeError || error instanceof TypeError)) throw error;
    console.error(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (cli === "help") {
    console.log(USAGE);
    return 0;
  }
  const started = Date.now();
  const pinned = await pinSelf();
  const info = await machine();
  say({ started }, `starting redis-server and PostgreSQL${pinned ? " on core 1" : " (unpinned)"}…`);
  await using stack = new AsyncDisposableStack();
  const dir = await Deno.makeTempDir({ prefix: "scenarios" });
  stack.defer(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
  const redis = stack.use(await startRedisServer());
  const pg = stack.use(await startPostgresServer());
  const tokensFile = await seed({ pg, dir });
  const plan = cli.quick ? QUICK : FULL;
  const ctx: Context = {
    plan,
    pinned,
    redis,
    pg,
    dir,
    tokensFile,
    runs: [],
    killed: [],
    notes: [],
    stopping: false,
    started,
  };
  const onSigint = () => ctx.stopping = true;
  Deno.addSignalListener("SIGINT", onSigint);
  stack.defer(() => Deno.removeSignalListener("SIGINT", onSigint));
  if (!pinned) ctx.notes.push("taskset was not available: nothing was pinned to a core.");
  for (const caseId of cli.cases) {
    if (ctx.stopping) break;
    say(ctx, `case ${caseId}…`);
    await RUNNERS[caseId](ctx);
  }
  if (ctx.killed.length) {
    ctx.notes.push(
      `${ctx.killed.length} server process(es) had not exited ${STOP_DEADLINE_MS / 1000} s after ` +
        `SIGTERM and were killed (after their run was measured): ${ctx.killed.join(", ")}.`,
    );
  }
  if (ctx.stopping) ctx.notes.push("The run was interrupted (SIGINT): some figures are missing.");
  const results: ScenarioResults = {
    quick: cli.quick,
    cases: cli.cases,
    startedAt: new Date(started).toISOString(),
    elapsedSeconds: (Date.now() - started) / 1000,
    machine: info,
    pinned,
    invocation: shellJoin(["deno", "run", "-A", "bench/scenarios.ts", ...args]),
    commands: commandTemplates(ctx),
    redisOutputBufferLimit: (await redisCli(ctx, "config", "get", "client-output-buffer-limit"))
      ?.split("\n").slice(1).join(" ") ?? "unknown",
    seed: {
      viewers: VIEWERS,
      kinds: [...profileCounts(VIEWERS)].map(([kind, k]) => ({ kind, ...k })),
    },
    notes: ctx.notes,
    runs: ctx.runs,
  };
  await Deno.writeTextFile(cli.out, renderResults(results));
  if (cli.json) await Deno.writeTextFile(cli.json, JSON.stringify(results, null, 2) + "\n");
  say(ctx, `wrote ${cli.out}${cli.json ? ` and ${cli.json}` : ""} (${results.runs.length} runs)`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`scenarios failed: ${error instanceof Error ? error.stack : error}`);
    Deno.exit(1);
  }
}
