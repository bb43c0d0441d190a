/**
 * Redis for the streaming server: one subscriber connection that yields
 * pub/sub messages as an async iterator and resubscribes after every
 * reconnect, a plain command connection, and the `subscribed:<channel>` keys
 * that tell Rails someone is listening. Connections reconnect forever with
 * backoff; nothing here throws because Redis is down, except commands issued
 * while disconnected, which fail fast. Never parses message payloads.
 *
 * @module
 */
import type { RedisConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import { RedisReplyError, RespConnection, type RespEndpoint, type RespValue } from "./_resp.ts";

export { RedisReplyError, type RespValue };

/** Redis is not connected (or the connection was lost before the reply came). */
export class RedisConnectionError extends Error {
  override name = "RedisConnectionError";
}

const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const CONNECT_TIMEOUT_MS = 10_000;

/** Delay before reconnect attempt `n` (0-based): 100 ms doubling to 5 s, then halved by jitter. */
function backoff(attempt: number): number {
  const ceiling = Math.min(BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 16), BACKOFF_MAX_MS);
  return ceiling / 2 + Math.random() * ceiling / 2;
}

interface Credentials {
  username?: string;
  password?: string;
}

/** AUTH (when a password is set), SELECT (when asked), then PING, pipelined. */
async function handshake(conn: RespConnection, auth: Credentials, db?: number): Promise<void> {
  const commands: string[][] = [];
  if (auth.password) {
    commands.push(auth.username ? ["AUTH", auth.username, auth.password] : ["AUTH", auth.password]);
  }
  if (db) commands.push(["SELECT", String(db)]);
  commands.push(["PING"]);
  for (const command of commands) conn.send(command);
  for (const command of commands) {
    const reply = await conn.read();
    if (reply === undefined) throw new RedisConnectionError("Redis closed the connection");
    if (reply instanceof RedisReplyError) {
      throw new RedisReplyError(`Redis ${command[0]} failed: ${reply.message}`);
    }
  }
}

/** Runs `use` on a fresh connection that `signal` closes; closes it if `use` throws. */
async function withConnection<T>(
  endpoint: RespEndpoint,
  signal: AbortSignal,
  use: (conn: RespConnection) => Promise<T>,
): Promise<T> {
  const conn = await RespConnection.open(endpoint, signal);
  const abort = () => conn.close();
  signal.addEventListener("abort", abort);
  try {
    return await use(conn);
  } catch (err) {
    conn.close();
    throw signal.aborted ? signal.reason : err;
  } finally {
    signal.removeEventListener("abort", abort);
  }
}

async function askSentinel(
  sentinel: RespEndpoint,
  config: RedisConfig,
  signal: AbortSignal,
): Promise<RespEndpoint> {
  const master = config.sentinelMaster ?? "";
  const reply = await withConnection(sentinel, signal, async (conn) => {
    try {
      await handshake(conn, {
        username: config.sentinelUsername,
        password: config.sentinelPassword,
      });
      return await conn.call(["SENTINEL", "get-master-addr-by-name", master]);
    } finally {
      conn.close();
    }
  });
  if (Array.isArray(reply) && typeof reply[0] === "string" && typeof reply[1] === "string") {
    return { kind: "tcp", host: reply[0], port: Number(reply[1]), tls: config.tls };
  }
  throw reply instanceof Error ? reply : new Error(`Sentinel does not know master "${master}"`);
}

/** Asks each sentinel in turn for the master's address. */
async function askSentinels(config: RedisConfig, signal: AbortSignal): Promise<RespEndpoint> {
  const failures: string[] = [];
  for (const { host, port } of config.sentinels ?? []) {
    try {
      return await askSentinel({ kind: "tcp", host, port, tls: false }, config, signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      failures.push(`${host}:${port}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new RedisConnectionError(
    `No sentinel gave the address of master "${config.sentinelMaster}" (${failures.join("; ")})`,
  );
}

/** Opens an authenticated connection as configured; `select` chooses the database. */
async function openRedis(
  config: RedisConfig,
  select: boolean,
  signal: AbortSignal,
): Promise<RespConnection> {
  const endpoint: RespEndpoint = config.mode === "sentinel"
    ? await askSentinels(config, signal)
    : config.mode === "unix"
    ? { kind: "unix", path: config.path ?? "" }
    : { kind: "tcp", host: config.host, port: config.port, tls: config.tls };
  return await withConnection(endpoint, signal, async (conn) => {
    await handshake(conn, config, select ? config.db : undefined);
    return conn;
  });
}

interface LoopHooks {
  /** A connection is up and authenticated. */
  up(conn: RespConnection): void;
  reply(reply: RespValue): void;
  /** The connection from the last `up` is gone. */
  down(): void;
}

/**
 * Keeps one connection alive: connect, serve replies until it ends, back off,
 * repeat, until closed. Logs one warning per outage (and again only when the
 * reason for failing changes); further failed attempts are debug lines.
 */
class ConnectionLoop {
  readonly #config: RedisConfig;
  readonly #select: boolean;
  readonly #log: Logger;
  readonly #hooks: LoopHooks;
  readonly #done: Promise<void>;
  #closed = false;
  #conn: RespConnection | undefined;
  #attempt: AbortController | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  #outage = false;
  #lastReason: string | undefined;

  constructor(
    options: { config: RedisConfig; select: boolean; log: Logger; hooks: LoopHooks },
  ) {
    this.#config = options.config;
    this.#select = options.select;
    this.#log = options.log;
    this.#hooks = options.hooks;
    this.#done = this.#run();
  }

  /** Stops reconnecting, closes the connection and waits for the loop to end. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#wake?.();
    this.#attempt?.abort(new RedisConnectionError("Closed"));
    this.#conn?.close();
    await this.#done;
  }

  async #run(): Promise<void> {
    let attempt = 0;
    while (!this.#closed) {
      const conn = await this.#open().catch((err) => this.#failed(err));
      if (conn !== undefined && this.#closed) conn.close();
      else if (conn !== undefined) {
        attempt = 0;
        const reason = await this.#serve(conn);
        if (!this.#closed) this.#lost(reason);
      }
      if (!this.#closed) await this.#sleep(backoff(attempt++));
    }
  }

  async #open(): Promise<RespConnection> {
    const attempt = new AbortController();
    this.#attempt = attempt;
    const timer = setTimeout(
      () => attempt.abort(new RedisConnectionError(`No answer within ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    try {
      return await openRedis(this.#config, this.#select, attempt.signal);
    } finally {
      clearTimeout(timer);
      this.#attempt = undefined;
    }
  }

  /** Hands replies to the hooks until the connection ends; returns why it ended. */
  async #serve(conn: RespConnection): Promise<unknown> {
    this.#conn = conn;
    this.#outage = false;
    this.#lastReason = undefined;
    try {
      this.#hooks.up(conn);
      for (let reply = await conn.read(); reply !== undefined; reply = await conn.read()) {
        this.#hooks.reply(reply);
      }
      return new RedisConnectionError("Redis closed the connection");
    } catch (err) {
      return err;
    } finally {
      this.#conn = undefined;
      conn.close();
      this.#hooks.down();
    }
  }

  #lost(reason: unknown): void {
    this.#outage = true;
    this.#log.warn("Redis connection lost, reconnecting", { error: reason });
  }

  #failed(err: unknown): undefined {
    if (this.#closed) return;
    const reason = err instanceof Error ? err.message : String(err);
    const changed = this.#lastReason !== undefined && reason !== this.#lastReason;
    const loud = !this.#outage || changed;
    this.#outage = true;
    this.#lastReason = reason;
    if (loud) this.#log.warn("Cannot connect to Redis, retrying", { error: err });
    else this.#log.debug("Cannot connect to Redis, retrying", { error: err });
  }

  #sleep(ms: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#wake = resolve;
    this.#timer = setTimeout(resolve, ms);
    return promise.finally(() => {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#wake = undefined;
    });
  }
}

/** A first-in first-out queue with O(1) shift. */
class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Removes and returns everything. */
  drain(): T[] {
    const items = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return items;
  }
}

/** One pub/sub message; `channel` has the namespace prefix stripped. */
export interface RedisMessage {
  channel: string;
  message: string;
}

/** Options shared by the subscriber and the client. */
export interface RedisConnectionOptions {
  config: RedisConfig;
  log: Logger;
  /** Called with true after each (re)connect (once resubscribed) and false when it drops. */
  onStateChange?: (connected: boolean) => void;
}

/**
 * The one connection in subscriber mode. `subscribe`/`unsubscribe` record the
 * wanted set and tell Redis when connected; after a reconnect every wanted
 * channel is subscribed again in one command. Messages are read as fast as
 * Redis sends them into a queue the (single) iterator drains. Iteration ends
 * after `close()`; messages still queued then are dropped.
 */
export class RedisSubscriber implements AsyncIterable<RedisMessage> {
  readonly #prefix: string;
  readonly #log: Logger;
  readonly #onStateChange: ((connected: boolean) => void) | undefined;
  readonly #wanted = new Set<string>();
  readonly #queue = new Fifo<RedisMessage>();
  readonly #loop: ConnectionLoop;
  #conn: RespConnection | undefined;
  #wake: (() => void) | undefined;
  #closed = false;
  #everConnected = false;
  #subscriptionCount = 0;
  /** `ready()` callers waiting for a connection. */
  #waiting: PromiseWithResolvers<void>[] = [];
  /** `ready()` callers waiting for the PONG of a PING already sent, one group per PING. */
  readonly #pinged = new Fifo<PromiseWithResolvers<void>[]>();
  /** Times the connection was re-established after being lost. */
  reconnects = 0;
  /** The most messages ever waiting for the consumer at once. */
  queueHighWater = 0;

  constructor(options: RedisConnectionOptions & { namespace?: string }) {
    this.#prefix = options.namespace ? `${options.namespace}:` : "";
    this.#log = options.log.child({ redis: "subscriber" });
    this.#onStateChange = options.onStateChange;
    this.#loop = new ConnectionLoop({
      config: options.config,
      select: false, // pub/sub ignores the database
      log: this.#log,
      hooks: { up: (c) => this.#up(c), reply: (r) => this.#reply(r), down: () => this.#down() },
    });
  }

  /** Whether the connection is up. */
  get connected(): boolean {
    return this.#conn !== undefined;
  }

  /** Channels Redis last said this connection is subscribed to (the `redis_subscriptions` gauge). */
  get subscriptionCount(): number {
    return this.#subscriptionCount;
  }

  /** Messages received but not yet taken by the iterator. */
  get queueLength(): number {
    return this.#queue.length;
  }

  /** Wants `channel` (without namespace); sends SUBSCRIBE now if connected. */
  subscribe(channel: string): void {
    if (this.#closed || this.#wanted.has(channel)) return;
    this.#wanted.add(channel);
    this.#conn?.send(["SUBSCRIBE", this.#prefix + channel]);
  }

  /** Stops wanting `channel`; sends UNSUBSCRIBE now if connected. */
  unsubscribe(channel: string): void {
    if (!this.#wanted.delete(channel)) return;
    this.#conn?.send(["UNSUBSCRIBE", this.#prefix + channel]);
  }

  /** Resolves once connected and Redis has acknowledged every (UN)SUBSCRIBE sent so far. */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new RedisConnectionError("Redis subscriber is closed"));
    const waiter = Promise.withResolvers<void>();
    if (this.#conn === undefined) {
      this.#waiting.push(waiter);
    } else {
      this.#conn.send(["PING"]);
      this.#pinged.push([waiter]);
    }
    return waiter.promise;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<RedisMessage> {
    while (!this.#closed) {
      const message = this.#queue.shift();
      if (message !== undefined) {
        yield message;
        continue;
      }
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#wake = resolve;
      await promise;
    }
  }

  /** Closes the connection, stops reconnecting and ends the iteration. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#wake?.();
    await this.#loop.close();
    const error = new RedisConnectionError("Redis subscriber is closed");
    for (const waiter of this.#waiting) waiter.reject(error);
    this.#waiting = [];
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #up(conn: RespConnection): void {
    this.#conn = conn;
    this.#subscriptionCount = 0;
    if (this.#wanted.size > 0) {
      conn.send(["SUBSCRIBE", ...[...this.#wanted].map((c) => this.#prefix + c)]);
    }
    if (this.#waiting.length > 0) {
      conn.send(["PING"]);
      this.#pinged.push(this.#waiting);
      this.#waiting = [];
    }
    if (this.#everConnected) {
      this.reconnects++;
      this.#log.info("Redis subscriber reconnected", { channels: this.#wanted.size });
    } else {
      this.#log.info("Redis subscriber connected", { channels: this.#wanted.size });
    }
    this.#everConnected = true;
    this.#notify(true);
  }

  #down(): void {
    this.#conn = undefined;
    this.#subscriptionCount = 0;
    for (const group of this.#pinged.drain()) this.#waiting.push(...group);
    this.#notify(false);
  }

  #notify(connected: boolean): void {
    try {
      this.#onStateChange?.(connected);
    } catch (err) {
      this.#log.error("Redis state change handler failed", { error: err });
    }
  }

  #reply(reply: RespValue): void {
    if (!Array.isArray(reply)) {
      if (reply === "PONG") this.#pong();
      else if (reply instanceof RedisReplyError) this.#log.error("Redis refused", { error: reply });
      return;
    }
    const [kind, channel, payload] = reply;
    if (kind === "message" && typeof channel === "string" && typeof payload === "string") {
      this.#enqueue(channel, payload);
    } else if ((kind === "subscribe" || kind === "unsubscribe") && typeof payload === "number") {
      this.#subscriptionCount = payload;
    } else if (kind === "pong") {
      this.#pong();
    }
  }

  #enqueue(channel: string, message: string): void {
    const stripped = channel.startsWith(this.#prefix)
      ? channel.slice(this.#prefix.length)
      : channel;
    this.#queue.push({ channel: stripped, message });
    if (this.#queue.length > this.queueHighWater) this.queueHighWater = this.#queue.length;
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  #pong(): void {
    for (const waiter of this.#pinged.shift() ?? []) waiter.resolve();
  }
}

/**
 * A plain command connection (AUTH, SELECT db), reconnecting like the
 * subscriber. Commands are pipelined and answered in order; while
 * disconnected they fail at once with {@link RedisConnectionError}.
 */
export class RedisClient {
  readonly #log: Logger;
  readonly #onStateChange: ((connected: boolean) => void) | undefined;
  readonly #pending = new Fifo<PromiseWithResolvers<RespValue>>();
  readonly #loop: ConnectionLoop;
  #conn: RespConnection | undefined;
  #closed = false;
  #everConnected = false;
  #waiting: PromiseWithResolvers<void>[] = [];
  /** Times the connection was re-established after being lost. */
  reconnects = 0;

  constructor(options: RedisConnectionOptions) {
    this.#log = options.log.child({ redis: "client" });
    this.#onStateChange = options.onStateChange;
    this.#loop = new ConnectionLoop({
      config: options.config,
      select: true,
      log: this.#log,
      hooks: { up: (c) => this.#up(c), reply: (r) => this.#reply(r), down: () => this.#down() },
    });
  }

  /** Whether the connection is up. */
  get connected(): boolean {
    return this.#conn !== undefined;
  }

  /** Resolves when connected (now, or after the next successful connect). */
  ready(): Promise<void> {
    if (this.#closed) return Promise.reject(new RedisConnectionError("Redis client is closed"));
    if (this.#conn !== undefined) return Promise.resolve();
    const waiter = Promise.withResolvers<void>();
    this.#waiting.push(waiter);
    return waiter.promise;
  }

  /** Sends a command; rejects with the error reply, or at once when disconnected. */
  command(args: string[]): Promise<RespValue> {
    if (this.#conn === undefined) {
      const state = this.#closed ? "closed" : "not connected";
      return Promise.reject(new RedisConnectionError(`Redis client is ${state}`));
    }
    const pending = Promise.withResolvers<RespValue>();
    this.#pending.push(pending);
    this.#conn.send(args);
    return pending.promise;
  }

  /** `SET key value EX seconds`. */
  async set(key: string, value: string, exSeconds: number): Promise<void> {
    await this.command(["SET", key, value, "EX", String(exSeconds)]);
  }

  /** `PUBLISH`; resolves with the number of subscribers that received it. */
  async publish(channel: string, message: string): Promise<number> {
    return Number(await this.command(["PUBLISH", channel, message]));
  }

  /** `PING`. */
  async ping(): Promise<void> {
    await this.command(["PING"]);
  }

  /** Closes the connection and stops reconnecting; pending commands are rejected. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#loop.close();
    const error = new RedisConnectionError("Redis client is closed");
    for (const waiter of this.#waiting) waiter.reject(error);
    this.#waiting = [];
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #up(conn: RespConnection): void {
    this.#conn = conn;
    if (this.#everConnected) {
      this.reconnects++;
      this.#log.info("Redis client reconnected");
    }
    this.#everConnected = true;
    for (const waiter of this.#waiting) waiter.resolve();
    this.#waiting = [];
    try {
      this.#onStateChange?.(true);
    } catch (err) {
      this.#log.error("Redis state change handler failed", { error: err });
    }
  }

  #down(): void {
    this.#conn = undefined;
    const error = new RedisConnectionError("Redis connection lost before the reply");
    for (const pending of this.#pending.drain()) pending.reject(error);
    try {
      this.#onStateChange?.(false);
    } catch (err) {
      this.#log.error("Redis state change handler failed", { error: err });
    }
  }

  #reply(reply: RespValue): void {
    const pending = this.#pending.shift();
    if (pending === undefined) this.#log.error("Redis reply without a command");
    else if (reply instanceof RedisReplyError) pending.reject(reply);
    else pending.resolve(reply);
  }
}

/**
 * Keeps `[ns:]subscribed:<channel>` alive for every channel with a live stream
 * subscription, which Rails checks before publishing home, list and
 * notification events: SET with a TTL when a channel is added, then every
 * interval for all live channels; removed channels are left to expire.
 * Failures are counted and logged once per outage, never thrown; keys that
 * could not be written because the client was down are rewritten when it is
 * back.
 */
export class SubscribedKeys {
  readonly #client: RedisClient;
  readonly #prefix: string;
  readonly #log: Logger;
  readonly #intervalMs: number;
  readonly #ttlSeconds: number;
  readonly #live = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #rewrite: Promise<void> | undefined;
  #outage = false;
  #closed = false;
  /** SETs that failed. */
  failures = 0;

  constructor(options: {
    client: RedisClient;
    namespace?: string;
    log: Logger;
    intervalMs?: number;
    ttlSeconds?: number;
  }) {
    this.#client = options.client;
    this.#prefix = options.namespace ? `${options.namespace}:subscribed:` : "subscribed:";
    this.#log = options.log;
    this.#intervalMs = options.intervalMs ?? 360_000;
    this.#ttlSeconds = options.ttlSeconds ?? 1080;
  }

  /** Channels whose key is being kept alive. */
  get channels(): string[] {
    return [...this.#live];
  }

  /** Starts keeping `channel`'s key alive; resolves once the first SET is done (or failed). */
  add(channel: string): Promise<void> {
    if (this.#closed || this.#live.has(channel)) return Promise.resolve();
    this.#live.add(channel);
    this.#timer ??= setInterval(() => void this.#refresh([...this.#live]), this.#intervalMs);
    return this.#refresh([channel]);
  }

  /** Stops refreshing `channel`'s key; the key is left to expire. */
  remove(channel: string): void {
    if (!this.#live.delete(channel) || this.#live.size > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Writes every live key, first waiting for the client to be connected. Never rejects. */
  rewriteAll(): Promise<void> {
    this.#rewrite ??= this.#rewriteWhenConnected().finally(() => this.#rewrite = undefined);
    return this.#rewrite;
  }

  /** Stops refreshing. */
  close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #rewriteWhenConnected(): Promise<void> {
    while (!this.#closed) {
      try {
        await this.#client.ready();
      } catch {
        return; // the client was closed
      }
      if (!await this.#write([...this.#live])) return;
    }
  }

  async #refresh(channels: string[]): Promise<void> {
    if (await this.#write(channels)) void this.rewriteAll();
  }

  /** SETs the keys; resolves true when some failed because the client is down. */
  async #write(channels: string[]): Promise<boolean> {
    if (this.#closed || channels.length === 0) return false;
    const results = await Promise.allSettled(
      channels.map((c) => this.#client.set(this.#prefix + c, "1", this.#ttlSeconds)),
    );
    const failed = results.filter((r) => r.status === "rejected");
    if (failed.length === 0) {
      if (this.#outage) this.#log.info("subscribed: keys written again");
      this.#outage = false;
      return false;
    }
    this.failures += failed.length;
    if (!this.#outage) {
      this.#log.warn("Cannot write subscribed: keys to Redis", {
        error: failed[0].reason,
        keys: failed.length,
      });
    }
    this.#outage = true;
    return !this.#client.connected;
  }
}
