/**
 * A plain Redis command connection (AUTH, SELECT db): commands pipelined and
 * each reply matched to its command. Connection state and reconnecting are
 * {@link ConnectionLoop}'s; while disconnected, commands fail at once instead
 * of queueing. Never used for pub/sub.
 *
 * @module
 */
import { Fifo } from "./_fifo.ts";
import { ConnectionLoop, type RedisConnectionOptions } from "./connection.ts";
import { watchSentinels } from "./sentinel_watch.ts";
import { RedisConnectionError, RedisReplyError, type RespValue } from "./resp.ts";

/**
 * Sends commands in order on one connection and resolves each with its
 * reply; an error reply rejects with {@link RedisReplyError}, a lost or
 * missing connection with {@link RedisConnectionError}.
 */
export class RedisClient extends ConnectionLoop {
  /** Commands sent and not yet answered, in sending order. */
  readonly #pending = new Fifo<PromiseWithResolvers<RespValue>>();

  constructor(options: RedisConnectionOptions) {
    super(options, { name: "client", select: true, watch: watchSentinels });
  }

  /** Resolves when connected (now, or after the next successful connect); rejects once closed. */
  async ready(): Promise<void> {
    await this.whenConnected();
  }

  /** Sends a command; rejects with the error reply, or at once when disconnected. */
  command(args: string[]): Promise<RespValue> {
    const conn = this.connection;
    if (conn === undefined) {
      const state = this.closed ? "closed" : "not connected";
      return Promise.reject(new RedisConnectionError(`Redis client is ${state}`));
    }
    const pending = Promise.withResolvers<RespValue>();
    this.#pending.push(pending);
    conn.send(args);
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

  protected onConnect(): void {}

  protected onDisconnect(): void {
    const error = new RedisConnectionError("Redis connection lost before the reply");
    for (const pending of this.#pending.drain()) pending.reject(error);
  }

  protected onReply(reply: RespValue): void {
    const pending = this.#pending.shift();
    if (pending === undefined) this.log.error("Redis reply without a command");
    else if (reply instanceof RedisReplyError) pending.reject(reply);
    else pending.resolve(reply);
  }
}
