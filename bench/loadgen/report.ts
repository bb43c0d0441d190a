/**
 * The load report: its JSON shape (every figure present, `null` when not
 * measured), how it is built from what a run collected, and the readable
 * summary printed at the end of a run.
 *
 * @module
 */
import type { LoadOptions } from "./args.ts";
import type { LoadStats, StreamClient, Transport } from "./client.ts";
import { percentileOf } from "./histogram.ts";
import { failureCounts, type SlowOutcome } from "./pool.ts";
import type { RunMeters } from "./proc.ts";
import type { PublishResult } from "./publish.ts";

/** Latency or duration percentiles in ms (null when there were no samples). */
export interface Percentiles {
  p50: number | null;
  p90?: number | null;
  p99: number | null;
  max: number | null;
}

/** Everything a run measured. */
export interface LoadReport {
  startedAt: string;
  target: {
    url: string;
    stream: string;
    channel: string | null;
    transport: string;
    clients: number;
    slow: number;
    idle: boolean;
    rate: number | null;
    payloadBytes: number | null;
  };
  connections: {
    attempted: number;
    established: number;
    failed: number;
    byTransport: Record<Transport, { attempted: number; established: number }>;
    failures: Record<string, number>;
    connectMs: Percentiles;
    establishAllMs: number | null;
  };
  slow: { attempted: number; opened: number; cutByServer: number; stillOpen: number };
  publishing: {
    published: number;
    errors: number;
    seconds: number;
    minReceivers: number | null;
  } | null;
  deliveries: {
    expected: number;
    delivered: number;
    missing: number;
    perSecond: number | null;
    /**
     * Counted per client (absent from reports made before it was): the
     * listening clients that opened but read fewer markers than were
     * published, and the fewest markers any of them read.
     */
    perClient?: { short: number; fewest: number | null };
  };
  latencyMs: Percentiles & { mean: number | null; samples: number };
  disconnects: { total: number; sse: number; ws: number; closeCodes: Record<string, number> };
  /** The measured window: publishing to the end of the drain, or the idle hold. */
  windowSeconds: number;
  server: {
    pid: number;
    rssBaselineBytes: number | null;
    rssIdleBytes: number | null;
    rssPeakBytes: number | null;
    rssEndBytes: number | null;
    rssPerConnectionBytes: number | null;
    cpuSecondsWindow: number | null;
    cpuSecondsTotal: number | null;
  } | null;
  loadgen: {
    cpuSecondsWindow: number | null;
    cpuSecondsTotal: number | null;
    rssPeakBytes: number | null;
  };
}

const MB = 1024 * 1024;

function ms(value: number | null | undefined, digits = 1): string {
  return value === null || value === undefined ? "–" : `${value.toFixed(digits)} ms`;
}

function mb(value: number | null): string {
  return value === null ? "–" : `${(value / MB).toFixed(1)} MB`;
}

function secs(value: number | null): string {
  return value === null ? "–" : `${value.toFixed(2)} s`;
}

function pct(part: number, whole: number): string {
  return whole === 0 ? "–" : `${(100 * part / whole).toFixed(2)}%`;
}

/** The readable summary, one aspect per line. */
export function formatSummary(report: LoadReport): string {
  const { target: t, connections: c, deliveries: d, latencyMs: l } = report;
  const lines = [
    `loadgen ${t.idle ? "idle " : ""}${t.transport} × ${t.clients} (+${t.slow} slow) → ${t.url} ` +
    `stream ${t.stream}${t.channel ? `, channel ${t.channel}` : ""}`,
    `connections  ${c.attempted} attempted, ${c.established} established, ${c.failed} failed` +
    ` (sse ${c.byTransport.sse.established}/${c.byTransport.sse.attempted},` +
    ` ws ${c.byTransport.ws.established}/${c.byTransport.ws.attempted})`,
    `connect      p50 ${ms(c.connectMs.p50)}, p99 ${ms(c.connectMs.p99)}, ` +
    `max ${ms(c.connectMs.max)}; all established in ${ms(c.establishAllMs, 0)}`,
  ];
  for (const [reason, n] of Object.entries(c.failures)) lines.push(`  failed ×${n}: ${reason}`);
  if (report.slow.attempted > 0) {
    const s = report.slow;
    lines.push(
      `slow         ${s.opened}/${s.attempted} opened, ${s.cutByServer} cut by the server, ` +
        `${s.stillOpen} still open`,
    );
  }
  if (report.publishing) {
    const p = report.publishing;
    lines.push(
      `publishing   ${p.published} messages in ${secs(p.seconds)} ` +
        `(${(p.published / p.seconds).toFixed(1)}/s, ${t.payloadBytes}-byte payloads)` +
        `, ${p.errors} errors, min receivers ${p.minReceivers ?? "–"}`,
      `deliveries   ${d.delivered} of ${d.expected} (${pct(d.delivered, d.expected)}), ` +
        `${d.perSecond === null ? "–" : Math.round(d.perSecond)}/s` +
        (d.perClient ? `; ${d.perClient.short} clients short (fewest ${d.perClient.fewest})` : ""),
      `latency      p50 ${ms(l.p50, 2)}, p90 ${ms(l.p90, 2)}, p99 ${ms(l.p99, 2)}, ` +
        `max ${ms(l.max, 2)} (${l.samples} samples)`,
    );
  }
  const x = report.disconnects;
  lines.push(`disconnects  ${x.total} by the server (sse ${x.sse}, ws ${x.ws})`);
  lines.push(...resourceLines(report));
  return lines.join("\n");
}

function resourceLines(report: LoadReport): string[] {
  const lines: string[] = [];
  const window = report.publishing ? "publishing" : "idle hold";
  const s = report.server;
  if (s) {
    const perConn = s.rssPerConnectionBytes === null
      ? ""
      : `, ${(s.rssPerConnectionBytes / 1024).toFixed(1)} KB per connection`;
    lines.push(
      `server       pid ${s.pid}: RSS baseline ${mb(s.rssBaselineBytes)}, idle ${
        mb(s.rssIdleBytes)
      }, peak ${mb(s.rssPeakBytes)}, end ${mb(s.rssEndBytes)}${perConn}`,
      `             CPU ${secs(s.cpuSecondsWindow)} during ${window} ` +
        `(${report.windowSeconds.toFixed(1)} s), ${secs(s.cpuSecondsTotal)} over the run`,
    );
  }
  const g = report.loadgen;
  lines.push(
    `loadgen      CPU ${secs(g.cpuSecondsWindow)} during ${window}, ${
      secs(g.cpuSecondsTotal)
    } over the run; RSS peak ${mb(g.rssPeakBytes)}`,
  );
  return lines;
}

/** Everything a run collected, for the report. */
export interface Collected {
  options: LoadOptions;
  channel: string | undefined;
  startedAt: string;
  stats: LoadStats;
  clients: StreamClient[];
  establishAllMs: number | undefined;
  slow: SlowOutcome;
  publishing: PublishResult | undefined;
  expected: number;
  meters: RunMeters;
  windowSeconds: number;
}

function roundTo(value: number | null | undefined, digits = 3): number | null {
  return value === null || value === undefined || !Number.isFinite(value)
    ? null
    : Number(value.toFixed(digits));
}

/** Turns what a run collected into the report. */
export function buildReport(c: Collected): LoadReport {
  const { options: o, stats, clients, meters } = c;
  const attempted = clients.filter((client) => client.state !== "new");
  const connectMs = clients.flatMap((client) => client.connectMs ?? []);
  const byTransport = {
    sse: { attempted: 0, established: 0 },
    ws: { attempted: 0, established: 0 },
  };
  for (const client of attempted) {
    byTransport[client.spec.transport].attempted++;
    if (client.connectMs !== undefined) byTransport[client.spec.transport].established++;
  }
  const latency = (q: number) => roundTo((stats.latency.percentile(q) ?? NaN) / 1000);
  return {
    startedAt: c.startedAt,
    target: {
      ...{ url: o.url, stream: o.stream, channel: c.channel ?? null, transport: o.transport },
      ...{ clients: o.clients, slow: o.slow, idle: o.idle },
      ...{ rate: o.idle ? null : o.rate, payloadBytes: o.idle ? null : o.payloadBytes },
    },
    connections: {
      attempted: attempted.length,
      established: connectMs.length,
      failed: attempted.length - connectMs.length,
      byTransport,
      failures: failureCounts(clients),
      connectMs: {
        p50: roundTo(percentileOf(connectMs, 0.5)),
        p99: roundTo(percentileOf(connectMs, 0.99)),
        max: roundTo(percentileOf(connectMs, 1)),
      },
      establishAllMs: roundTo(c.establishAllMs),
    },
    slow: c.slow,
    publishing: c.publishing
      ? {
        ...c.publishing,
        seconds: roundTo(c.publishing.seconds) ?? 0,
        minReceivers: c.publishing.minReceivers ?? null,
      }
      : null,
    deliveries: {
      expected: c.expected,
      delivered: stats.delivered,
      missing: Math.max(0, c.expected - stats.delivered),
      perSecond: c.publishing ? roundTo(stats.delivered / c.publishing.seconds, 1) : null,
      perClient: perClient(clients, c.publishing?.published ?? 0),
    },
    latencyMs: {
      p50: latency(0.5),
      p90: latency(0.9),
      p99: latency(0.99),
      max: latency(1),
      mean: roundTo(stats.latency.count ? stats.latency.sum / stats.latency.count / 1000 : NaN),
      samples: stats.latency.count,
    },
    disconnects: {
      total: stats.disconnects.sse + stats.disconnects.ws,
      ...stats.disconnects,
      closeCodes: stats.closeCodes,
    },
    windowSeconds: roundTo(c.windowSeconds) ?? 0,
    server: serverReport(c, connectMs.length + c.slow.opened),
    loadgen: {
      cpuSecondsWindow: roundTo(meters.cpu("self", "idle", "window")),
      cpuSecondsTotal: roundTo(meters.cpu("self", "start", "end")),
      rssPeakBytes: meters.self.peakRssBytes || null,
    },
  };
}

/** Clients that read fewer than `published` markers, among those that were ever open. */
export function perClient(
  clients: readonly Pick<StreamClient, "connectMs" | "delivered">[],
  published: number,
): { short: number; fewest: number | null } {
  let short = 0, fewest: number | null = null;
  for (const client of clients) {
    if (client.connectMs === undefined) continue;
    if (client.delivered < published) short++;
    fewest = fewest === null ? client.delivered : Math.min(fewest, client.delivered);
  }
  return { short, fewest };
}

function serverReport(c: Collected, connections: number): LoadReport["server"] {
  const { meters } = c;
  if (meters.server === undefined) return null;
  const baseline = meters.rss("server", "start");
  const idle = meters.rss("server", "idle");
  const perConnection = baseline !== null && idle !== null && connections > 0
    ? Math.round((idle - baseline) / connections)
    : null;
  return {
    pid: meters.server.pid,
    rssBaselineBytes: baseline,
    rssIdleBytes: idle,
    rssPeakBytes: meters.server.peakRssBytes || null,
    rssEndBytes: meters.rss("server", "window"),
    rssPerConnectionBytes: perConnection,
    cpuSecondsWindow: roundTo(meters.cpu("server", "idle", "window")),
    cpuSecondsTotal: roundTo(meters.cpu("server", "start", "end")),
  };
}
