/**
 * Keeping one Redis connection alive, and the state every owner of one needs:
 * {@link ConnectionLoop} connects (see `_open.ts`), hands each reply to its
 * subclass, reconnects until closed (at once, then with jittered backoff),
 * moves to the new master when a sentinel watch announces one, and owns
 * whether the connection is up, how often it came back, who waits for it, and
 * the owner's `onStateChange` callback. Knows nothing about what the replies
 * mean; never throws because Redis is down.
 *
 * @module
 */
import type { RedisConfig } from "../config.ts";
import type { Logger } from "../log.ts";
import { addressOf, type Opened, openRedis } from "./_open.ts";
import {
  RedisConnectionError,
  type RespConnection,
  type RespEndpoint,
  type RespValue,
} from "./resp.ts";

/** Options shared by the subscriber and the client. */
export interface RedisConnectionOptions {
  config: RedisConfig;
  log: Logger;
  /** Called with true after each (re)connect (once resubscribed) and false when it drops. */
  onStateChange?: (connected: boolean) => void;
  /** Delay in ms before attempt `n` (0-based) since the last connection; {@link reconnectDelay} by default. */
  retryDelay?: (attempt: number) => number;
}

/** Starts following the master's moves for a connection; undefined when not in Sentinel mode. */
export type WatchFactory = (
  config: RedisConfig,
  log: Logger,
  onSwitch: (master: RespEndpoint) => void,
) => { close(): Promise<void> } | undefined;

/** Who owns the connection: names it in log lines and says whether to SELECT the database. */
export interface ConnectionRole {
  name: "subscriber" | "client" | "sentinel";
  /** Send SELECT db after AUTH (pub/sub ignores the database). */
  select: boolean;
  /** Follows `+switch-master` for this connection (Sentinel mode). */
  watch?: WatchFactory;
}

const BACKOFF_BASE_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Delay before attempt `n` (0-based) since the last connection: none before
 * the first, then "full jitter": `random()` times 100 ms doubling per attempt,
 * capped at 5 s.
 */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  if (attempt <= 0) return 0;
  return random() * Math.min(BACKOFF_BASE_MS * 2 ** Math.min(attempt - 1, 16), BACKOFF_MAX_MS);
}

/**
 * One connection kept alive: connect, serve replies until it ends, back off,
 * repeat, until closed. Subclasses give the replies their meaning through
 * `onConnect`, `onReply` and `onDisconnect`. Logs one warning per outage (and
 * again only when the reason for failing changes); further failed attempts
 * are debug lines.
 */
export abstract class ConnectionLoop {
  /** The owner's logger (`redis: "subscriber"` or `"client"`). */
  protected readonly log: Logger;
  readonly #config: RedisConfig;
  readonly #role: ConnectionRole;
  readonly #onStateChange: ((connected: boolean) => void) | undefined;
  readonly #retryDelay: (attempt: number) => number;
  readonly #watch: { close(): Promise<void> } | undefined;
  readonly #done: Promise<void>;
  #closed = false;
  #conn: RespConnection | undefined;
  /** Where the live connection goes. */
  #endpoint: RespEndpoint | undefined;
  /** The master a `+switch-master` named, for the next attempt. */
  #switchedTo: RespEndpoint | undefined;
  /** Times a `+switch-master` moved this connection. */
  #switches = 0;
  /** Failed attempts since the last connection. */
  #failures = 0;
  #everConnected = false;
  #reconnects = 0;
  /** Callers of `whenConnected()` waiting for the next connection. */
  #waiting: PromiseWithResolvers<RespConnection>[] = [];
  #attempt: AbortController | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  #outage = false;
  #lastReason: string | undefined;
  #lastError: unknown;

  protected constructor(options: RedisConnectionOptions, role: ConnectionRole) {
    this.#config = options.config;
    this.#role = role;
    this.#onStateChange = options.onStateChange;
    this.#retryDelay = options.retryDelay ?? reconnectDelay;
    this.log = options.log.child({ redis: role.name });
    const watchLog = options.log.child({ for: role.name });
    this.#watch = role.watch?.(this.#config, watchLog, (master) => this.#switchTo(master));
    // Started after the subclass constructor has run, so its fields exist before any hook.
    this.#done = Promise.resolve().then(() => this.#run());
  }

  /** Whether the connection is up. */
  get connected(): boolean {
    return this.#conn !== undefined;
  }

  /** Why the last attempt to connect failed, while not connected (for readiness). */
  get failure(): unknown {
    return this.#conn === undefined ? this.#lastError : undefined;
  }

  /** Times the connection was re-established after being lost. */
  get reconnects(): number {
    return this.#reconnects;
  }

  /** Stops reconnecting, closes the connection and waits for the loop to end. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#wake?.();
    this.#attempt?.abort(new RedisConnectionError("Closed"));
    this.#conn?.close();
    await Promise.all([this.#done, this.#watch?.close()]);
    const error = this.#closedError();
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The live connection, if any. */
  protected get connection(): RespConnection | undefined {
    return this.#conn;
  }

  /** Whether `close()` was called. */
  protected get closed(): boolean {
    return this.#closed;
  }

  /** The live connection, now or after the next connect (once `onConnect` ran); rejects once closed. */
  protected whenConnected(): Promise<RespConnection> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (this.#conn !== undefined) return Promise.resolve(this.#conn);
    const waiter = Promise.withResolvers<RespConnection>();
    this.#waiting.push(waiter);
    return waiter.promise;
  }

  /** Opens one connection; Sentinel mode uses `switchedTo` when a `+switch-master` named it. */
  protected open(signal: AbortSignal, switchedTo: RespEndpoint | undefined): Promise<Opened> {
    return openRedis(this.#config, this.#role.select, signal, switchedTo);
  }

  /** A new connection is up and authenticated; returns fields for the "connected" log line. */
  protected abstract onConnect(conn: RespConnection): Record<string, unknown> | void;
  /** One reply (or pushed message) from the live connection. */
  protected abstract onReply(reply: RespValue): void;
  /** The connection from the last `onConnect` is gone. */
  protected abstract onDisconnect(): void;

  #closedError(): RedisConnectionError {
    return new RedisConnectionError(`Redis ${this.#role.name} is closed`);
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      const delay = this.#retryDelay(this.#failures);
      if (delay > 0) await this.#sleep(delay); // a switch wakes it
      if (this.#closed) break;
      const switches = this.#switches;
      const switchedTo = this.#switchedTo;
      this.#switchedTo = undefined;
      const opened = await this.#open(switchedTo).catch((err) => {
        if (switches === this.#switches) this.#failed(err); // else aborted by a switch: go at once
      });
      const moved = switches !== this.#switches;
      if (opened === undefined) {
        if (!moved) this.#failures++;
      } else if (this.#closed || moved) opened.conn.close();
      else {
        this.#failures = 0;
        const reason = await this.#serve(opened, switchedTo !== undefined);
        if (!this.#closed && switches === this.#switches) this.#lost(reason);
      }
    }
  }

  /** A sentinel named `master` as our master's new address: leave the old one and go there at once. */
  #switchTo(master: RespEndpoint): void {
    const address = addressOf(master);
    if (this.#closed || (this.#endpoint && addressOf(this.#endpoint) === address)) return;
    this.log.info("Redis master switched, reconnecting at once", { address });
    this.#switches++;
    this.#switchedTo = master;
    this.#failures = 0;
    this.#attempt?.abort(new RedisConnectionError(`The master moved to ${address}`));
    this.#conn?.close();
    this.#wake?.();
  }

  async #open(switchedTo: RespEndpoint | undefined): Promise<Opened> {
    const attempt = new AbortController();
    this.#attempt = attempt;
    const timer = setTimeout(
      () => attempt.abort(new RedisConnectionError(`No answer within ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    try {
      return await this.open(attempt.signal, switchedTo);
    } finally {
      clearTimeout(timer);
      this.#attempt = undefined;
    }
  }

  /** Hands replies to the subclass until the connection ends; returns why it ended. */
  async #serve({ conn, endpoint }: Opened, switched: boolean): Promise<unknown> {
    this.#outage = false;
    this.#lastReason = undefined;
    this.#lastError = undefined;
    this.#endpoint = endpoint;
    try {
      this.#up(conn, { address: addressOf(endpoint), ...switched ? { via: "switch-master" } : {} });
      for (let reply = await conn.read(); reply !== undefined; reply = await conn.read()) {
        this.onReply(reply);
      }
      return new RedisConnectionError("Redis closed the connection");
    } catch (err) {
      return err;
    } finally {
      this.#conn = undefined;
      this.#endpoint = undefined;
      conn.close();
      this.onDisconnect();
      this.#notify(false);
    }
  }

  #up(conn: RespConnection, where: Record<string, unknown>): void {
    this.#conn = conn;
    const fields = { ...where, ...this.onConnect(conn) };
    const again = this.#everConnected;
    if (again) this.#reconnects++;
    this.#everConnected = true;
    this.log.info(`Redis ${this.#role.name} ${again ? "reconnected" : "connected"}`, fields);
    for (const waiter of this.#waiting.splice(0)) waiter.resolve(conn);
    this.#notify(true);
  }

  #notify(connected: boolean): void {
    try {
      this.#onStateChange?.(connected);
    } catch (err) {
      this.log.error("Redis state change handler failed", { error: err });
    }
  }

  #lost(reason: unknown): void {
    this.#outage = true;
    this.log.warn("Redis connection lost, reconnecting", { error: reason });
  }

  #failed(err: unknown): undefined {
    if (this.#closed) return;
    const reason = err instanceof Error ? err.message : String(err);
    const changed = this.#lastReason !== undefined && reason !== this.#lastReason;
    const loud = !this.#outage || changed;
    this.#outage = true;
    this.#lastReason = reason;
    this.#lastError = err;
    if (loud) this.log.warn("Cannot connect to Redis, retrying", { error: err });
    else this.log.debug("Cannot connect to Redis, retrying", { error: err });
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
