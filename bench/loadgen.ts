/**
 * `deno task bench`: a load generator for any Mastodon-compatible streaming
 * server (Sluice, Mastodon's own, bench/ceiling.ts) where clients only listen.
 *
 * It opens `--clients` listening connections over raw TCP — SSE GETs with a
 * bearer token, minimal RFC 6455 WebSocket clients with `access_token`, or
 * both alternating — waits `--warmup` seconds, then PUBLISHes realistic
 * `update` events to Redis at `--rate` per second for `--duration` seconds.
 * Every status carries `BENCHTS<µs since epoch>` in its content; clients find
 * it by scanning bytes and record the end-to-end latency in a histogram.
 *
 *   deno task bench --url http://127.0.0.1:4000 --transport mix --clients 2000 \
 *     --rate 50 --duration 5 --redis redis://127.0.0.1:6379 --server-pid 12345
 *   deno task bench --idle --clients 10000 --duration 5 --server-pid 12345
 *   deno task bench --stream hashtag --tag bench --transport ws --slow 10 --json out.json
 *
 * Options (defaults in brackets; `--help` prints them all):
 *   --url URL [http://127.0.0.1:4000]  --transport sse|ws|mix [sse]
 *   --stream NAME [public], --tag T, --list ID   (SSE path, WS query and Redis channel from
 *                                                 src/timeline.ts, as Sluice serves them)
 *   --account ID [1 with the default token]      (the channel of user, user:notification, direct)
 *   --clients N [1000]  --ramp-ms MS [0: at once, --max-connecting 500 in flight]
 *   --token T [token-alice] (repeatable) | --tokens-file FILE (one per line; round-robin)
 *   --rate N [100]/s  --payload-bytes N [1500]  --author local|remote [local]
 *   --duration S [10]  --warmup S [1]  --drain-ms MS [5000]
 *   --redis URL [redis://127.0.0.1:6379]  --channel NAME [derived: timeline:public, timeline:1, …]
 *   --server-pid PID  (RSS and CPU from /proc)  --slow N [0] (connect, never read)
 *   --idle (no publishing: hold --duration s, for memory per connection)
 *   --connect-timeout-ms MS [30000]  --read-buffer BYTES [4096]  --json FILE  --quiet
 *
 * Measures: connections attempted/established/failed (by reason), connect
 * time (TCP connect start → first stream byte `:)` for SSE, the 101 for
 * WebSocket) and the time to establish all; messages published; expected
 * deliveries (published × clients open when publishing starts), delivered,
 * deliveries per second (delivered / publishing time); latency p50/p90/p99/
 * max; clients the server disconnected (by transport); slow clients the
 * server cut; with `--server-pid` the server's RSS (before connecting, idle
 * after warm-up, peak sampled every 250 ms, at the end, and per connection)
 * and its CPU seconds during publishing plus drain (or the idle hold); this
 * process's own CPU and peak RSS. The summary goes to stdout, progress to
 * stderr, the JSON report to `--json`. Ctrl-C ends the run early and still
 * reports. Open files are not raised: failed connects (EMFILE, refused) are
 * counted and the run goes on.
 *
 * Also importable: `runLoad(options)` runs in-process and returns the report.
 *
 * @module
 */
import {
  DEFAULT_OPTIONS,
  defaultChannel,
  type LoadOptions,
  parseArgs,
  parseTokens,
  USAGE,
} from "./loadgen/args.ts";
import { LoadStats, type StreamClient } from "./loadgen/client.ts";
import {
  checkSlowClients,
  clientSpecs,
  openClients,
  openSlowClients,
  parseTarget,
} from "./loadgen/pool.ts";
import { RunMeters } from "./loadgen/proc.ts";
import {
  type PublishFn,
  type PublishResult,
  publishSteadily,
  redisPublisher,
  sleep,
} from "./loadgen/publish.ts";
import { buildReport, formatSummary, type LoadReport } from "./loadgen/report.ts";
import { createMessageFactory } from "./messages.ts";

export { DEFAULT_OPTIONS, formatSummary, type LoadOptions, type LoadReport, parseArgs, USAGE };

const SLOW_CHECK_MS = 2_000;
const PROGRESS_MS = 1_000;

/** Connects, warms up, publishes (or holds with `idle`), measures; options default as the CLI. */
export async function runLoad(input: Partial<LoadOptions> = {}): Promise<LoadReport> {
  const options: LoadOptions = { ...DEFAULT_OPTIONS, ...input };
  const startedAt = new Date().toISOString();
  const channel = options.idle ? undefined : options.channel ?? defaultChannel(options);
  await using run = new AsyncDisposableStack();
  const publish = channel === undefined
    ? undefined
    : await openPublisher(options.redis, channel, run);
  const meters = run.use(new RunMeters(options.serverPid));
  const stats = new LoadStats();
  const phase = { name: "connecting" };
  if (options.progress) run.use(progressTicker(options.progress, stats, phase));
  await meters.mark("start");
  const { clients, establishAllMs, slowClients } = await connectAll(options, stats, run);
  phase.name = "warming up";
  await sleep(options.warmup * 1000, options.signal);
  if (publish) await options.beforePublishing?.();
  await meters.mark("idle");
  const listening = clients.filter((client) => client.state === "open").length;
  const windowStart = performance.now();
  phase.name = publish ? "publishing" : "holding";
  let publishing: PublishResult | undefined;
  if (publish) publishing = await publishAndDrain(options, stats, publish, listening);
  else await sleep(options.duration * 1000, options.signal);
  const windowSeconds = (performance.now() - windowStart) / 1000;
  await meters.mark("window");
  phase.name = "checking slow clients";
  const slow = await checkSlowClients(slowClients, SLOW_CHECK_MS);
  await meters.mark("end");
  const expected = (publishing?.published ?? 0) * listening;
  return buildReport({
    ...{ options, channel, startedAt, stats, clients, establishAllMs, slow, publishing },
    ...{ expected, meters, windowSeconds },
  });
}

/** Opens the listening clients, then the slow ones; `run` closes them all. */
async function connectAll(options: LoadOptions, stats: LoadStats, run: AsyncDisposableStack) {
  const tokens = options.tokensFile ? await readTokens(options.tokensFile) : options.tokens;
  const target = parseTarget(options.url);
  const specs = clientSpecs(options, target, tokens, options.clients, 0);
  const { clients, establishAllMs } = await openClients(specs, stats, options);
  run.defer(() => closeAll(clients));
  const slowSpecs = clientSpecs(options, target, tokens, options.slow, options.clients);
  const slowClients = await openSlowClients(slowSpecs, stats, options.maxConnecting);
  run.defer(() => closeAll(slowClients));
  return { clients, establishAllMs, slowClients };
}

async function closeAll(clients: readonly StreamClient[]): Promise<void> {
  for (const client of clients) client.close();
  await Promise.all(clients.map((client) => client.finished));
}

async function readTokens(file: string): Promise<string[]> {
  return parseTokens(await Deno.readTextFile(file), file);
}

async function openPublisher(
  url: string,
  channel: string,
  run: AsyncDisposableStack,
): Promise<PublishFn> {
  const redis = await redisPublisher(url, channel);
  run.defer(() => redis.close());
  return redis.publish;
}

/** Publishes for the duration, then waits for the expected deliveries or `drainMs`. */
async function publishAndDrain(
  options: LoadOptions,
  stats: LoadStats,
  publish: PublishFn,
  clients: number,
): Promise<PublishResult> {
  const makeMessage = createMessageFactory(options);
  const { rate, duration: seconds, signal } = options;
  const result = await publishSteadily({ rate, seconds, makeMessage, publish, signal });
  const drained = new AbortController();
  const onAbort = () => drained.abort();
  signal?.addEventListener("abort", onAbort);
  await Promise.race([
    stats.deliveriesReached(result.published * clients),
    sleep(options.drainMs, drained.signal),
  ]);
  drained.abort();
  signal?.removeEventListener("abort", onAbort);
  return result;
}

function progressTicker(
  progress: (line: string) => void,
  stats: LoadStats,
  phase: { name: string },
): Disposable {
  const timer = setInterval(() => {
    const lost = stats.disconnects.sse + stats.disconnects.ws;
    progress(
      `[loadgen] ${phase.name}: ${stats.opened} open, ${stats.failed} failed, ` +
        `${lost} disconnected, ${stats.delivered} delivered`,
    );
  }, PROGRESS_MS);
  return { [Symbol.dispose]: () => clearInterval(timer) };
}

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs(args);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    console.error(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed === "help") {
    console.log(USAGE);
    return 0;
  }
  const { options, quiet } = parsed;
  const abort = new AbortController();
  const onSigint = () => abort.signal.aborted ? Deno.exit(130) : abort.abort();
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    const progress = quiet ? undefined : (line: string) => console.error(line);
    const report = await runLoad({ ...options, signal: abort.signal, progress });
    console.log(formatSummary(report));
    if (options.json) {
      await Deno.writeTextFile(options.json, JSON.stringify(report, null, 2) + "\n");
    }
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`loadgen failed: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
