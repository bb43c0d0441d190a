/**
 * Fan-out keyed by Redis channel. Lazy and reference-counted: the first
 * listener of a channel makes the subscriber SUBSCRIBE, the last one leaving
 * makes it UNSUBSCRIBE; stream channels (not system ones) also keep their
 * `subscribed:` key alive. Each Redis message is parsed once and the same
 * immutable event is handed, in Redis order, to every listener.
 * hub.ts never talks to PostgreSQL and never waits for a client.
 *
 * @module
 */
import { MalformedMessageError, parseEvent, type StreamEvent } from "./event.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** Something that receives the events of the channels it is attached to. */
export interface Listener {
  /** Called synchronously for every event of the channel; must not block. */
  deliver(event: StreamEvent, channel: string): void;
}

/** What the hub needs from the Redis subscriber. */
export interface ChannelSubscriber {
  subscribe(channel: string): void;
  unsubscribe(channel: string): void;
}

/** What the hub needs from the `subscribed:` key keeper. */
export interface ChannelKeys {
  add(channel: string): void;
  remove(channel: string): void;
}

interface ChannelState {
  readonly listeners: Set<Listener>;
  /** Listeners that are stream subscriptions (they keep `subscribed:` keys). */
  streams: number;
}

/** Channel → listeners, with Redis subscriptions following the listener count. */
export class Hub {
  readonly #channels = new Map<string, ChannelState>();
  readonly #subscriber: ChannelSubscriber;
  readonly #keys: ChannelKeys;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  #malformedLogged = 0;

  constructor(
    options: { subscriber: ChannelSubscriber; keys: ChannelKeys; log: Logger; metrics: Metrics },
  ) {
    this.#subscriber = options.subscriber;
    this.#keys = options.keys;
    this.#log = options.log;
    this.#metrics = options.metrics;
  }

  /** Attaches a listener; `stream` marks a stream (not system) subscription. */
  attach(channel: string, listener: Listener, stream: boolean): void {
    let state = this.#channels.get(channel);
    if (state === undefined) {
      state = { listeners: new Set(), streams: 0 };
      this.#channels.set(channel, state);
      this.#subscriber.subscribe(channel);
    }
    if (state.listeners.has(listener)) return;
    state.listeners.add(listener);
    if (stream && state.streams++ === 0) this.#keys.add(channel);
  }

  /** Detaches a listener attached with the same `stream` flag. */
  detach(channel: string, listener: Listener, stream: boolean): void {
    const state = this.#channels.get(channel);
    if (state === undefined || !state.listeners.delete(listener)) return;
    if (stream && --state.streams === 0) this.#keys.remove(channel);
    if (state.listeners.size === 0) {
      this.#channels.delete(channel);
      this.#subscriber.unsubscribe(channel);
    }
  }

  /** Parses one Redis message and hands it to every listener of its channel. */
  publish(channel: string, raw: string): void {
    this.#metrics.redisMessagesReceived.inc();
    const state = this.#channels.get(channel);
    if (state === undefined) return; // a message that raced an UNSUBSCRIBE
    let event: StreamEvent;
    try {
      event = parseEvent(raw);
    } catch (err) {
      if (!(err instanceof MalformedMessageError)) throw err;
      this.#malformed(channel, err, raw);
      return;
    }
    if (!event.deliverable && state.streams > 0) this.#metrics.undeliverableMessages.inc();
    for (const listener of state.listeners) listener.deliver(event, channel);
  }

  /** Channels with at least one listener. */
  get channels(): string[] {
    return [...this.#channels.keys()];
  }

  /** Channels with at least one stream subscription (for rewriting `subscribed:` keys). */
  get streamChannels(): string[] {
    return [...this.#channels].filter(([, s]) => s.streams > 0).map(([c]) => c);
  }

  /** How many listeners a channel has. */
  listenerCount(channel: string): number {
    return this.#channels.get(channel)?.listeners.size ?? 0;
  }

  #malformed(channel: string, err: MalformedMessageError, raw: string): void {
    this.#metrics.malformedMessages.inc({ reason: err.reason });
    // Logged with a sample of the message; at most one line per second under a flood.
    const now = Date.now();
    if (now - this.#malformedLogged < 1000) return;
    this.#malformedLogged = now;
    this.#log.error("Malformed Redis message dropped", {
      channel,
      reason: err.reason,
      detail: err.message,
      sample: raw.slice(0, 200),
    });
  }
}
