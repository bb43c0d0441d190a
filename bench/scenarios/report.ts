/**
 * The record of a scenario run (bench/scenarios.ts): what one load generator
 * run recorded, the machine, and everything written to bench/RESULTS.md and
 * the `--json` output (and, after `--merge`, which invocation each case's
 * runs come from), plus how command lines are recorded as shell text.
 * Verdicts live in bench/scenarios/analysis.ts, the Markdown in
 * bench/scenarios/render.ts. Pure: no I/O, no clock.
 *
 * @module
 */
import type { LoadReport } from "../loadgen/report.ts";
import type { InstanceFigures } from "./samplers.ts";
import type { ThreadWindow } from "./threads.ts";

/** The two servers under test. */
export type ServerKind = "sluice" | "ceiling";
/** The letter of a standard case (bench/scenarios/cases.ts): "a" to "g". */
export type CaseId = string;

/** One load generator run against a fresh server process. */
export interface RunRecord {
  /** Case letter and sequence number, e.g. "b3". */
  id: string;
  caseId: CaseId;
  server: ServerKind;
  transport: "sse" | "ws" | "mix";
  /** What sets the run apart within its case ("same token", "slow clients", …); "" if nothing. */
  variant: string;
  clients: number;
  /** Messages per second asked of the publisher; null for idle runs. */
  rate: number | null;
  port: number | null;
  serverPid: number | null;
  /** The load generator's command line, exactly as run. */
  command: string;
  report: LoadReport | null;
  /** Why the run produced no report. */
  error?: string;
  /** Deliveries expected given the viewers' filters (case c); otherwise the loadgen's figure applies. */
  expected?: number;
  /**
   * The server's Redis subscriber, sampled every second: the largest output
   * buffer Redis held for it, and how many subscriber connections were seen
   * (more than one: Redis dropped it, e.g. at the pubsub output-buffer limit).
   */
  subscriber: { maxOutputBytes: number; connections: number } | null;
  /** Server RSS sampled during publishing (case f): max of the first and of the second half. */
  rssHalves?: { first: number; second: number } | null;
  /** CPU time of each server thread over publishing and the drain (case g). */
  threads?: ThreadWindow | null;
  /** Workers, clients per worker and PostgreSQL connections of the server (case g). */
  instance?: InstanceFigures | null;
}

/** The machine the figures come from. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  deno: string;
  date: string;
  commit: string;
  loadAverage: string;
}

/** Everything a scenario run produced; also the `--json` output. */
export interface ScenarioResults {
  quick: boolean;
  cases: CaseId[];
  startedAt: string;
  elapsedSeconds: number;
  machine: MachineInfo;
  /** taskset was found: servers on core 0, load generator and services on core 1. */
  pinned: boolean;
  /** The scenario script's own command line. */
  invocation: string;
  /** Command templates: Sluice, the ceiling, the load generator, Redis and PostgreSQL. */
  commands: Record<"sluice" | "ceiling" | "loadgen" | "services", string>;
  /** Redis `client-output-buffer-limit` as configured. */
  redisOutputBufferLimit: string;
  /** Viewers seeded for cases c and e, and a count per kind of viewer. */
  seed: { viewers: number; kinds: { kind: string; count: number; delivered: boolean }[] };
  notes: string[];
  runs: RunRecord[];
  /**
   * Set by `--merge` (bench/scenarios/merge.ts): the invocations the runs come
   * from, this one first. The fields above are then this invocation's, except
   * `cases`, `runs` and `notes` (what the merge found), `quick` (any run
   * quick) and `pinned` (every run pinned).
   */
  origins?: RunOrigin[];
}

/** One invocation of the scenario script whose runs merged results hold. */
export type RunOrigin = Omit<ScenarioResults, "runs" | "origins" | "seed"> & {
  /** The cases of that invocation whose runs are still held (`cases`: all it ran). */
  kept: CaseId[];
};

/** Quotes one argument for a POSIX shell when it needs it. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A command line from its words. */
export function shellJoin(words: readonly string[]): string {
  return words.map(shellQuote).join(" ");
}
