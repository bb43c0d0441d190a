/**
 * The transport-neutral half of a connection: its viewer, its system channel
 * listener (`kill`, `filters_changed`), its stream subscriptions in the hub,
 * and the gauges that count them. SSE and WebSocket adapters extend it and
 * only say how bytes leave and how the connection ends.
 *
 * @module
 */
import type { ResolvedStream } from "./access.ts";
import type { Viewer } from "./auth.ts";
import type { StreamEvent } from "./event.ts";
import type { FeedAccess } from "./db.ts";
import { type EventFacts, FilterCache, type FilterViewer } from "./filter.ts";
import type { Hub, Listener } from "./hub.ts";
import type { Metrics, Series } from "./metrics.ts";
import { systemChannels } from "./timeline.ts";
import type { CutReason, Queued, QueueWatch } from "./_queue_watch.ts";

/** Connection type label used by Mastodon's metrics. */
export type ClientType = "websocket" | "eventsource";

/** What every connection shares, built once by `clients.ts`. */
export interface ClientContext {
  readonly hub: Hub;
  readonly metrics: Metrics;
  /** Queued bytes that must drain every second (SLUICE_CLIENT_QUEUE_BYTES); see `_queue_watch.ts`. */
  readonly clientQueueBytes: number;
  /** Follows the clients with bytes waiting and cuts those too far behind. */
  readonly queues: QueueWatch;
}

/** A client with this many times `clientQueueBytes` waiting is cut at once, progress or not. */
export const HARD_CAP_FACTOR = 16;

/** Keyword-filter caches by viewer (token row, interned): its connections share one. */
const FILTER_CACHES = new WeakMap<Viewer, FilterCache>();
/** Filtering viewers by viewer and stream filter (both interned). */
const FILTER_VIEWERS = new WeakMap<Viewer, WeakMap<object, FilterViewer>>();

function filterCache(viewer: Viewer): FilterCache {
  let cache = FILTER_CACHES.get(viewer);
  if (cache === undefined) FILTER_CACHES.set(viewer, cache = new FilterCache());
  return cache;
}

/**
 * The one filtering viewer of every subscription with this viewer and stream
 * filter: connections of one token on one stream share it, so an event is
 * decided once for all of them ({@link EventFacts.decision}).
 */
function filterViewer(viewer: Viewer, filter: { access: FeedAccess }): FilterViewer {
  let byFilter = FILTER_VIEWERS.get(viewer);
  if (byFilter === undefined) FILTER_VIEWERS.set(viewer, byFilter = new WeakMap());
  let shared = byFilter.get(filter);
  if (shared === undefined) {
    const { accountId, chosenLanguages } = viewer;
    shared = { accountId, chosenLanguages, access: filter.access, filters: filterCache(viewer) };
    byFilter.set(filter, shared);
  }
  return shared;
}

/** One stream subscription of one client. */
export class Subscription implements Listener {
  readonly viewer?: FilterViewer;

  constructor(readonly client: Client, readonly stream: ResolvedStream) {
    if (stream.filter) this.viewer = filterViewer(client.viewer, stream.filter);
  }

  deliver(event: StreamEvent, facts?: EventFacts): void {
    if (!event.deliverable) return;
    if (facts === undefined || this.viewer === undefined) {
      this.client.transmit(event, this.stream.label);
      return;
    }
    const outcome = facts.decision(this.viewer);
    if (typeof outcome === "string") {
      this.client.context.metrics.filterDrops.inc({ reason: outcome });
    } else this.client.transmit(outcome, this.stream.label);
  }
}

/** The delivery counters of one connection type, shared by its clients. */
interface Counters {
  readonly sent: Series;
  readonly latency: Series;
  readonly deliveries: Series;
}

/** Counters per context and type: built once, not per connection. */
const COUNTERS = new WeakMap<ClientContext, Record<ClientType, Counters>>();

function countersOf({ metrics }: ClientContext, type: ClientType): Counters {
  return {
    sent: metrics.messagesSent.series({ type }),
    latency: metrics.deliveryLatency.series(),
    deliveries: metrics.deliveries.series(),
  };
}

function sharedCounters(context: ClientContext, type: ClientType): Counters {
  let counters = COUNTERS.get(context);
  if (counters === undefined) {
    counters = {
      websocket: countersOf(context, "websocket"),
      eventsource: countersOf(context, "eventsource"),
    };
    COUNTERS.set(context, counters);
  }
  return counters[type];
}

/** A client's listener on its system channels: a prototype method, no closure. */
class SystemListener implements Listener {
  constructor(readonly client: Client) {}
  deliver(event: StreamEvent): void {
    this.client.onSystemEvent(event);
  }
}

/**
 * A connected, authenticated client. Idle connections are many, so a client
 * keeps few fields: the counters are shared per type, the system channels
 * are derived from the viewer when needed, the subscriptions are a short
 * array, and the filter cache exists only once a filtered stream needs it.
 */
export abstract class Client implements Queued {
  readonly #subscriptions: Subscription[] = [];
  readonly #system: Listener = new SystemListener(this);
  readonly #counters: Counters;
  #closed = false;
  /** Called when `filters_changed` arrives on the account's system channel. */
  onFiltersChanged?: () => void;
  /** Bytes (WebSocket: characters) handed to the transport so far. */
  sentBytes = 0;

  constructor(
    readonly viewer: Viewer,
    readonly type: ClientType,
    readonly context: ClientContext,
  ) {
    this.#counters = sharedCounters(context, type);
    for (const channel of systemChannels(viewer)) context.hub.attach(channel, this.#system, false);
    context.metrics.connectedClients.inc({ type });
    context.metrics.connectedChannels.inc({ type, channel: "system" }, 2);
  }

  /** Whether the connection has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** How many stream subscriptions the connection holds. */
  get subscriptionCount(): number {
    return this.#subscriptions.length;
  }

  /** Whether a subscription with this key exists. */
  isSubscribed(key: string): boolean {
    return this.#subscriptions.some((s) => s.stream.key === key);
  }

  /** Adds a stream subscription (a duplicate key is ignored); returns whether it was added. */
  subscribe(stream: ResolvedStream): boolean {
    if (this.#closed || this.isSubscribed(stream.key)) return false;
    const subscription = new Subscription(this, stream);
    this.#subscriptions.push(subscription);
    for (const channel of stream.channels) this.context.hub.attach(channel, subscription, true);
    this.context.metrics.connectedChannels.inc({
      type: this.type,
      channel: stream.timeline.stream,
    });
    return true;
  }

  /** Removes the subscription with this key, if any. */
  unsubscribe(key: string): void {
    const index = this.#subscriptions.findIndex((s) => s.stream.key === key);
    if (index < 0) return;
    const [subscription] = this.#subscriptions.splice(index, 1);
    for (const channel of subscription.stream.channels) {
      this.context.hub.detach(channel, subscription, true);
    }
    const channel = subscription.stream.timeline.stream;
    this.context.metrics.connectedChannels.dec({ type: this.type, channel });
  }

  /** Sends one event with a stream label; implemented by the transport. */
  abstract transmit(event: StreamEvent, label: string): void;

  /** Ends the connection because of `kill`. */
  protected abstract kill(): void;

  /** Detaches everything from the hub and fixes the gauges (idempotent). */
  dispose(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const { stream } of [...this.#subscriptions]) this.unsubscribe(stream.key);
    for (const channel of systemChannels(this.viewer)) {
      this.context.hub.detach(channel, this.#system, false);
    }
    this.context.metrics.connectedClients.dec({ type: this.type });
    this.context.metrics.connectedChannels.dec({ type: this.type, channel: "system" }, 2);
  }

  /** Counts one transmitted event and its latency since Redis. */
  protected counted(event: StreamEvent): void {
    const counters = this.#counters;
    counters.sent.value++;
    counters.deliveries.value++;
    counters.latency.value += (performance.now() - event.receivedAt) / 1000;
  }

  /** Bytes waiting to reach the socket now. */
  abstract queuedBytes(): number;

  /** Ends a connection too far behind (the queue watch, or the hard cap): counted, then the transport's {@link dropSlow}. */
  cutOff(reason: CutReason): void {
    if (this.#closed) return;
    const { metrics } = this.context;
    metrics.slowClientDisconnects.inc({ type: this.type });
    metrics.slowClientCuts.inc({ reason });
    this.dropSlow();
  }

  /** Ends the connection of a client too far behind (WebSocket: 1013; SSE: the response). */
  protected abstract dropSlow(): void;

  /** Handles `kill` and `filters_changed` from the system channels. */
  onSystemEvent(event: StreamEvent): void {
    if (event.event === "kill") this.kill();
    else if (event.event === "filters_changed") {
      FILTER_CACHES.get(this.viewer)?.invalidate();
      this.onFiltersChanged?.();
    }
  }
}
