/**
 * The one Redis connection in subscriber mode: the wanted channel set,
 * SUBSCRIBE/UNSUBSCRIBE, resubscribing after every reconnect, and handing
 * each message straight to the owner's `onMessage` hook. Connection state
 * and reconnecting are {@link ConnectionLoop}'s. Never parses message
 * payloads and never lets a failing hook break the connection.
 *
 * @module
 */
import { Fifo } from "./_fifo.ts";
import { ConnectionLoop, type RedisConnectionOptions } from "./connection.ts";
import { watchSentinels } from "./sentinel_watch.ts";
import { RedisReplyError, type RespConnection, type RespValue } from "./resp.ts";

/** Receives one pub/sub message; `channel` has the namespace prefix stripped. */
export type MessageHook = (channel: string, message: string) => void;

/** What a {@link RedisSubscriber} needs. */
export interface RedisSubscriberOptions extends RedisConnectionOptions {
  /** Mastodon ≤ 4.3 channel prefix (`<namespace>:`). */
  namespace?: string;
  /** Called for every message, in Redis order, from the connection's read loop. */
  onMessage: MessageHook;
}

/**
 * `subscribe`/`unsubscribe` record the wanted set and tell Redis when
 * connected; after a reconnect every wanted channel is subscribed again in
 * one command. Messages are read as fast as Redis sends them and passed to
 * `onMessage` synchronously; a hook that throws is logged and counted in
 * `hookFailures`, and the next message is delivered as usual.
 */
export class RedisSubscriber extends ConnectionLoop {
  readonly #prefix: string;
  readonly #onMessage: MessageHook;
  readonly #wanted = new Set<string>();
  /** `ready()` callers waiting for the PONG of a PING already sent, in PING order. */
  readonly #pinged = new Fifo<PromiseWithResolvers<void>>();
  #subscriptionCount = 0;
  /** Messages whose `onMessage` call threw. */
  hookFailures = 0;

  constructor(options: RedisSubscriberOptions) {
    super(options, { name: "subscriber", select: false, watch: watchSentinels });
    this.#prefix = options.namespace ? `${options.namespace}:` : "";
    this.#onMessage = options.onMessage;
  }

  /** Channels Redis last said this connection is subscribed to (the `redis_subscriptions` gauge). */
  get subscriptionCount(): number {
    return this.#subscriptionCount;
  }

  /** Wants `channel` (without namespace); sends SUBSCRIBE now if connected. */
  subscribe(channel: string): void {
    if (this.closed || this.#wanted.has(channel)) return;
    this.#wanted.add(channel);
    this.connection?.send(["SUBSCRIBE", this.#prefix + channel]);
  }

  /** Stops wanting `channel`; sends UNSUBSCRIBE now if connected. */
  unsubscribe(channel: string): void {
    if (!this.#wanted.delete(channel)) return;
    this.connection?.send(["UNSUBSCRIBE", this.#prefix + channel]);
  }

  /**
   * Resolves once connected and Redis has acknowledged every (UN)SUBSCRIBE
   * sent so far (a PING answered after them); rejects once closed.
   */
  ready(): Promise<void> {
    const waiter = Promise.withResolvers<void>();
    this.#ping(waiter);
    return waiter.promise;
  }

  protected onConnect(conn: RespConnection): Record<string, unknown> {
    this.#subscriptionCount = 0;
    if (this.#wanted.size > 0) {
      conn.send(["SUBSCRIBE", ...[...this.#wanted].map((c) => this.#prefix + c)]);
    }
    return { channels: this.#wanted.size };
  }

  protected onDisconnect(): void {
    this.#subscriptionCount = 0;
    for (const waiter of this.#pinged.drain()) this.#ping(waiter); // again on the next connection
  }

  protected onReply(reply: RespValue): void {
    if (!Array.isArray(reply)) {
      if (reply === "PONG") this.#pinged.shift()?.resolve();
      else if (reply instanceof RedisReplyError) this.log.error("Redis refused", { error: reply });
      return;
    }
    const [kind, channel, payload] = reply;
    if (kind === "message" && typeof channel === "string" && typeof payload === "string") {
      this.#deliver(channel, payload);
    } else if ((kind === "subscribe" || kind === "unsubscribe") && typeof payload === "number") {
      this.#subscriptionCount = payload;
    } else if (kind === "pong") {
      this.#pinged.shift()?.resolve();
    }
  }

  /** Sends a PING on the live connection, or waits for the next one; rejects once closed. */
  #ping(waiter: PromiseWithResolvers<void>): void {
    const conn = this.connection;
    if (conn === undefined) {
      this.whenConnected().then(() => this.#ping(waiter), waiter.reject);
      return;
    }
    conn.send(["PING"]);
    this.#pinged.push(waiter);
  }

  #deliver(channel: string, message: string): void {
    const stripped = channel.startsWith(this.#prefix)
      ? channel.slice(this.#prefix.length)
      : channel;
    try {
      this.#onMessage(stripped, message);
    } catch (err) {
      this.hookFailures++;
      this.log.error("Redis message handler failed", { channel: stripped, error: err });
    }
  }
}
