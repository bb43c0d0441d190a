/**
 * Markdown building blocks of bench/RESULTS.md (bench/scenarios/render.ts):
 * how a figure reads in a cell (a dash when it was not measured), tables,
 * the block of load generator command lines under each case, and finding
 * the Sluice and ceiling runs that share a row. Pure: no I/O, no clock.
 *
 * @module
 */
import type { RunRecord, ServerKind } from "./report.ts";

/** What a cell shows for a figure that was not measured. */
export const DASH = "–";

/** A whole number with thousands separators. */
export function int(n: number | null | undefined): string {
  return n === null || n === undefined ? DASH : Math.round(n).toLocaleString("en-US");
}

/** Bytes as KB with one decimal. */
export function kb(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? DASH : `${(bytes / 1024).toFixed(1)} KB`;
}

/** Bytes as MB with one decimal. */
export function mb(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? DASH : `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

/** Milliseconds, with one decimal below 100 ms. */
export function msText(value: number | null | undefined): string {
  if (value === null || value === undefined) return DASH;
  return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`;
}

/** A fraction as a whole percentage. */
export function pct(fraction: number | null | undefined): string {
  return fraction === null || fraction === undefined ? DASH : `${(100 * fraction).toFixed(0)} %`;
}

/** A ratio with two decimals. */
export function ratioText(value: number | null): string {
  return value === null ? DASH : value.toFixed(2);
}

/** "Sluice / ceiling" figures in one cell. */
export function pair<T>(s: T | undefined, c: T | undefined, f: (x: T) => string): string {
  return `${s === undefined ? DASH : f(s)} / ${c === undefined ? DASH : f(c)}`;
}

/** A Markdown table; `columns` is the header row with `|` between the names. */
export function table(columns: string, rows: string[][]): string[] {
  const head = columns.split("|");
  return [
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
    "",
  ];
}

/** The load generator command line of each run of a case, with its port, pid and error. */
export function commandBlock(runs: readonly RunRecord[]): string[] {
  if (runs.length === 0) return [];
  return [
    "Load generator command of each run (`--json RUN.json`, and `--quiet` outside case f, were " +
    "added to each):",
    "",
    "```",
    ...runs.map((run) => {
      const where = run.port === null ? "" : ` port ${run.port} pid ${run.serverPid}`;
      return `${run.id} ${run.server}${where}: ${run.command}${
        run.error ? `  # ${run.error}` : ""
      }`;
    }),
    "```",
    "",
  ];
}

/** Finds the run of a server with the given transport, variant and client count. */
export function find(runs: readonly RunRecord[], server: ServerKind, where: Partial<RunRecord>) {
  return runs.find((run) =>
    run.server === server &&
    Object.entries(where).every(([key, value]) => run[key as keyof RunRecord] === value)
  );
}

/** The distinct values, in order of first appearance. */
export function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}
