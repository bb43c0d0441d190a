/**
 * Publishing at a steady rate: message `k` is due `k / rate` seconds after
 * the start; a timer wakes for the next due message and sends every message
 * that is due by then (catching up after a late wake-up, never sending ahead
 * of time). Each message is stamped with the moment it is handed to the
 * publisher. PUBLISH goes over one pipelined Redis connection
 * (`RedisClient` from src/redis/client.ts) unless a `publish` function is given.
 *
 * @module
 */
import { parseRedisUrl } from "../../src/config.ts";
import { silentLogger } from "../../src/log.ts";
import { RedisClient } from "../../src/redis/client.ts";
import { nowMicros } from "./client.ts";
import type { MessageFactory } from "../messages.ts";

/** Sends one message; resolves with whatever the transport answers. */
export type PublishFn = (message: string) => Promise<unknown>;

/** What a publishing run did. */
export interface PublishResult {
  published: number;
  errors: number;
  /** Seconds from the first message to one interval after the last. */
  seconds: number;
  /** Smallest subscriber count Redis reported for a PUBLISH (undefined without Redis). */
  minReceivers: number | undefined;
}

/** Sleeps `ms` (at least one timer turn), waking early when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  const { promise, resolve } = Promise.withResolvers<void>();
  const done = () => {
    clearTimeout(timer);
    signal?.removeEventListener("abort", done);
    resolve();
  };
  const timer = setTimeout(done, Math.max(0, ms));
  signal?.addEventListener("abort", done);
  return promise;
}

/** A Redis publisher on `url`, connected (or throws after `timeoutMs`). */
export async function redisPublisher(
  url: string,
  channel: string,
  timeoutMs = 10_000,
): Promise<{ publish: PublishFn; close: () => Promise<void> }> {
  const config = parseRedisUrl(url);
  const client = new RedisClient({ config, log: silentLogger });
  const late = Promise.withResolvers<"late">();
  const timer = setTimeout(() => late.resolve("late"), timeoutMs);
  const outcome = await Promise.race([client.ready(), late.promise]).finally(() =>
    clearTimeout(timer)
  );
  if (outcome === "late") {
    await client.close();
    throw new Error(`Redis at ${url} did not answer within ${timeoutMs} ms`);
  }
  return { publish: (message) => client.publish(channel, message), close: () => client.close() };
}

/** Publishes `round(rate × seconds)` messages at `rate` per second. */
export async function publishSteadily(args: {
  rate: number;
  seconds: number;
  makeMessage: MessageFactory;
  publish: PublishFn;
  signal?: AbortSignal;
}): Promise<PublishResult> {
  const { rate, makeMessage, publish, signal } = args;
  const total = Math.max(1, Math.round(rate * args.seconds));
  const result: PublishResult = { published: 0, errors: 0, seconds: 0, minReceivers: undefined };
  const pending = new Set<Promise<void>>();
  const send = (seq: number) => {
    const sent = publish(makeMessage(seq, nowMicros())).then(
      (receivers) => {
        if (typeof receivers !== "number") return;
        result.minReceivers = Math.min(result.minReceivers ?? receivers, receivers);
      },
      () => void result.errors++,
    ).finally(() => pending.delete(sent));
    pending.add(sent);
  };
  const start = performance.now();
  while (result.published < total && !signal?.aborted) {
    const elapsed = performance.now() - start;
    const due = Math.min(total, Math.floor(elapsed * rate / 1000) + 1);
    while (result.published < due) send(result.published++);
    result.seconds = (performance.now() - start) / 1000 + 1 / rate;
    await sleep(start + result.published * 1000 / rate - performance.now(), signal);
  }
  await Promise.all(pending);
  return result;
}
