/**
 * Fan-out keyed by Redis channel. Lazy and reference-counted: the first
 * listener of a channel makes the subscriber SUBSCRIBE, the last one leaving
 * makes it UNSUBSCRIBE; stream channels (not system ones) also keep their
 * `subscribed:` key alive. Each Redis message is parsed once and the same
 * immutable event is handed, in Redis order, to every listener. Events that
 * are filtered per viewer wait for their facts (fetched once for all viewers);
 * later events of that channel queue behind them so order is kept. The facts
 * of queued events are fetched in batches, one query for up to
 * {@link MAX_BATCH} events, with at most {@link BATCHES_IN_FLIGHT} batches per
 * channel in the database: while one batch is out, the events arriving
 * meanwhile gather into the next, so a slower database means larger batches
 * rather than a lower rate, and one channel never holds more than a few pool
 * connections. A channel whose backlog passes {@link MAX_BACKLOG} drops new
 * events (counted, logged) instead of growing without bound.
 * hub.ts never talks to PostgreSQL and never waits for a client.
 *
 * @module
 */
import { MalformedMessageError, parseEvent, type StreamEvent } from "./event.ts";
import {
  type EventFacts,
  type EventFilter,
  type FilterViewer,
  unavailableFacts,
} from "./filter.ts";
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
export type FactsSource = Pick<EventFilter, "applies" | "prepareMany">;

/** Queued events whose filtering facts one query fetches at most. */
export const MAX_BATCH = 128;
/** Fact queries of one channel in the database at once (a small share of `DB_POOL`). */
export const BATCHES_IN_FLIGHT = 2;
/** Queued events per channel beyond which new events are dropped. */
export const MAX_BACKLOG = 5_000;

interface Queued {
  readonly event: StreamEvent;
  readonly listeners: Listener[];
  /** Started when a batch takes the event (events are taken in queue order). */
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
  /** How many events at the head of the queue have their facts started. */
  started: number;
  /** Fact queries of this channel in flight. */
  batches: number;
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
      state = {
        listeners: new Set(),
        streams: 0,
        filtered: 0,
        queue: [],
        started: 0,
        batches: 0,
        draining: false,
      };
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
   * Delivers a channel's queued events in order, waiting for the filtering
   * facts of each that needs them. Listeners that left meanwhile are skipped;
   * ones that arrived later never see older events.
   */
  async #drain(channel: string, state: ChannelState): Promise<void> {
    state.draining = true;
    try {
      while (state.queue.length > 0) {
        this.#fetchAhead(state);
        const { event, listeners, facts } = state.queue[0];
        const known = await facts;
        state.queue.shift();
        state.started--;
        for (const listener of listeners) {
          if (state.listeners.has(listener)) this.#deliver(listener, event, channel, known);
        }
      }
    } finally {
      state.draining = false;
    }
  }

  /**
   * Starts fact queries for the queued events not yet taken, oldest first,
   * while the channel has fewer than BATCHES_IN_FLIGHT in the database. Events
   * that need no facts are settled on the spot and take no room in a batch.
   */
  #fetchAhead(state: ChannelState): void {
    while (state.started < state.queue.length && state.batches < BATCHES_IN_FLIGHT) {
      const batch: Array<{ queued: Queued; viewers: FilterViewer[] }> = [];
      for (; state.started < state.queue.length && batch.length < MAX_BATCH; state.started++) {
        const queued = state.queue[state.started];
        const viewers = this.#viewers(state, queued);
        if (viewers.length === 0) queued.facts = Promise.resolve(undefined);
        else batch.push({ queued, viewers });
      }
      if (batch.length > 0) this.#fetch(state, batch);
    }
  }

  /** One query for the facts of a batch; the next batch may start once it is back. */
  #fetch(state: ChannelState, batch: Array<{ queued: Queued; viewers: FilterViewer[] }>): void {
    state.batches++;
    const all = this.#filter!.prepareMany(batch.map(({ queued, viewers }) => ({
      event: queued.event,
      viewers,
    }))).catch((err) => {
      this.#log.error("Filtering facts failed; the events are not delivered to filtered viewers", {
        err: err as Error,
      });
      return batch.map(({ queued }) => unavailableFacts(queued.event));
    }).finally(() => {
      state.batches--;
      this.#fetchAhead(state);
    });
    batch.forEach(({ queued }, i) => {
      queued.facts = all.then((facts) => facts[i]);
    });
  }

  /** The viewers still attached of a queued event that is filtered at all; none when it is not. */
  #viewers(state: ChannelState, { event, listeners }: Queued): FilterViewer[] {
    if (!this.#filter?.applies(event)) return [];
    return listeners.flatMap((l) => l.viewer && state.listeners.has(l) ? [l.viewer] : []);
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
