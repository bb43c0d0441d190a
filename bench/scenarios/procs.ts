/**
 * The processes of a scenario run (bench/scenarios.ts): a fresh server under
 * test (Sluice or the ceiling, bench/ceiling.ts) started on a free port and
 * stopped with SIGTERM then SIGKILL, the load generator run against it, the
 * pinning of servers to core 0 and of everything else to core 1 (case g's
 * Sluice alone may use every core), and the command templates RESULTS.md
 * shows. Sluice is told its worker count: one, unless a case asks for more.
 *
 * @module
 */
import type { PostgresServer } from "../../scripts/postgres_server.ts";
import type { RedisServer } from "../../scripts/redis_server.ts";
import type { LoadReport } from "../loadgen/report.ts";
import { USER_CHANNEL, VIEWERS } from "./plan.ts";
import { type ScenarioResults, type ServerKind, shellJoin } from "./report.ts";
import { PhaseClock } from "./samplers.ts";
import { freePort } from "../../scripts/free_port.ts";

/** The repository root: the working directory of every process started. */
export const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const NOFILE = 20_000;
const SERVER_PERMISSIONS = ["--allow-net", "--allow-env", "--allow-read", "--allow-sys"];
const LOADGEN_PERMISSIONS = [
  ...["--allow-net", "--allow-read", "--allow-write", "--allow-env", "--allow-sys", "--allow-run"],
];
/** The deno on PATH (the command lines in RESULTS.md read as typed). */
const DENO = "deno";
const READY_TIMEOUT_MS = 30_000;
/** SIGKILL a server that has not exited this long after SIGTERM (the measurement is over). */
export const STOP_DEADLINE_MS = 3_000;
const LOADGEN_TIMEOUT_MS = 180_000;
/** Variables that would point Sluice elsewhere than at our services. */
const BLANKED = ["SOCKET", "DATABASE_URL", "REDIS_URL", "REDIS_SENTINELS", "REDIS_NAMESPACE"];

/** The services and settings the processes of a run share. */
export interface Services {
  /** taskset was found: servers go to core 0, load generators to core 1. */
  pinned: boolean;
  /** CPUs of the machine (an unpinned server is given all of them). */
  cores: number;
  redis: RedisServer;
  pg: PostgresServer;
  /** Scratch directory for server logs and load reports. */
  dir: string;
  /** Servers that had to be SIGKILLed after the SIGTERM deadline. */
  killed: string[];
}

function pin(ctx: Services, core: 0 | 1 | "all"): string[] {
  if (!ctx.pinned) return [];
  // The scenario process pins itself to core 1 and its children inherit it: "all" undoes that.
  return ["taskset", "-c", core === "all" ? `0-${Math.max(1, ctx.cores) - 1}` : String(core)];
}

/** `bash -c 'ulimit -n 20000; exec WORDS'`, so the pid is the program's own. */
function wrapped(words: string[], redirect = ""): string[] {
  return ["bash", "-c", `ulimit -n ${NOFILE}; exec ${shellJoin(words)}${redirect}`];
}

function serverWords(
  ctx: Services,
  server: ServerKind,
  port: number,
  channel: string,
  core: 0 | "all" = 0,
): string[] {
  const deno = DENO;
  if (server === "sluice") {
    return [...pin(ctx, core), deno, "run", ...SERVER_PERMISSIONS, "main.ts"];
  }
  return [
    ...[...pin(ctx, 0), deno, "run", "--allow-net", "bench/ceiling.ts", "--port", String(port)],
    ...["--redis", ctx.redis.url, "--channel", channel],
  ];
}

/** How a case wants Sluice started: its `SLUICE_WORKERS` (default 1) and whether it is pinned. */
export interface SluiceOptions {
  workers?: string;
  /** Let the server use every core (default: core 0 alone). */
  unpinned?: boolean;
}

function sluiceEnv(ctx: Services, port: number, workers = "1"): Record<string, string> {
  return {
    SLUICE_WORKERS: workers,
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
export interface Target {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

/** Starts a fresh server on a free port and waits until it is ready (or throws). */
export async function startTarget(
  ctx: Services,
  server: ServerKind,
  channel: string,
  options: SluiceOptions = {},
): Promise<Target> {
  const port = freePort();
  const log = `${ctx.dir}/${server}-${port}.log`;
  const env: Record<string, string> = {
    ...Deno.env.toObject(),
    ...sluiceEnv(ctx, port, options.workers),
  };
  for (const name of BLANKED) delete env[name];
  const words = serverWords(ctx, server, port, channel, options.unpinned ? "all" : 0);
  const [program, ...args] = wrapped(words, ` >${log} 2>&1`);
  const child = new Deno.Command(program, { args, cwd: ROOT, env, clearEnv: true, stdin: "null" })
    .spawn();
  const stop = () => stopChild(child, () => ctx.killed.push(`${server} on port ${port}`));
  let exited = false;
  child.status.then(() => exited = true);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  // Several workers: wait until every one of them is ready, not just the first to answer.
  const whole = (options.workers ?? "1") !== "1";
  while (!exited && Date.now() < deadline) {
    if (await isReady(server, port, log, whole)) return { pid: child.pid, port, stop };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await stop();
  const tail = (await Deno.readTextFile(log).catch(() => "")).trim().split("\n").slice(-3);
  throw new Error(`${server} did not become ready on port ${port}: ${tail.join(" | ")}`);
}

/** SIGTERM, then SIGKILL (calling `onKill`) if the child has not exited by the deadline. */
async function stopChild(child: Deno.ChildProcess, onKill: () => void): Promise<void> {
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch { /* already exited */ }
  };
  kill("SIGTERM");
  const late = setTimeout(() => {
    onKill();
    kill("SIGKILL");
  }, STOP_DEADLINE_MS);
  await child.status;
  clearTimeout(late);
}

/**
 * Sluice: the health check answers OK (`whole`: the readiness check of every
 * worker does); the ceiling: it printed that it listens (Redis subscribed).
 */
async function isReady(
  server: ServerKind,
  port: number,
  log: string,
  whole: boolean,
): Promise<boolean> {
  if (server === "ceiling") {
    return (await Deno.readTextFile(log).catch(() => "")).includes("ceiling listening");
  }
  try {
    const path = whole ? "health/ready" : "health";
    const response = await fetch(`http://127.0.0.1:${port}/api/v1/streaming/${path}`);
    return (await response.text()) === "OK";
  } catch {
    return false;
  }
}

/** The load generator's command line against the server on `port` with `pid`. */
export function loadgenWords(ctx: Services, port: string, pid: string, args: string[]): string[] {
  return [
    ...[...pin(ctx, 1), DENO, "run", ...LOADGEN_PERMISSIONS, "bench/loadgen.ts"],
    ...["--url", `http://127.0.0.1:${port}`, "--server-pid", pid],
    ...["--redis", ctx.redis.url, ...args],
  ];
}

/**
 * Runs the load generator to its end: its report, or why it failed, with its
 * phases (when `watch`, it keeps its progress lines) and when it exited.
 */
export async function runLoadgen(ctx: Services, id: string, words: string[], watch: boolean) {
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

/** Pins this process (every thread) to core 1, so the services and load generators it starts are too. */
export async function pinSelf(): Promise<boolean> {
  const output = await new Deno.Command("taskset", {
    args: ["-a", "-p", "-c", "1", String(Deno.pid)],
    stdout: "null",
    stderr: "null",
  }).output().catch(() => undefined);
  return output?.success ?? false;
}

/** The command templates of RESULTS.md's setup section. */
export function commandTemplates(ctx: Services): ScenarioResults["commands"] {
  const env = Object.entries(sluiceEnv(ctx, 0)).map(([k, v]) =>
    `${k}=${k === "PORT" ? "<port>" : v}`
  );
  const log = " >LOG 2>&1";
  const loadgen = loadgenWords(ctx, "PORT", "PID", ["ARGS", "--json", "RUN.json", "--quiet"]);
  return {
    sluice: `env ${env.join(" ")} \\\n  ` +
      shellJoin(wrapped(serverWords(ctx, "sluice", 0, USER_CHANNEL), log)),
    ceiling: shellJoin(wrapped(serverWords(ctx, "ceiling", 0, USER_CHANNEL), log))
      .replace("--port 0 ", "--port PORT "),
    loadgen: shellJoin(wrapped(loadgen)),
    services: `redis-server --port ${ctx.redis.port} --bind 127.0.0.1 --save '' --appendonly no` +
      ` (scripts/redis_server.ts)\npostgres -p ${ctx.pg.port} -c fsync=off … ` +
      `(scripts/postgres_server.ts: test_data/mastodon-schema.sql + mastodon-seed.sql, then ` +
      `${VIEWERS} viewers from bench/scenarios/seed.ts)` +
      (ctx.pinned ? "; both inherit the scenario process's pinning to core 1" : ""),
  };
}
