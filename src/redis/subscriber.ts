/**
 * Redis for the streaming server: one subscriber connection that yields
 * pub/sub messages as an async iterator and resubscribes after every
 * reconnect, and a plain command connection. Both reconnect forever with
 * backoff (see `_redis_connection.ts`); nothing here throws because Redis is
 * down, except commands issued while disconnected, which fail fast. Never
 * parses message payloads. Also re-exports {@link SubscribedKeys}, the
 * `subscribed:<channel>` keys that tell Rails someone is listening.
 *
 * @module
 */
import type { RedisConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import { RedisReplyError, type RespConnection, type RespValue } from "./_resp.ts";
import { ConnectionLoop, RedisConnectionError } from "./_redis_connection.ts";
import { Fifo } from "./_fifo.ts";

export { RedisConnectionError, RedisReplyError, type RespValue };
export { SubscribedKeys } from "./subscribed_keys.ts";

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
