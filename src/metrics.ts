/**
 * Counters and gauges with Mastodon's metric names and labels, the extra
 * `sluice_` ones, and their Prometheus text exposition. Modules receive the
 * {@link Metrics} object and bump numbers; nothing here does I/O except
 * reading process statistics at exposition time.
 *
 * @module
 */

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
    let out = `# HELP ${this.name} ${this.help}\n# TYPE ${this.name} ${this.type}\n`;
    for (const [key, series] of this.#series) out += `${this.name}${key} ${series.value}\n`;
    return out;
  }
}

const CHANNELS = METRICS_CHANNEL_LABELS;
const TYPES = ["websocket", "eventsource"];

/** Every metric Sluice exposes. */
export class Metrics {
  readonly connectedClients = new Metric(
    "connected_clients",
    "gauge",
    "The number of clients connected to the streaming server",
    TYPES.map((type) => ({ type })),
  );
  readonly connectedChannels = new Metric(
    "connected_channels",
    "gauge",
    "The number of channels the streaming server is streaming to",
    TYPES.flatMap((type) => CHANNELS.map((channel) => ({ type, channel }))),
  );
  readonly redisSubscriptions = new Metric(
    "redis_subscriptions",
    "gauge",
    "The number of Redis channels the streaming server is subscribed to",
  );
  readonly redisMessagesReceived = new Metric(
    "redis_messages_received_total",
    "counter",
    "The total number of messages the streaming server has received from redis subscriptions",
  );
  readonly messagesSent = new Metric(
    "messages_sent_total",
    "counter",
    "The total number of messages the streaming server sent to clients per connection type",
    TYPES.map((type) => ({ type })),
  );
  readonly pgTotal = new Metric(
    "pg_pool_total_connections",
    "gauge",
    "The total number of clients existing within the pool",
  );
  readonly pgIdle = new Metric(
    "pg_pool_idle_connections",
    "gauge",
    "The number of clients which are not checked out but are currently idle in the pool",
  );
  readonly pgWaiting = new Metric(
    "pg_pool_waiting_queries",
    "gauge",
    "The number of queued requests waiting on a client when all clients are checked out",
  );
  readonly malformedMessages = new Metric(
    "sluice_redis_messages_malformed_total",
    "counter",
    "Redis messages that were not Mastodon events, by reason",
    [{ reason: "invalid_json" }, { reason: "not_an_object" }, { reason: "bad_event_name" }],
  );
  readonly unlistenedMessages = new Metric(
    "sluice_redis_messages_unlistened_total",
    "counter",
    "Redis messages for channels no client listened to any more (they raced an UNSUBSCRIBE)",
  );
  readonly messageHandlerFailures = new Metric(
    "sluice_redis_message_handler_failures_total",
    "counter",
    "Redis messages whose hand-off to the hub threw (logged); the next message is handled as usual",
  );
  readonly undeliverableMessages = new Metric(
    "sluice_redis_messages_without_payload_total",
    "counter",
    "Redis messages on stream channels that were not delivered because they have no payload",
  );
  readonly slowClientDisconnects = new Metric(
    "sluice_slow_client_disconnects_total",
    "counter",
    "Clients disconnected because their send queue overflowed",
    TYPES.map((type) => ({ type })),
  );
  readonly redisConnected = new Metric(
    "sluice_redis_connected",
    "gauge",
    "1 while the Redis subscriber connection is up",
  );
  readonly redisReconnects = new Metric(
    "sluice_redis_reconnects_total",
    "counter",
    "Times the Redis subscriber connection was re-established",
  );
  readonly dbRoundTrips = new Metric(
    "sluice_db_round_trips_total",
    "counter",
    "PostgreSQL queries made, by purpose",
    [{ purpose: "token" }, { purpose: "list" }, { purpose: "feed_access" }],
  );
  readonly filterRoundTrips = new Metric(
    "sluice_filter_db_round_trips_total",
    "counter",
    "Relationship queries made for per-viewer filtering (one per filtered event at most)",
  );
  readonly filterCacheLoads = new Metric(
    "sluice_filter_cache_loads_total",
    "counter",
    "Queries that loaded keyword filters into connection caches",
  );
  readonly filterDrops = new Metric(
    "sluice_filter_dropped_total",
    "counter",
    "Events not delivered to a viewer by filtering, by reason",
    ["feed_access", "language", "relationship", "database_error", "invalid_status"].map((
      reason,
    ) => ({
      reason,
    })),
  );
  readonly websocketAborts = new Metric(
    "sluice_websocket_aborted_total",
    "counter",
    "WebSockets closed at the TCP level after their close handshake stalled",
  );
  readonly backlogDrops = new Metric(
    "sluice_backlog_dropped_total",
    "counter",
    "Deliveries dropped because a channel's filtering backlog was full",
  );
  readonly deliveryLatency = new Metric(
    "sluice_delivery_latency_seconds_sum",
    "counter",
    "Sum of seconds from Redis message arrival to hand-off to the client socket",
  );
  readonly deliveries = new Metric(
    "sluice_delivery_latency_seconds_count",
    "counter",
    "Deliveries counted in sluice_delivery_latency_seconds_sum",
  );
  readonly #startTime = Date.now() / 1000;
  /** Called before each exposition to refresh gauges read from elsewhere. */
  beforeRender?: () => void;

  /** The Prometheus text exposition of every metric plus process statistics. */
  render(): string {
    this.beforeRender?.();
    const own = Object.values(this).filter((m): m is Metric => m instanceof Metric);
    return own.map((m) => m.render()).join("") + this.#processMetrics();
  }

  #processMetrics(): string {
    const mem = Deno.memoryUsage();
    const lines = [
      [
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        cpuSeconds(),
      ],
      ["process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", mem.rss],
      ["process_heap_bytes", "gauge", "Process heap size in bytes.", mem.heapTotal],
      ["process_open_fds", "gauge", "Number of open file descriptors.", openFds()],
      [
        "process_start_time_seconds",
        "gauge",
        "Start time of the process since unix epoch in seconds.",
        this.#startTime,
      ],
    ] as const;
    return lines.map(([name, type, help, value]) =>
      `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${value}\n`
    ).join("");
  }
}

/** User + system CPU seconds of this process (Linux /proc), NaN elsewhere. */
function cpuSeconds(): number {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
  } catch {
    return NaN;
  }
}

/** Open file descriptors of this process (Linux /proc), NaN elsewhere. */
function openFds(): number {
  try {
    let count = 0;
    for (const _ of Deno.readDirSync("/proc/self/fd")) count++;
    return count;
  } catch {
    return NaN;
  }
}
