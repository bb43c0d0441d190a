/**
 * Idle memory per connection, Sluice beside the bare broadcaster
 * (bench/ceiling.ts), measured inside each server: a fresh server process
 * per (transport, server), run with `--expose-gc`, answers "measure" on its
 * stdin with `Deno.memoryUsage()` after two full collections; this process
 * opens idle SSE or WebSocket connections to it (stream `user`,
 * token-alice) in steps and reports the marginal bytes per connection
 * between the first and the last step. Sluice's own share is Sluice minus
 * the ceiling, for the JS heap (heapUsed), external memory and RSS.
 *
 *   bash -c 'ulimit -n 20000; deno run --allow-all bench/idle_memory.ts \
 *     [--steps 1000,5000] [--transports sse,ws] [--settle-ms 2000] [--json FILE]
 *     [--snapshots DIR] [--semi-space-mb N]'
 *
 * `--snapshots` writes heap snapshots at each step, to attribute the bytes.
 * V8 grows its young generation (new space) with the allocation rate up to
 * a cap, and keeps it: between two steps that growth shows up as "per
 * connection" although it is a bounded one-off. `oldTotal` leaves it out;
 * `--semi-space-mb N` fixes the young generation of both servers from the
 * start, so RSS per connection leaves it out too.
 *
 * Redis and PostgreSQL are throwaway servers (scripts/). The connections are
 * held by this process, so the server's figures contain no client state.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startPostgresServer } from "../scripts/postgres_server.ts";
import { startRedisServer } from "../scripts/redis_server.ts";
import { idleServe } from "./idle_memory/serve.ts";
import {
  type IdleTransport,
  type MemorySample,
  perConnection,
  renderSteps,
  renderTable,
  type ServerRun,
} from "./idle_memory/report.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
/** The user stream of token-alice (account 1 of the test seed). */
const USER_CHANNEL = "timeline:1";
const OPEN_AT_ONCE = 200;

/** A server child: its port, and a way to ask for a sample. */
interface Child {
  port: number;
  /** A sample; with `snapshot`, a heap snapshot written to that path first. */
  measure(snapshot?: string): Promise<MemorySample>;
  stop(): Promise<void>;
}

async function spawnServer(
  kind: "sluice" | "ceiling",
  serviceArgs: string[],
  semiSpaceMb?: string,
): Promise<Child> {
  const v8Flags = semiSpaceMb === undefined
    ? "--v8-flags=--expose-gc"
    : `--v8-flags=--expose-gc,--min-semi-space-size=${semiSpaceMb},--max-semi-space-size=${semiSpaceMb}`;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      ...["run", "--allow-all", v8Flags, "bench/idle_memory.ts"],
      ...["--serve", kind, ...serviceArgs],
    ],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter())
    .getReader();
  const writer = child.stdin.getWriter();
  const next = async () => {
    const { value, done } = await lines.read();
    if (done) throw new Error(`${kind} exited`);
    return JSON.parse(value);
  };
  const { port } = await next();
  return {
    port,
    measure: async (snapshot) => {
      const line = snapshot === undefined ? "measure" : `snapshot ${snapshot}`;
      await writer.write(new TextEncoder().encode(`${line}\n`));
      return await next();
    },
    stop: async () => {
      await writer.close();
      await child.status;
      lines.releaseLock();
    },
  };
}

function lineSplitter(): TransformStream<string, string> {
  let buffered = "";
  return new TransformStream({
    transform(chunk, controller) {
      const parts = (buffered + chunk).split("\n");
      buffered = parts.pop()!;
      for (const part of parts) if (part.trim()) controller.enqueue(part);
    },
  });
}

/** Opens one idle connection; resolves once the server's first bytes or the open arrived. */
async function openIdle(port: number, transport: IdleTransport, held: unknown[]): Promise<void> {
  const query = "stream=user&access_token=token-alice";
  if (transport === "sse") {
    const response = await fetch(`http://127.0.0.1:${port}/api/v1/streaming/user?${query}`);
    const reader = response.body!.getReader();
    await reader.read();
    held.push(reader);
    return;
  }
  const socket = new WebSocket(`ws://127.0.0.1:${port}/api/v1/streaming?${query}`);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  held.push(socket);
}

async function openMany(port: number, transport: IdleTransport, count: number, held: unknown[]) {
  for (let opened = 0; opened < count; opened += OPEN_AT_ONCE) {
    const batch = Math.min(OPEN_AT_ONCE, count - opened);
    await Promise.all(Array.from({ length: batch }, () => openIdle(port, transport, held)));
  }
}

async function closeAll(held: unknown[]): Promise<void> {
  for (const item of held) {
    if (item instanceof WebSocket) item.close();
    else await (item as ReadableStreamDefaultReader).cancel().catch(() => {});
  }
  held.length = 0;
}

/** How one server is run and sampled. */
interface RunOptions {
  steps: number[];
  serviceArgs: string[];
  settleMs: number;
  snapshots?: string;
  semiSpaceMb?: string;
}

async function runOne(
  kind: "sluice" | "ceiling",
  transport: IdleTransport,
  { steps, serviceArgs, settleMs, snapshots, semiSpaceMb }: RunOptions,
): Promise<ServerRun> {
  const child = await spawnServer(kind, serviceArgs, semiSpaceMb);
  const held: unknown[] = [];
  const samples: ServerRun["samples"] = [];
  try {
    for (const step of steps) {
      await openMany(child.port, transport, step - held.length, held);
      await new Promise((resolve) => setTimeout(resolve, settleMs));
      const path = snapshots && `${snapshots}/${kind}-${transport}-${held.length}.heapsnapshot`;
      samples.push({ connections: held.length, memory: await child.measure(path) });
    }
  } finally {
    await closeAll(held);
    await child.stop();
  }
  return { server: kind, transport, samples };
}

async function orchestrate(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      steps: { type: "string", default: "1000,5000" },
      transports: { type: "string", default: "sse,ws" },
      "settle-ms": { type: "string", default: "2000" },
      json: { type: "string" },
      snapshots: { type: "string" },
      "semi-space-mb": { type: "string" },
    },
  });
  const steps = values.steps.split(",").map(Number);
  const transports = values.transports.split(",") as IdleTransport[];
  const [redis, pg] = await Promise.all([startRedisServer(), startPostgresServer()]);
  const serviceArgs = [
    ...["--redis-port", String(redis.port), "--pg-port", String(pg.port)],
    ...["--pg-user", pg.user, "--pg-db", pg.database, "--channel", USER_CHANNEL],
  ];
  const options: RunOptions = {
    steps,
    serviceArgs,
    settleMs: Number(values["settle-ms"]),
    snapshots: values.snapshots,
    semiSpaceMb: values["semi-space-mb"],
  };
  const runs: ServerRun[] = [];
  try {
    for (const transport of transports) {
      for (const kind of ["sluice", "ceiling"] as const) {
        runs.push(await runOne(kind, transport, options));
      }
    }
  } finally {
    await Promise.all([redis.stop(), pg.stop()]);
  }
  const load = (await Deno.readTextFile("/proc/loadavg").catch(() => "?")).trim();
  console.log(renderTable(runs).join("\n"));
  console.log(`\n${renderSteps(runs).join("\n")}\n`);
  console.log(`load average: ${load}`);
  if (values.json) {
    const perConn = runs.map((run) => ({ ...run, perConnection: perConnection(run) }));
    await Deno.writeTextFile(values.json, JSON.stringify({ load, runs: perConn }, null, 2));
  }
}

if (import.meta.main) {
  const args = Deno.args;
  if (args[0] === "--serve") await idleServe(args.slice(1));
  else await orchestrate(args);
}
