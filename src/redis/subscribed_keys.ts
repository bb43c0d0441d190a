/**
 * The `[ns:]subscribed:<channel>` keys that tell Rails a channel has a live
 * stream subscription, kept alive through a {@link RedisClient}. Never
 * subscribes and never throws because Redis is down.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import type { RedisClient } from "./client.ts";

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
