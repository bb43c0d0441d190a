/**
 * One subscriber of bench/redis_clients.ts, alone in its own process so its
 * CPU time and memory are its own: Sluice's `RedisSubscriber`, ioredis or
 * node-redis subscribes to one channel, prints `{"ready":true}`, counts
 * `--messages` messages, then prints one JSON line of measurements and exits.
 * The npm clients are imported only by the child that runs them.
 *
 *   deno run --v8-flags=--expose-gc --allow-net=127.0.0.1:PORT bench/redis_clients/child.ts \
 *     --client sluice|ioredis|node-redis --port PORT --channel NAME --messages N
 *
 * @module
 */
import { parseArgs } from "node:util";
import { cpuUsage } from "node:process";

/** The subscribers compared. */
export const CLIENTS = ["sluice", "ioredis", "node-redis"] as const;
/** One of {@link CLIENTS}. */
export type ClientName = (typeof CLIENTS)[number];

/** What a child measured between its subscription and the last message. */
export interface ChildResult {
  client: ClientName;
  received: number;
  /** Sum of the messages' lengths in UTF-16 code units (checks nothing was lost or cut). */
  chars: number;
  /** From the first message to the last. */
  seconds: number;
  /** User + system CPU time of the process while receiving. */
  cpuSeconds: number;
  /** Heap in use after a full GC, minus the same before the first message. */
  heapGrowthBytes: number;
  /** Largest RSS sampled (every 20 ms) while receiving, minus the RSS before. */
  peakRssGrowthBytes: number;
}

type Hook = (message: string) => void;

/** Subscribes with `client`; resolves with a closer once the subscription is confirmed. */
async function subscribe(
  client: ClientName,
  port: number,
  channel: string,
  onMessage: Hook,
): Promise<() => Promise<unknown>> {
  if (client === "sluice") {
    const { silentLogger } = await import("../../src/log.ts");
    const { RedisSubscriber } = await import("../../src/redis/subscriber.ts");
    const subscriber = new RedisSubscriber({
      config: { mode: "tcp", host: "127.0.0.1", port, tls: false, db: 0 },
      log: silentLogger,
      onMessage: (_channel, message) => onMessage(message),
    });
    subscriber.subscribe(channel);
    await subscriber.ready();
    return () => subscriber.close();
  }
  const { loadIORedis, loadNodeRedis } = await import("./deps.ts");
  if (client === "ioredis") {
    const IORedis = await loadIORedis();
    const redis = new IORedis({ host: "127.0.0.1", port });
    redis.on("message", (_channel: string, message: string) => onMessage(message));
    await redis.subscribe(channel);
    return () => redis.quit();
  }
  const createClient = await loadNodeRedis();
  const redis = createClient({ socket: { host: "127.0.0.1", port } });
  redis.on("error", (err: unknown) => console.error(err));
  await redis.connect();
  await redis.subscribe(channel, (message: string) => onMessage(message));
  return () => redis.quit();
}

function heapAfterGc(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return Deno.memoryUsage().heapUsed;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    strict: true,
    options: {
      client: { type: "string" },
      port: { type: "string" },
      channel: { type: "string" },
      messages: { type: "string" },
    },
  });
  const client = values.client as ClientName;
  if (!CLIENTS.includes(client)) throw new RangeError(`--client: one of ${CLIENTS.join(", ")}`);
  const expected = Number(values.messages);
  const done = Promise.withResolvers<void>();
  let received = 0, chars = 0, first = 0, last = 0;
  const onMessage = (message: string) => {
    if (received === 0) first = performance.now();
    chars += message.length;
    if (++received === expected) {
      last = performance.now();
      done.resolve();
    }
  };
  const close = await subscribe(client, Number(values.port), values.channel ?? "bench", onMessage);
  const heapBefore = heapAfterGc();
  const rssBefore = Deno.memoryUsage().rss;
  let peakRss = rssBefore;
  const sampler = setInterval(() => peakRss = Math.max(peakRss, Deno.memoryUsage().rss), 20);
  const cpuBefore = cpuUsage();
  console.log(JSON.stringify({ ready: true }));
  await done.promise;
  const cpu = cpuUsage(cpuBefore);
  clearInterval(sampler);
  peakRss = Math.max(peakRss, Deno.memoryUsage().rss);
  const result: ChildResult = {
    client,
    received,
    chars,
    seconds: (last - first) / 1000,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    heapGrowthBytes: heapAfterGc() - heapBefore,
    peakRssGrowthBytes: peakRss - rssBefore,
  };
  console.log(JSON.stringify(result));
  await close();
}

if (import.meta.main) await main();
