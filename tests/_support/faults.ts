/**
 * Helpers for the fault-injection suite (tests/faults/): a main.ts instance
 * with two workers, a publisher that keeps a steady load on Redis through an
 * outage and remembers what Redis acknowledged, user-stream clients over both
 * transports that record which numbered events reached them, and readers of
 * /metrics and readiness.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SseReader, Waiters, WsClient } from "./clients.ts";
import { type MainProcess, spawnMain } from "./main_process.ts";
import { serviceEnv, type Services } from "./stack.ts";
import { freePort } from "../../scripts/free_port.ts";
import { parseRedisUrl } from "../../src/config.ts";
import { silentLogger } from "../../src/log.ts";
import { RedisClient } from "../../src/redis/client.ts";

/** A main.ts process with two workers sharing `port`. */
export interface Instance {
  port: number;
  main: MainProcess;
  http: string;
  ws: string;
}

/** Starts main.ts (two workers) against the services; `env` overrides variables. */
export function spawnInstance(services: Services, env: Record<string, string> = {}): Instance {
  const port = freePort();
  const main = spawnMain(
    { ...serviceEnv(services), PORT: String(port), SLUICE_WORKERS: "2", ...env },
    { flags: ["--unstable-net"] },
  );
  return { port, main, http: `http://127.0.0.1:${port}`, ws: `ws://127.0.0.1:${port}` };
}

/** The /metrics text of the whole instance. */
export async function scrape(instance: Instance): Promise<string> {
  const response = await fetch(`${instance.http}/metrics`);
  assert.equal(response.status, 200);
  return await response.text();
}

/** The sum of every series of `name` whose labels contain `labels` (e.g. `reason="x"`). */
export function metric(text: string, name: string, labels = ""): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const match = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (match && (match[1] ?? "").includes(labels)) sum += Number(match[2]);
  }
  return sum;
}

/** The readiness answer: status and body. */
export async function readiness(instance: Instance): Promise<{ status: number; body: string }> {
  const response = await fetch(`${instance.http}/api/v1/streaming/health/ready`);
  return { status: response.status, body: await response.text() };
}

/** Whether the process has exited by now (it has if its exit was already observed). */
export async function hasExited(main: MainProcess): Promise<boolean> {
  const probe = Symbol();
  return await Promise.race([main.exited(), Promise.resolve(probe)]) !== probe;
}

/** One PUBLISH the load publisher sent: its number and how many subscribers Redis counted. */
export interface Published {
  seq: number;
  receivers: number;
}

/**
 * Publishes `delete` events numbered `L<seq>` to one channel at a steady rate on
 * its own connection, through outages (failed publishes are counted, not
 * retried). `acknowledged` holds every publish Redis answered, in order.
 */
export class LoadPublisher {
  readonly acknowledged: Published[] = [];
  failed = 0;
  readonly #client: RedisClient;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #waiters = new Waiters();
  readonly #inFlight = new Set<Promise<void>>();
  #seq = 0;

  /** Starts publishing to `channel` of the Redis at `url`, `perSecond` events a second. */
  constructor(url: string, readonly channel: string, perSecond: number) {
    this.#client = new RedisClient({ config: parseRedisUrl(url), log: silentLogger });
    const tickMs = 50;
    const perTick = Math.max(1, Math.round(perSecond * tickMs / 1000));
    this.#timer = setInterval(() => {
      for (let i = 0; i < perTick; i++) this.#publish(++this.#seq);
    }, tickMs);
  }

  /** The text of event `seq`, as an SSE `data:` line or a WebSocket payload carries it. */
  static payload(seq: number): string {
    return `L${seq}`;
  }

  /** Waits for the first acknowledged publish (after index `from`) that satisfies `match`. */
  until(match: (p: Published) => boolean, what: string, from = 0): Promise<Published> {
    return this.#waiters.until(
      () => this.acknowledged.slice(from).find(match),
      `a publish: ${what}`,
      30_000,
    );
  }

  /** Stops publishing, waits for the answers to what was sent, closes the connection. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all(this.#inFlight);
    await this.#client.close();
  }

  #publish(seq: number): void {
    const message = JSON.stringify({ event: "delete", payload: LoadPublisher.payload(seq) });
    const sent = this.#client.publish(this.channel, message).then(
      (receivers) => {
        this.acknowledged.push({ seq, receivers });
        this.#waiters.notify();
      },
      () => void this.failed++,
    ).finally(() => this.#inFlight.delete(sent));
    this.#inFlight.add(sent);
  }
}

/** SSE streams and WebSockets on one user stream, and the `L<seq>` events each received. */
export class StreamClients {
  private constructor(readonly sse: SseReader[], readonly ws: WsClient[]) {}

  /** Opens `perKind` SSE streams and as many WebSockets on `stream` (e.g. `user`) with `token`. */
  static async open(
    instance: Instance,
    options: { token: string; stream: string; perKind: number },
  ): Promise<StreamClients> {
    const sse: SseReader[] = [];
    const ws: WsClient[] = [];
    const { token, stream } = options;
    for (let i = 0; i < options.perKind; i++) {
      sse.push(
        await SseReader.open(`${instance.http}/api/v1/streaming/${stream.replace(":", "/")}`, {
          Authorization: `Bearer ${token}`,
        }),
      );
      ws.push(
        await WsClient.open(
          `${instance.ws}/api/v1/streaming?access_token=${token}&stream=${stream}`,
        ),
      );
    }
    await Promise.all(sse.map((reader) => reader.contains(":)")));
    return new StreamClients(sse, ws);
  }

  get count(): number {
    return this.sse.length + this.ws.length;
  }

  /** Waits until every client has received the event whose payload is `payload`. */
  async received(payload: string): Promise<void> {
    await Promise.all([
      ...this.sse.map((reader) => reader.contains(`data: ${payload}\n\n`)),
      ...this.ws.map((client) => wsReceived(client, payload)),
    ]);
  }

  /** The `L<seq>` numbers each client received, in arrival order. */
  seqs(): number[][] {
    const fromSse = this.sse.map((reader) =>
      [...reader.text.matchAll(/^data: L(\d+)$/gm)].map((m) => Number(m[1]))
    );
    const fromWs = this.ws.map((client) =>
      client.frames.flatMap((frame) => {
        const match = /^L(\d+)$/.exec(String(JSON.parse(frame).payload));
        return match ? [Number(match[1])] : [];
      })
    );
    return [...fromSse, ...fromWs];
  }

  /** The clients whose stream ended or whose socket closed. */
  lost(): number {
    return this.sse.filter((r) => r.ended).length + this.ws.filter((w) => w.closeEvent).length;
  }

  async close(): Promise<void> {
    await Promise.all([...this.sse.map((r) => r.close()), ...this.ws.map((w) => w.close())]);
  }
}

/** Resolves once `client` has received a frame whose payload is `payload` (frames stay queued). */
function wsReceived(client: WsClient, payload: string): Promise<void> {
  const waiters = new Waiters();
  const wake = () => waiters.notify();
  const has = () =>
    client.frames.some((frame) => JSON.parse(frame).payload === payload) ? true : undefined;
  client.socket.addEventListener("message", wake);
  return waiters.until(has, `WebSocket payload ${payload}`, 15_000).then(
    () => client.socket.removeEventListener("message", wake),
  );
}

/** Asserts that every client received every seq of `wanted`. */
export function assertAllReceived(clients: StreamClients, wanted: number[], what: string): void {
  clients.seqs().forEach((seqs, i) => {
    const got = new Set(seqs);
    const missing = wanted.filter((seq) => !got.has(seq));
    assert.deepEqual(missing, [], `client ${i} missed events ${what}`);
  });
}
