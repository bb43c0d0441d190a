/**
 * Counters and gauges with Mastodon's metric names and labels, the extra
 * `sluice_` ones, and their Prometheus text exposition. Modules receive the
 * {@link Metrics} object and bump numbers; nothing here does I/O (the
 * process series come from `process_metrics.ts` at exposition time).
 *
 * @module
 */

import type { Logger } from "./log.ts";
import { ProcessMetrics } from "./process_metrics.ts";
import { METRICS_CHANNEL_LABELS } from "./timeline.ts";

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/[\\"\n]/g, escape)}"`);
  return parts.length ? `{${parts.join(",")}}` : "";
}

function escape(c: string): string {
  return c === "\n" ? "\\n" : `\\${c}`;
}

/** One labelled series; hot paths keep a reference and bump `value`. */
export interface Series {
  value: number;
}

/** A labelled counter or gauge. */
export class Metric {
  readonly #series = new Map<string, Series>();
  constructor(
    readonly name: string,
    readonly type: "counter" | "gauge",
    readonly help: string,
    prime: Labels[] = [{}],
  ) {
    for (const labels of prime) this.series(labels);
  }

  /** The series with these labels, created at 0 on first use. */
  series(labels: Labels = {}): Series {
    const key = labelKey(labels);
    let series = this.#series.get(key);
    if (series === undefined) {
      series = { value: 0 };
      this.#series.set(key, series);
    }
    return series;
  }

  /** Adds `by` (default 1) to the series with these labels. */
  inc(labels: Labels = {}, by = 1): void {
    this.series(labels).value += by;
  }

  /** Subtracts `by` (default 1). */
  dec(labels: Labels = {}, by = 1): void {
    this.series(labels).value -= by;
  }

  /** Sets the series with these labels. */
  set(value: number, labels: Labels = {}): void {
    this.series(labels).value = value;
  }

  /** The current value of one series (0 when never touched). */
  get(labels: Labels = {}): number {
    return this.#series.get(labelKey(labels))?.value ?? 0;
  }

  /** Prometheus text for this metric. */
  render(): string {
    return renderValues(this.values());
  }

  /** Its series as plain data, to be summed with other workers'. */
  values(): MetricValues {
    const series = [...this.#series].map(([key, { value }]): [string, number] => [key, value]);
    return { name: this.name, type: this.type, help: this.help, series };
  }
}

/** One metric's series as plain data (what a worker sends for a scrape). */
export interface MetricValues {
  name: string;
  type: "counter" | "gauge";
  help: string;
  /** [label key as rendered (`{type="websocket"}` or ""), value] */
  series: [string, number][];
}

/** One worker's numbers for a scrape. */
export interface WorkerSnapshot {
  /** The worker's number, from 1. */
  worker: number;
  metrics: MetricValues[];
  /** Its JavaScript heap (`Deno.memoryUsage().heapTotal`). */
  heapBytes: number;
}

/** Prometheus text of one metric. */
function renderValues(metric: MetricValues): string {
  let out = `# HELP ${metric.name} ${metric.help}\n# TYPE ${metric.name} ${metric.type}\n`;
  for (const [key, value] of metric.series) out += `${metric.name}${key} ${value}\n`;
  return out;
}

/** Every worker's metrics summed series by series, in the order first seen. */
export function sumWorkers(snapshots: readonly WorkerSnapshot[]): MetricValues[] {
  const total = new Map<string, MetricValues & { sums: Map<string, number> }>();
  for (const { metrics } of snapshots) {
    for (const metric of metrics) {
      let sum = total.get(metric.name);
      if (sum === undefined) {
        sum = { ...metric, series: [], sums: new Map() };
        total.set(metric.name, sum);
      }
      for (const [key, value] of metric.series) {
        sum.sums.set(key, (sum.sums.get(key) ?? 0) + value);
      }
    }
  }
  return [...total.values()].map(({ sums, ...metric }) => ({ ...metric, series: [...sums] }));
}

const CHANNELS = METRICS_CHANNEL_LABELS;
const TYPES = ["websocket", "eventsource"];

/** HELP text of each metric, by name. */
const HELP: Readonly<Record<string, string>> = {
  connected_clients: "The number of clients connected to the streaming server",
  connected_channels: "The number of channels the streaming server is streaming to",
  redis_subscriptions: "The number of Redis channels the streaming server is subscribed to",
  redis_messages_received_total:
    "The total number of messages the streaming server has received from redis subscriptions",
  messages_sent_total:
    "The total number of messages the streaming server sent to clients per connection type",
  pg_pool_total_connections: "The total number of clients existing within the pool",
  pg_pool_idle_connections:
    "The number of clients which are not checked out but are currently idle in the pool",
  pg_pool_waiting_queries:
    "The number of queued requests waiting on a client when all clients are checked out",
  sluice_redis_messages_malformed_total: "Redis messages that were not Mastodon events, by reason",
  sluice_redis_messages_unlistened_total:
    "Redis messages for channels no client listened to any more (they raced an UNSUBSCRIBE)",
  sluice_redis_message_handler_failures_total:
    "Redis messages whose hand-off to the hub threw (logged); the next message is handled as usual",
  sluice_redis_messages_without_payload_total:
    "Redis messages on stream channels that were not delivered because they have no payload",
  sluice_slow_client_disconnects_total: "Clients disconnected because they fell too far behind",
  sluice_slow_client_cuts_total:
    "Clients cut by reason: stalled (no byte reached the socket for 10 s), behind (over SLUICE_CLIENT_QUEUE_BYTES and not draining), budget (SLUICE_QUEUE_BUDGET_BYTES), cap (16x SLUICE_CLIENT_QUEUE_BYTES)",
  sluice_redis_connected: "Redis subscriber connections that are up (one per worker)",
  sluice_redis_reconnects_total: "Times a Redis subscriber connection was re-established",
  sluice_db_round_trips_total: "PostgreSQL queries made, by purpose",
  sluice_filter_db_round_trips_total:
    "Relationship queries made for per-viewer filtering (one per filtered event at most)",
  sluice_filter_cache_loads_total: "Queries that loaded keyword filters into connection caches",
  sluice_filter_dropped_total: "Events not delivered to a viewer by filtering, by reason",
  sluice_websocket_aborted_total:
    "WebSockets closed at the TCP level after their close handshake stalled",
  sluice_backlog_dropped_total: "Deliveries dropped because a channel's filtering backlog was full",
  sluice_delivery_latency_seconds_sum:
    "Sum of seconds from Redis message arrival to hand-off to the client socket",
  sluice_delivery_latency_seconds_count:
    "Deliveries counted in sluice_delivery_latency_seconds_sum",
  sluice_limit_refusals_total:
    "Requests, subscriptions and messages refused by a SLUICE_MAX_* limit, by limit",
  sluice_accept_errors_total:
    "Times a listener failed (e.g. too many open files) and was opened again; open streams went on",
  sluice_workers: "Worker threads serving clients and answering (SLUICE_WORKERS)",
  sluice_worker_restarts_total: "Worker threads that died and were started again",
  sluice_worker_connected_clients: "Clients connected to each worker thread",
};

/** A counter with its HELP text from {@link HELP}, its series primed at 0. */
function counter(name: string, prime?: Labels[]): Metric {
  return new Metric(name, "counter", HELP[name], prime);
}

/** A gauge with its HELP text from {@link HELP}, its series primed at 0. */
function gauge(name: string, prime?: Labels[]): Metric {
  return new Metric(name, "gauge", HELP[name], prime);
}

/** The series only an instance of several workers has, rendered by {@link Metrics.renderInstance}. */
export const WORKER_METRICS: readonly string[] = [
  "sluice_workers",
  "sluice_worker_restarts_total",
  "sluice_worker_connected_clients",
];

/** One series per value of one label. */
function each(label: string, values: readonly string[]): Labels[] {
  return values.map((value) => ({ [label]: value }));
}

const BY_TYPE = each("type", TYPES);
const BY_TYPE_AND_CHANNEL = TYPES.flatMap((type) => CHANNELS.map((channel) => ({ type, channel })));
const MALFORMED = each("reason", ["invalid_json", "not_an_object", "bad_event_name"]);
const CUTS = each("reason", ["stalled", "behind", "budget", "cap"]);
/** The `limit` label of sluice_limit_refusals_total: one per SLUICE_MAX_* variable. */
export const LIMITS = [
  "subscriptions_per_websocket",
  "websocket_message_bytes",
  "connections_per_ip",
];
const PURPOSES = each("purpose", ["token", "list", "feed_access"]);
const DROPS = each("reason", [
  "feed_access",
  "language",
  "relationship",
  "database_error",
  "invalid_status",
]);

/** Every metric Sluice exposes. */
export class Metrics {
  readonly connectedClients = gauge("connected_clients", BY_TYPE);
  readonly connectedChannels = gauge("connected_channels", BY_TYPE_AND_CHANNEL);
  readonly redisSubscriptions = gauge("redis_subscriptions");
  readonly redisMessagesReceived = counter("redis_messages_received_total");
  readonly messagesSent = counter("messages_sent_total", BY_TYPE);
  readonly pgTotal = gauge("pg_pool_total_connections");
  readonly pgIdle = gauge("pg_pool_idle_connections");
  readonly pgWaiting = gauge("pg_pool_waiting_queries");
  readonly malformedMessages = counter("sluice_redis_messages_malformed_total", MALFORMED);
  readonly unlistenedMessages = counter("sluice_redis_messages_unlistened_total");
  readonly messageHandlerFailures = counter("sluice_redis_message_handler_failures_total");
  readonly undeliverableMessages = counter("sluice_redis_messages_without_payload_total");
  readonly slowClientDisconnects = counter("sluice_slow_client_disconnects_total", BY_TYPE);
  readonly slowClientCuts = counter("sluice_slow_client_cuts_total", CUTS);
  readonly redisConnected = gauge("sluice_redis_connected");
  readonly redisReconnects = counter("sluice_redis_reconnects_total");
  readonly dbRoundTrips = counter("sluice_db_round_trips_total", PURPOSES);
  readonly filterRoundTrips = counter("sluice_filter_db_round_trips_total");
  readonly filterCacheLoads = counter("sluice_filter_cache_loads_total");
  readonly filterDrops = counter("sluice_filter_dropped_total", DROPS);
  readonly websocketAborts = counter("sluice_websocket_aborted_total");
  readonly backlogDrops = counter("sluice_backlog_dropped_total");
  readonly acceptErrors = counter("sluice_accept_errors_total");
  readonly limitRefusals = counter("sluice_limit_refusals_total", each("limit", LIMITS));
  readonly deliveryLatency = counter("sluice_delivery_latency_seconds_sum");
  readonly deliveries = counter("sluice_delivery_latency_seconds_count");
  readonly #process: ProcessMetrics;
  /** Called before each exposition to refresh gauges read from elsewhere. */
  beforeRender?: () => void;

  /** `log` gets the one warning if descriptors cannot be counted; `process` replaces the process series. */
  constructor(options: { log?: Logger; process?: ProcessMetrics } = {}) {
    this.#process = options.process ?? new ProcessMetrics({ log: options.log });
  }

  /** This worker's numbers, for {@link renderInstance}. */
  snapshot(worker = 1): WorkerSnapshot {
    this.beforeRender?.();
    const own = Object.values(this).filter((m): m is Metric => m instanceof Metric);
    return { worker, metrics: own.map((m) => m.values()), heapBytes: Deno.memoryUsage().heapTotal };
  }

  /** The Prometheus text exposition of a one-worker instance: its metrics plus process statistics. */
  render(): Promise<string> {
    return this.renderInstance([this.snapshot()], { restarts: 0 });
  }

  /**
   * The exposition of a whole instance from every running worker's
   * snapshot: each series summed over the workers, the worker series
   * (count, restarts, clients per worker) and the process series once, the
   * heap summed over the workers' JavaScript heaps.
   */
  async renderInstance(
    snapshots: readonly WorkerSnapshot[],
    supervisor: { restarts: number },
  ): Promise<string> {
    const [workersName, restartsName, clientsName] = WORKER_METRICS;
    const workers = gauge(workersName);
    workers.set(snapshots.length);
    const restarts = counter(restartsName);
    restarts.set(supervisor.restarts);
    const clients = gauge(clientsName, []);
    for (const { worker, metrics } of snapshots) {
      const connected = metrics.find((m) => m.name === this.connectedClients.name);
      const sum = connected?.series.reduce((total, [, value]) => total + value, 0) ?? 0;
      clients.set(sum, { worker: String(worker) });
    }
    const summed = [
      ...sumWorkers(snapshots),
      ...[workers, restarts, clients].map((m) => m.values()),
    ];
    const heapBytes = snapshots.reduce((total, s) => total + s.heapBytes, 0);
    return summed.map(renderValues).join("") + await this.#process.render({ heapBytes });
  }
}
