/**
 * The registry of the standard scenario cases (bench/scenarios.ts), in the
 * order they run and appear in bench/RESULTS.md. A new case is one file
 * holding its runner, its section and its targets, plus one line here.
 *
 * @module
 */
import { idleMemory } from "./a_idle.ts";
import { unfilteredFanout } from "./b_unfiltered.ts";
import { filteredFanout } from "./c_filtered.ts";
import type { ScenarioCase, TargetRow } from "./case.ts";
import { latency } from "./d_latency.ts";
import { connectionStorm } from "./e_storm.ts";
import type { CaseId, RunRecord } from "./report.ts";
import { slowClients } from "./f_slow.ts";
import { workerThreads } from "./g_workers.ts";

/** Every case, in order: later cases may read earlier ones' runs (c and f read b's). */
export const CASES: readonly ScenarioCase[] = Object.freeze([
  idleMemory,
  unfilteredFanout,
  filteredFanout,
  latency,
  connectionStorm,
  slowClients,
  workerThreads,
]);

/** The case with this letter, or undefined. */
export function caseById(id: string): ScenarioCase | undefined {
  return CASES.find((c) => c.id === id);
}

/** The targets of every case, checked against the figures that were measured. */
export function targetRows(runs: readonly RunRecord[]): (TargetRow & { caseId: CaseId })[] {
  return CASES.flatMap((c) => c.targets(runs).map((row) => ({ ...row, caseId: c.id })));
}
