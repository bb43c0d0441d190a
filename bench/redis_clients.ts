/**
 * Sluice's own Redis subscriber next to ioredis and node-redis (`redis`):
 * messages per second received, CPU time, memory growth and what each one
 * pulls in. The figures behind the README section "Why its own Redis client".
 *
 *   deno run --allow-all bench/redis_clients.ts [--messages 100000] [--payload-bytes 2500]
 *     [--rounds 3] [--clients sluice,ioredis,node-redis] [--json out.json]
 *
 * Starts a throwaway redis-server (scripts/redis_server.ts, with no output
 * buffer limit for subscribers). For each round and each client it spawns
 * bench/redis_clients/child.ts, a process holding only that subscriber and
 * run with only the permissions listed below. Once the child is subscribed
 * it is stopped (SIGSTOP), and this process publishes `--messages`
 * Mastodon-like `update` messages (`{"event":"update","payload":"<status JSON
 * as a string>"}`, built with bench/messages.ts) to one channel as fast as
 * Redis takes them, over a separate pipelined connection (Sluice's
 * `RedisClient`, at most 1,000 PUBLISHes in flight), so Redis holds them all
 * for the subscriber. Then the child is resumed (SIGCONT) and drains them as
 * fast as it can: the figures measure the subscriber alone, not the
 * publisher or the two competing for the machine's cores. The child times
 * the first to the last message and reports its CPU time (user + system,
 * `process.cpuUsage`), heap growth after a full GC and peak RSS growth. Each
 * figure is the median of the rounds; the npm package counts come from
 * deno.lock.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startRedisServer } from "../scripts/redis_server.ts";
import { parseRedisUrl } from "../src/config.ts";
import { silentLogger } from "../src/log.ts";
import { RedisClient } from "../src/redis/client.ts";
import { type ChildResult, type ClientName, CLIENTS } from "./redis_clients/child.ts";
import { createMessageFactory } from "./messages.ts";

const CHANNEL = "timeline:public";
const IN_FLIGHT = 1_000;
const POOL = 1_000;

/** Deno permissions each child runs with (beyond reaching Redis on 127.0.0.1). */
const PERMISSIONS: Record<ClientName, string[]> = {
  "sluice": [],
  "ioredis": ["--allow-env"],
  "node-redis": [],
};
/** The deno.json import behind each npm client. */
const PACKAGES: Partial<Record<ClientName, string>> = {
  "ioredis": "ioredis",
  "node-redis": "redis",
};

/** Command-line options. */
export interface BenchOptions {
  messages: number;
  payloadBytes: number;
  rounds: number;
  clients: ClientName[];
  json?: string;
}

/** Parses the command line; throws RangeError on a bad value. */
export function parseBenchArgs(args: string[]): BenchOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      messages: { type: "string", default: "100000" },
      "payload-bytes": { type: "string", default: "2500" },
      rounds: { type: "string", default: "3" },
      clients: { type: "string", default: CLIENTS.join(",") },
      json: { type: "string" },
    },
  });
  const positive = (name: string, text: string) => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) {
      throw new RangeError(`--${name}: expected a positive integer`);
    }
    return n;
  };
  const clients = values.clients.split(",") as ClientName[];
  const unknown = clients.find((c) => !CLIENTS.includes(c));
  if (unknown !== undefined) throw new RangeError(`--clients: unknown client "${unknown}"`);
  return {
    messages: positive("messages", values.messages),
    payloadBytes: positive("payload-bytes", values["payload-bytes"]),
    rounds: positive("rounds", values.rounds),
    clients,
    json: values.json,
  };
}

/** `POOL` distinct JSON-in-JSON `update` messages, as Rails publishes them. */
export function messagePool(payloadBytes: number): string[] {
  const make = createMessageFactory({ payloadBytes, author: "remote" });
  return Array.from({ length: POOL }, (_, seq) => {
    const { event, payload } = JSON.parse(make(seq, Date.now() * 1000));
    return JSON.stringify({ event, payload: JSON.stringify(payload) });
  });
}

/** The npm packages an import pulls in (itself included), from deno.lock. */
export function npmFootprint(
  lock: { specifiers: Record<string, string>; npm: Record<string, { dependencies?: string[] }> },
  specifier: string,
): number {
  const resolve = (dep: string) =>
    Object.keys(lock.npm).find((k) => k === dep || k.startsWith(`${dep}@`)) ?? dep;
  const root = `${specifier.replace(/^npm:/, "").split("@").slice(0, -1).join("@")}@${
    lock.specifiers[specifier]
  }`;
  const seen = new Set<string>();
  const visit = (key: string) => {
    if (seen.has(key)) return;
    seen.add(key);
    for (const dep of lock.npm[key]?.dependencies ?? []) visit(resolve(dep));
  };
  visit(resolve(root));
  return seen.size;
}

/** Reads newline-delimited JSON from a child's stdout. */
async function* jsonLines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<Record<string, unknown>> {
  let buffered = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let newline;
    while ((newline = buffered.indexOf("\n")) !== -1) {
      yield JSON.parse(buffered.slice(0, newline));
      buffered = buffered.slice(newline + 1);
    }
  }
}

/** Publishes `count` messages from `pool` with at most IN_FLIGHT unanswered; returns seconds taken. */
async function publishAll(client: RedisClient, pool: string[], count: number): Promise<number> {
  const window: Promise<number>[] = new Array(IN_FLIGHT);
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    if (i >= IN_FLIGHT) await window[i % IN_FLIGHT];
    window[i % IN_FLIGHT] = client.publish(CHANNEL, pool[i % pool.length]);
  }
  await Promise.all(window.filter(Boolean));
  return (performance.now() - start) / 1000;
}

/** One child run: spawn, wait until subscribed, publish, collect its result. */
async function runOnce(
  name: ClientName,
  port: number,
  publisher: RedisClient,
  pool: string[],
  options: BenchOptions,
): Promise<ChildResult & { publishSeconds: number }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--v8-flags=--expose-gc",
      `--allow-net=127.0.0.1:${port}`,
      ...PERMISSIONS[name],
      new URL("./redis_clients/child.ts", import.meta.url).pathname,
      ...["--client", name, "--port", String(port), "--channel", CHANNEL],
      ...["--messages", String(options.messages)],
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = jsonLines(child.stdout);
  const ready = await lines.next();
  if (ready.done || ready.value.ready !== true) throw new Error(`${name} did not subscribe`);
  child.kill("SIGSTOP");
  const publishSeconds = await publishAll(publisher, pool, options.messages).finally(() =>
    child.kill("SIGCONT")
  );
  const result = await lines.next();
  const status = await child.status;
  if (result.done || !status.success) throw new Error(`${name} exited with ${status.code}`);
  return { ...(result.value as unknown as ChildResult), publishSeconds };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const MIB = 1024 * 1024;
type Run = ChildResult & { publishSeconds: number };

/** One Markdown row per client: medians of its runs, its npm footprint and permissions. */
async function renderRows(runs: Run[], clients: ClientName[]): Promise<string[]> {
  const lock = JSON.parse(await Deno.readTextFile(new URL("../deno.lock", import.meta.url)));
  const deno = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  return clients.map((name) => {
    const mine = runs.filter((r) => r.client === name);
    const m = (f: (r: Run) => number) => median(mine.map(f));
    const pkg = PACKAGES[name];
    const footprint = pkg ? `${npmFootprint(lock, deno.imports[pkg])} (${deno.imports[pkg]})` : "0";
    const perms = ["--allow-net", ...PERMISSIONS[name]].join(" ");
    return `| ${name} | ${Math.round(m((r) => r.received / r.seconds)).toLocaleString("en")} | ` +
      `${m((r) => r.cpuSeconds * 1e6 / r.received).toFixed(2)} | ` +
      `${(m((r) => r.peakRssGrowthBytes) / MIB).toFixed(1)} | ` +
      `${(m((r) => r.heapGrowthBytes) / MIB).toFixed(2)} | ${footprint} | \`${perms}\` |`;
  });
}

/** Runs every round; returns the Markdown report and every run's figures. */
export async function runBench(options: BenchOptions): Promise<{ markdown: string; runs: Run[] }> {
  const pool = messagePool(options.payloadBytes);
  const expectedChars = Array.from({ length: options.messages }, (_, i) => pool[i % POOL].length)
    .reduce((a, b) => a + b, 0);
  const bytes = pool.map((m) => new TextEncoder().encode(m).length);
  await using redis = await startRedisServer({
    args: ["--client-output-buffer-limit", "pubsub 0 0 0"],
  });
  await using publisher = new RedisClient({ config: parseRedisUrl(redis.url), log: silentLogger });
  await publisher.ready();
  const runs: Run[] = [];
  for (let round = 0; round < options.rounds; round++) {
    for (const name of options.clients) {
      const run = await runOnce(name, redis.port, publisher, pool, options);
      if (run.received !== options.messages || run.chars !== expectedChars) {
        throw new Error(`${name} received ${run.received} messages, ${run.chars} characters`);
      }
      runs.push(run);
    }
  }
  const size = `${Math.min(...bytes)}–${Math.max(...bytes)} bytes`;
  const header = [
    `${options.messages.toLocaleString("en")} messages of ${size} drained from one channel, ` +
    `median of ${options.rounds} round(s); ${navigator.hardwareConcurrency} cores, ` +
    `Deno ${Deno.version.deno}.`,
    "",
    "| subscriber | received msg/s | CPU µs/msg | peak RSS growth MiB | heap growth after GC MiB | npm packages | permissions |",
    "| --- | ---: | ---: | ---: | ---: | --- | --- |",
  ];
  return { markdown: [...header, ...await renderRows(runs, options.clients)].join("\n"), runs };
}

if (import.meta.main) {
  const options = parseBenchArgs(Deno.args);
  const { markdown, runs } = await runBench(options);
  console.log(markdown);
  if (options.json) await Deno.writeTextFile(options.json, JSON.stringify(runs, null, 2) + "\n");
}
