/**
 * What a standard scenario case is (bench/scenarios.ts): the letter `--only`
 * names, the runs it makes, its section of bench/RESULTS.md and its rows of
 * the targets table. Each case lives in one file (`a_idle.ts` …) and is
 * listed once in bench/scenarios/cases.ts. Types only.
 *
 * @module
 */
import type { Context } from "./measure.ts";
import type { CaseId, RunRecord, ScenarioResults } from "./report.ts";

/** One row of the targets table. */
export interface TargetRow {
  target: string;
  figure: string;
  verdict: string;
}

/**
 * Figures a case takes from another case's runs; `--merge` says so when the
 * two come from different invocations (bench/scenarios/merge.ts).
 */
export interface CaseUse {
  caseId: CaseId;
  /**
   * Fixed while the case runs, from the other case's runs of the same
   * invocation (the plan's default without them): "its publishing rate (…)".
   */
  whenRun?: string;
  /** Computed when RESULTS.md is rendered, from the runs shown beside it. */
  whenRendered?: string;
}

/** One standard case: its runner, its RESULTS.md section and its targets, together. */
export interface ScenarioCase {
  /** The letter of `--only` and of the run ids ("b3"). */
  readonly id: string;
  /** A few words for `--help`. */
  readonly summary: string;
  /** Makes the case's runs; each lands in `ctx.runs`. */
  run(ctx: Context): Promise<void>;
  /** The section from the case's own runs; `all` and `results` for figures of other cases. */
  section(runs: RunRecord[], all: readonly RunRecord[], results: ScenarioResults): string[];
  /** Figures taken from other cases' runs (c and f take b's). */
  readonly uses?: readonly CaseUse[];
  /** The case's rows of the targets table, from every run (none when its runs are missing). */
  targets(runs: readonly RunRecord[]): TargetRow[];
}
