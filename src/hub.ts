/**
 * Fan-out keyed by Redis channel. Lazy and reference-counted: the first
 * listener of a channel makes the subscriber SUBSCRIBE, the last one leaving
 * makes it UNSUBSCRIBE; stream channels (not system ones) also keep their
 * `subscribed:` key alive. Each Redis message is parsed once and the same
 * immutable event is handed, in Redis order, to every listener. Events that
 * are filtered per viewer wait for their facts (fetched once for all viewers);
 * later events of that channel queue behind them so order is kept. Facts of
 * up to {@link FACTS_IN_FLIGHT} queued events are fetched at once, so the
 * channel's throughput is not one database round trip time per event; a
 * channel whose backlog passes {@link MAX_BACKLOG} drops new events (counted,
 * logged) instead of growing without bound.
 * hub.ts never talks to PostgreSQL and never waits for a client.
 *
 * @module
 */
import { MalformedMessageError, parseEvent, type StreamEvent } from "./event.ts";
import type { EventFacts, EventFilter, FilterViewer } from "./filter.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** Something that receives the events of the channels it is attached to. */
export interface Listener {
  /**
   * Called for every event of the channel, in Redis order; must not block.
   * `facts` is given for events that are filtered per viewer.
   */
  deliver(event: StreamEvent, facts?: EventFacts): void;
  /** Present when this listener's updates are filtered per viewer. */
  readonly viewer?: FilterViewer;
}

/** Told a channel's listener count after each change (see {@link Hub.observe}). */
export type ListenerObserver = (channel: string, listeners: number) => void;

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

/** What the hub needs from per-viewer filtering (an {@link EventFilter}). */
export type FactsSource = Pick<EventFilter, "applies" | "prepare">;

/** Queued events whose filtering facts are fetched concurrently, per channel. */
export const FACTS_IN_FLIGHT = 8;
/** Queued events per channel beyond which new events are dropped. */
export const MAX_BACKLOG = 5_000;

interface Queued {
  readonly event: StreamEvent;
  readonly listeners: Listener[];
  /** Started once the event is within the first FACTS_IN_FLIGHT of the queue. */
  facts?: Promise<EventFacts | undefined>;
}

interface ChannelState {
  readonly listeners: Set<Listener>;
  /** Listeners that are stream subscriptions (they keep `subscribed:` keys). */
  streams: number;
  /** Listeners filtered per viewer. */
  filtered: number;
  /** Events waiting for their filtering facts, or behind one that is; in Redis order. */
  readonly queue: Queued[];
  draining: boolean;
}

/** Channel → listeners, with Redis subscriptions following the listener count. */
export class Hub {
  readonly #channels = new Map<string, ChannelState>();
  readonly #subscriber: ChannelSubscriber;
  readonly #keys: ChannelKeys;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #filter?: FactsSource;
  #malformedLogged = 0;
  #backlogLogged = 0;
  readonly #observers = new Set<ListenerObserver>();

  constructor(
    options: {
      subscriber: ChannelSubscriber;
      keys: ChannelKeys;
      log: Logger;
      metrics: Metrics;
      filter?: FactsSource;
    },
  ) {
    this.#filter = options.filter;
    this.#subscriber = options.subscriber;
    this.#keys = options.keys;
    this.#log = options.log;
    this.#metrics = options.metrics;
  }

  /** Attaches a listener; `stream` marks a stream (not system) subscription. */
  attach(channel: string, listener: Listener, stream: boolean): void {
    let state = this.#channels.get(channel);
    if (state === undefined) {
      state = { listeners: new Set(), streams: 0, filtered: 0, queue: [], draining: false };
      this.#channels.set(channel, state);
      this.#subscriber.subscribe(channel);
    }
    if (state.listeners.has(listener)) return;
    state.listeners.add(listener);
    if (listener.viewer) state.filtered++;
    if (stream && state.streams++ === 0) this.#keys.add(channel);
    this.#changed(channel, state.listeners.size);
  }

  /** Detaches a listener attached with the same `stream` flag. */
  detach(channel: string, listener: Listener, stream: boolean): void {
    const state = this.#channels.get(channel);
    if (state === undefined || !state.listeners.delete(listener)) return;
    if (listener.viewer) state.filtered--;
    if (stream && --state.streams === 0) this.#keys.remove(channel);
    if (state.listeners.size === 0) {
      this.#channels.delete(channel);
      this.#subscriber.unsubscribe(channel);
    }
    this.#changed(channel, state.listeners.size);
  }

  /**
   * Calls `observer` with a channel and its new listener count after every
   * attach and detach; returns the function that stops observing.
   */
  observe(observer: ListenerObserver): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  #changed(channel: string, count: number): void {
    for (const observer of this.#observers) observer(channel, count);
  }

  /** Parses one Redis message and hands it to every listener of its channel. */
  publish(channel: string, raw: string): void {
    this.#metrics.redisMessagesReceived.inc();
    const state = this.#channels.get(channel);
    if (state === undefined) {
      this.#metrics.unlistenedMessages.inc(); // it raced an UNSUBSCRIBE
      return;
    }
    let event: StreamEvent;
    try {
      event = parseEvent(raw);
    } catch (err) {
      if (!(err instanceof MalformedMessageError)) throw err;
      this.#malformed(channel, err, raw);
      return;
    }
    if (!event.deliverable && state.streams > 0) this.#metrics.undeliverableMessages.inc();
    const needsFacts = state.filtered > 0 && this.#filter?.applies(event);
    if (state.queue.length === 0 && !needsFacts) {
      for (const listener of state.listeners) this.#deliver(listener, event, channel);
      return;
    }
    if (state.queue.length >= MAX_BACKLOG) {
      this.#overflowed(channel, state);
      return;
    }
    state.queue.push({ event, listeners: [...state.listeners] });
    this.#fetchAhead(state);
    if (!state.draining) this.#drain(channel, state);
  }

  /**
   * Delivers a channel's queued events in order, fetching filtering facts for
   * each that needs them (one round trip for all its viewers). Listeners that
   * left meanwhile are skipped; ones that arrived later never see older events.
   */
  async #drain(channel: string, state: ChannelState): Promise<void> {
    state.draining = true;
    try {
      while (state.queue.length > 0) {
        this.#fetchAhead(state);
        const { event, listeners, facts } = state.queue[0];
        const known = await facts;
        state.queue.shift();
        for (const listener of listeners) {
          if (state.listeners.has(listener)) this.#deliver(listener, event, channel, known);
        }
      }
    } finally {
      state.draining = false;
    }
  }

  /** Starts fetching facts for the first FACTS_IN_FLIGHT queued events. */
  #fetchAhead(state: ChannelState): void {
    const end = Math.min(state.queue.length, FACTS_IN_FLIGHT);
    for (let i = 0; i < end; i++) {
      const queued = state.queue[i];
      if (queued.facts === undefined) queued.facts = this.#facts(queued);
    }
  }

  /** One round trip for all viewers of a filtered event; undefined when nothing is filtered. */
  #facts({ event, listeners }: Queued): Promise<EventFacts | undefined> {
    if (!this.#filter?.applies(event)) return Promise.resolve(undefined);
    const viewers = listeners.flatMap((l) => l.viewer ? [l.viewer] : []);
    if (viewers.length === 0) return Promise.resolve(undefined);
    return this.#filter.prepare(event, viewers);
  }

  /** Drops an event that found its channel's backlog full; counted per listener, logged once a second. */
  #overflowed(channel: string, state: ChannelState): void {
    this.#metrics.backlogDrops.inc({}, state.listeners.size);
    const now = Date.now();
    if (now - this.#backlogLogged < 1000) return;
    this.#backlogLogged = now;
    this.#log.error("Filtering cannot keep up; events dropped on this channel", {
      channel,
      backlog: state.queue.length,
    });
  }

  /** One delivery; a failing listener is logged and never stops the others. */
  #deliver(listener: Listener, event: StreamEvent, channel: string, facts?: EventFacts): void {
    try {
      listener.deliver(event, facts);
    } catch (err) {
      this.#log.error("A listener failed to take an event", { channel, err: err as Error });
    }
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
