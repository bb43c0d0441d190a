/**
 * The figures of bench/idle_memory.ts: marginal bytes per idle connection
 * between the first and the last step, and the table that puts Sluice, the
 * ceiling and their difference (Sluice's own share) side by side. Pure.
 *
 * @module
 */

/** The transports measured. */
export type IdleTransport = "sse" | "ws";

/** `Deno.memoryUsage()` of the server after a full collection, and V8's new space size. */
export type MemorySample = Deno.MemoryUsage & { newSpace: number };

/** One fresh server process, sampled at each step. */
export interface ServerRun {
  server: "sluice" | "ceiling";
  transport: IdleTransport;
  samples: { connections: number; memory: MemorySample }[];
}

/** Bytes per connection, first step to last. */
export interface PerConnection {
  heapUsed: number;
  heapTotal: number;
  /** heapTotal without the young generation (a bounded cost V8 grows with allocation). */
  oldTotal: number;
  external: number;
  rss: number;
}

/** Marginal bytes per connection between the first and the last sample. */
export function perConnection(run: ServerRun): PerConnection | undefined {
  const first = run.samples[0];
  const last = run.samples.at(-1);
  if (first === undefined || last === undefined || last.connections === first.connections) {
    return undefined;
  }
  const n = last.connections - first.connections;
  const per = (key: keyof MemorySample) => (last.memory[key] - first.memory[key]) / n;
  return {
    heapUsed: per("heapUsed"),
    heapTotal: per("heapTotal"),
    oldTotal: per("heapTotal") - per("newSpace"),
    external: per("external"),
    rss: per("rss"),
  };
}

function kb(bytes: number | undefined): string {
  return bytes === undefined ? "–" : `${(bytes / 1024).toFixed(2)} KB`;
}

/** A Markdown table: per transport, Sluice, the ceiling and Sluice − ceiling. */
export function renderTable(runs: readonly ServerRun[]): string[] {
  const lines = [
    "| transport | connections | measure | Sluice per conn | ceiling per conn | Sluice − ceiling |",
    "|---|---|---|---|---|---|",
  ];
  for (const transport of ["sse", "ws"] as const) {
    const s = runs.find((r) => r.server === "sluice" && r.transport === transport);
    const c = runs.find((r) => r.server === "ceiling" && r.transport === transport);
    if (s === undefined || c === undefined) continue;
    const [ps, pc] = [perConnection(s), perConnection(c)];
    const span = s.samples.map((x) => x.connections).join(" → ");
    for (const key of ["heapUsed", "heapTotal", "oldTotal", "external", "rss"] as const) {
      const diff = ps && pc ? ps[key] - pc[key] : undefined;
      lines.push(
        `| ${transport} | ${span} | ${key} | ${kb(ps?.[key])} | ${kb(pc?.[key])} | ${kb(diff)} |`,
      );
    }
  }
  return lines;
}

/** Per server and pair of consecutive steps: bytes per added connection, young generation apart. */
export function renderSteps(runs: readonly ServerRun[]): string[] {
  const lines = [
    "| server | transport | step | heapUsed | new space | rss |",
    "|---|---|---|---|---|---|",
  ];
  for (const run of runs) {
    for (let i = 1; i < run.samples.length; i++) {
      const [a, b] = [run.samples[i - 1], run.samples[i]];
      const per = (key: keyof MemorySample) =>
        kb((b.memory[key] - a.memory[key]) / (b.connections - a.connections));
      const step = `${a.connections} → ${b.connections}`;
      lines.push(
        `| ${run.server} | ${run.transport} | ${step} | ${per("heapUsed")} | ` +
          `${per("newSpace")} | ${per("rss")} |`,
      );
    }
  }
  return lines;
}
