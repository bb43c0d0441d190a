/**
 * What the scenario runner (bench/scenarios.ts) watches while a load
 * generator runs: the load generator's phases from its progress lines, the
 * server's RSS from /proc, and the server's Redis subscriber from
 * `CLIENT LIST` (its output buffer, and whether Redis dropped it), and (case g)
 * what a Sluice of several workers says about itself in /metrics and how many
 * PostgreSQL backends it holds.
 *
 * @module
 */
import type { RunRecord } from "./report.ts";

const RSS_SAMPLE_MS = 250;

/** The load generator's phases as it reported them (only when not `--quiet`). */
export class PhaseClock {
  readonly seen: { at: number; phase: string }[] = [];

  /** Reads `[loadgen] PHASE: …` lines as they come. */
  async follow(stream: ReadableStream<Uint8Array>): Promise<string> {
    let pending = "", all = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      all += chunk;
      const lines = (pending + chunk).split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const match = /^\[loadgen\] ([a-z ]+):/.exec(line);
        if (match) this.seen.push({ at: Date.now(), phase: match[1] });
      }
    }
    return all;
  }

  /** Publishing (with the drain) as [start, end] in epoch ms, halfway between progress lines. */
  window(exitedAt: number): [number, number] | undefined {
    const first = this.seen.findIndex((s) => s.phase === "publishing");
    if (first < 0) return undefined;
    const after = this.seen.findIndex((s, i) => i > first && s.phase !== "publishing");
    const last = after < 0 ? this.seen.length - 1 : after - 1;
    const before = this.seen[first - 1]?.at ?? this.seen[first].at - 1000;
    const next = after < 0 ? exitedAt : this.seen[after].at;
    return [(before + this.seen[first].at) / 2, (this.seen[last].at + next) / 2];
  }
}

/** Samples a process's RSS every 250 ms. */
export function sampleRss(pid: number): { samples: [number, number][]; stop(): void } {
  const samples: [number, number][] = [];
  const timer = setInterval(async () => {
    const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (kb) samples.push([Date.now(), Number(kb[1]) * 1024]);
  }, RSS_SAMPLE_MS);
  return { samples, stop: () => clearInterval(timer) };
}

/** Runs `redis-cli` against the Redis on `port`: its output, or undefined if it failed. */
export async function redisCli(port: number, ...command: string[]): Promise<string | undefined> {
  const output = await new Deno.Command("redis-cli", {
    args: ["-p", String(port), ...command],
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  return output?.success ? new TextDecoder().decode(output.stdout).trim() : undefined;
}

/** `id` and `omem` of each pubsub client in a `CLIENT LIST` reply. */
export function parsePubsubClients(list: string): { id: string; outputBytes: number }[] {
  return list.split("\n").flatMap((line) => {
    const id = /(?:^|\s)id=(\d+)/.exec(line)?.[1];
    const omem = /(?:^|\s)omem=(\d+)/.exec(line)?.[1];
    return id === undefined ? [] : [{ id, outputBytes: Number(omem ?? 0) }];
  });
}

/** Samples the pubsub clients of Redis every second while a run goes on. */
export function watchSubscriber(redisPort: number): { stop(): Promise<RunRecord["subscriber"]> } {
  const ids = new Set<string>();
  let maxOutputBytes = 0, samples = 0;
  const sample = async () => {
    const list = await redisCli(redisPort, "client", "list", "type", "pubsub");
    if (list === undefined) return;
    samples++;
    for (const client of parsePubsubClients(list)) {
      ids.add(client.id);
      maxOutputBytes = Math.max(maxOutputBytes, client.outputBytes);
    }
  };
  const timer = setInterval(sample, 1000);
  return {
    async stop() {
      clearInterval(timer);
      await sample();
      return samples === 0 ? null : { maxOutputBytes, connections: ids.size };
    },
  };
}

/** What a multi-worker Sluice said about itself during a run (case g). */
export interface InstanceFigures {
  /** `sluice_workers` (absent from a single worker's /metrics: then 1). */
  workers: number;
  /** `sluice_worker_connected_clients` per worker at the scrape with the most clients. */
  clientsPerWorker: Record<string, number>;
  /** The largest `pg_pool_total_connections` scraped. */
  pgPoolConnections: number | null;
  /** The most backends `pg_stat_activity` showed for the database (ours excluded). */
  pgBackends: number | null;
}

/** Reads a /metrics text: worker count, connected clients (all types; per worker when given), pool size. */
export function parseInstanceMetrics(text: string): {
  workers: number | null;
  connected: number | null;
  perWorker: Record<string, number>;
  pgPool: number | null;
} {
  const found = { workers: null, connected: null, perWorker: {}, pgPool: null } as ReturnType<
    typeof parseInstanceMetrics
  >;
  for (const line of text.split("\n")) {
    const match = /^(\w+)(?:\{([^}]*)\})?\s+(\S+)$/.exec(line.trim());
    if (!match) continue;
    const [, name, labels, raw] = match;
    const value = Number(raw);
    if (name === "sluice_workers") found.workers = value;
    else if (name === "connected_clients") found.connected = (found.connected ?? 0) + value;
    else if (name === "pg_pool_total_connections") found.pgPool = value;
    else if (name === "sluice_worker_connected_clients") {
      const worker = /worker="([^"]*)"/.exec(labels ?? "")?.[1];
      if (worker !== undefined) found.perWorker[worker] = value;
    }
  }
  return found;
}

/**
 * Scrapes Sluice's /metrics on `port` and counts the database's backends
 * (`backends()`) every second while a run goes on.
 */
export function watchInstance(
  port: number,
  backends: () => Promise<number | undefined>,
): { stop(): Promise<InstanceFigures> } {
  const figures: InstanceFigures = {
    workers: 1,
    clientsPerWorker: {},
    pgPoolConnections: null,
    pgBackends: null,
  };
  let most = -1;
  const max = (a: number | null, b: number | null | undefined) =>
    b === null || b === undefined ? a : Math.max(a ?? b, b);
  const sample = async () => {
    const text = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text())
      .catch(() => "");
    const m = parseInstanceMetrics(text);
    if (m.workers !== null) figures.workers = m.workers;
    const clients = Object.values(m.perWorker).reduce((sum, n) => sum + n, 0);
    const total = Object.keys(m.perWorker).length ? clients : m.connected ?? -1;
    if (total > most) {
      most = total;
      figures.clientsPerWorker = Object.keys(m.perWorker).length ? m.perWorker : { "1": total };
    }
    figures.pgPoolConnections = max(figures.pgPoolConnections, m.pgPool);
    figures.pgBackends = max(figures.pgBackends, await backends());
  };
  let pending: Promise<void> = Promise.resolve();
  const timer = setInterval(() => pending = sample(), 1000);
  return {
    async stop() {
      clearInterval(timer);
      await pending;
      return figures;
    },
  };
}
