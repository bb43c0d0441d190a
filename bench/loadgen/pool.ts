/**
 * Opening many clients: the per-client specs (transport alternation,
 * round-robin tokens), the ramp schedule with a cap on attempts in flight,
 * the slow clients, and the end-of-run check of whether the server cut the
 * slow ones. Failed connects (refused, EMFILE, timeouts, HTTP errors) are
 * counted by reason and the run goes on.
 *
 * @module
 */
import { type LoadOptions, streamPath } from "./args.ts";
import { type ClientSpec, LoadStats, StreamClient, type Transport } from "./client.ts";
import { sleep } from "./publish.ts";

/** Host, port and TLS of the server, from its base URL. */
export interface Target {
  hostname: string;
  port: number;
  tls: boolean;
}

/** Parses the base URL (`http`, `https`, `ws`, `wss`); throws RangeError otherwise. */
export function parseTarget(url: string): Target {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RangeError(`--url: not a URL: "${url}"`);
  }
  const tls = parsed.protocol === "https:" || parsed.protocol === "wss:";
  if (!tls && parsed.protocol !== "http:" && parsed.protocol !== "ws:") {
    throw new RangeError(`--url: expected http(s):// or ws(s)://, got "${url}"`);
  }
  const hostname = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
  return { hostname, port: Number(parsed.port) || (tls ? 443 : 80), tls };
}

/** Specs for `count` clients numbered from `first` (mix alternates sse, ws, sse, …). */
export function clientSpecs(
  options: LoadOptions,
  target: Target,
  tokens: readonly string[],
  count: number,
  first: number,
): ClientSpec[] {
  if (tokens.length === 0) throw new RangeError("No tokens to connect with");
  const paths = { sse: streamPath(options, "sse"), ws: streamPath(options, "ws") };
  return Array.from({ length: count }, (_, k) => {
    const i = first + k;
    const transport: Transport = options.transport === "mix"
      ? (i % 2 === 0 ? "sse" : "ws")
      : options.transport;
    return {
      ...target,
      transport,
      path: paths[transport],
      token: tokens[i % tokens.length],
      readBufferBytes: options.readBufferBytes,
    };
  });
}

/** Counting semaphore for connection attempts in flight. */
class Slots {
  #free: number;
  #waiting: (() => void)[] = [];

  constructor(size: number) {
    this.#free = size;
  }

  acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free--;
      return Promise.resolve();
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiting.push(resolve);
    return promise;
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

/** Result of opening the listening clients. */
export interface Opened {
  clients: StreamClient[];
  /** ms from the first attempt to the last established stream (undefined if none). */
  establishAllMs: number | undefined;
}

/** Opens every client on the ramp schedule; resolves when each is open or has failed. */
export async function openClients(
  specs: readonly ClientSpec[],
  stats: LoadStats,
  options: Pick<LoadOptions, "rampMs" | "maxConnecting" | "connectTimeoutMs" | "signal">,
): Promise<Opened> {
  const clients = specs.map((spec) => new StreamClient(spec, stats));
  const slots = new Slots(options.maxConnecting);
  const start = performance.now();
  let lastOpen: number | undefined;
  const attempts: Promise<void>[] = [];
  for (const [i, client] of clients.entries()) {
    const wait = start + i * options.rampMs / clients.length - performance.now();
    if (wait > 0) await sleep(wait, options.signal);
    await slots.acquire();
    if (options.signal?.aborted) {
      slots.release();
      break;
    }
    attempts.push(
      client.open(options.connectTimeoutMs).then((ok) => {
        if (ok) lastOpen = performance.now();
        slots.release();
      }),
    );
  }
  await Promise.all(attempts);
  return { clients, establishAllMs: lastOpen === undefined ? undefined : lastOpen - start };
}

/** Opens the slow clients (request sent, never read), `maxConnecting` at a time. */
export async function openSlowClients(
  specs: readonly ClientSpec[],
  stats: LoadStats,
  maxConnecting: number,
): Promise<StreamClient[]> {
  const clients = specs.map((spec) => new StreamClient(spec, stats));
  for (let i = 0; i < clients.length; i += maxConnecting) {
    await Promise.all(clients.slice(i, i + maxConnecting).map((client) => client.openSlow()));
  }
  return clients;
}

/** How the slow clients ended up. */
export interface SlowOutcome {
  attempted: number;
  opened: number;
  cutByServer: number;
  stillOpen: number;
}

/** Drains each open slow client until the server's end of stream or `withinMs`; closes them all. */
export async function checkSlowClients(
  clients: readonly StreamClient[],
  withinMs: number,
): Promise<SlowOutcome> {
  const opened = clients.filter((client) => client.state === "open");
  const deadline = performance.now() + withinMs;
  const outcomes = await Promise.all(opened.map((client) => client.drainUntil(deadline)));
  for (const client of clients) client.close();
  const cutByServer = outcomes.filter((outcome) => outcome === "cut").length;
  return {
    attempted: clients.length,
    opened: opened.length,
    cutByServer,
    stillOpen: opened.length - cutByServer,
  };
}

/** Failure reasons of the clients that did not open, counted. */
export function failureCounts(clients: readonly StreamClient[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { failure } of clients) {
    if (failure !== undefined) counts[failure] = (counts[failure] ?? 0) + 1;
  }
  return counts;
}
