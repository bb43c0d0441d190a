/**
 * `--merge` (bench/scenarios.ts): the cases just run replace their records in
 * the earlier `--json` results, the other cases' records are kept, and the
 * merged results say which invocation each case comes from, whether the
 * machines differ, and which figures one case took from another case of a
 * different invocation. Reading the file is the caller's; this module checks
 * its shape. Pure: no I/O, no clock.
 *
 * @module
 */
import { CASES } from "./cases.ts";
import type { CaseId, MachineInfo, RunOrigin, ScenarioResults } from "./report.ts";

const ORDER: readonly CaseId[] = CASES.map((c) => c.id);

/** The earlier results from the text of a `--json` file; throws a one-line TypeError if it is not one. */
export function parseEarlier(text: string, path: string): ScenarioResults {
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new TypeError(`--merge: ${path} is not JSON (${(error as Error).message})`);
  }
  const bad = (what: string) =>
    new TypeError(`--merge: ${path} is not the --json output of a scenario run (${what})`);
  if (typeof value !== "object" || value === null) throw bad("not an object");
  if (!Array.isArray(value.runs)) throw bad("no runs");
  if (!Array.isArray(value.cases)) throw bad("no cases");
  const m = value.machine;
  if (typeof m?.cpuModel !== "string" || typeof m?.cores !== "number") throw bad("no machine");
  const unknown = [...value.cases, ...value.runs.map((r: { caseId?: unknown }) => r?.caseId)]
    .filter((id) => !ORDER.includes(id));
  if (unknown.length) throw bad(`unknown case ${JSON.stringify(unknown[0])}`);
  return value as ScenarioResults;
}

/** The invocations behind results, newest first: its origins, or itself as the one. */
export function originsOf(r: ScenarioResults): RunOrigin[] {
  if (r.origins) return r.origins;
  const { quick, cases, startedAt, elapsedSeconds, machine, pinned, invocation } = r;
  const { commands, redisOutputBufferLimit, notes } = r;
  return [{
    ...{ quick, cases, startedAt, elapsedSeconds, machine, pinned, invocation },
    ...{ commands, redisOutputBufferLimit, notes, kept: [...cases] },
  }];
}

/** The earlier invocations that still hold a case once `ran` are replaced. */
export function keptOrigins(earlier: ScenarioResults, ran: readonly CaseId[]): RunOrigin[] {
  return originsOf(earlier)
    .map((o) => ({ ...o, kept: o.kept.filter((id) => !ran.includes(id)) }))
    .filter((o) => o.kept.length > 0);
}

/** The earlier results with the cases of `current` replaced by its runs (none ran: `earlier`). */
export function mergeResults(earlier: ScenarioResults, current: ScenarioResults): ScenarioResults {
  if (current.cases.length === 0) return earlier;
  const kept = keptOrigins(earlier, current.cases);
  if (kept.length === 0) return current;
  const origins = [...originsOf(current), ...kept];
  const keptCases = kept.flatMap((o) => o.kept);
  const rank = (id: CaseId) => ORDER.indexOf(id);
  const runs = [...earlier.runs.filter((run) => keptCases.includes(run.caseId)), ...current.runs]
    .sort((x, y) => rank(x.caseId) - rank(y.caseId));
  const merged: ScenarioResults = {
    ...current,
    quick: origins.some((o) => o.quick),
    pinned: origins.every((o) => o.pinned),
    cases: ORDER.filter((id) => origins.some((o) => o.kept.includes(id))),
    runs,
    origins,
    notes: [],
  };
  merged.notes = [
    ...kept.flatMap((o) => machineNote(current.machine, o) ?? []),
    ...settingNotes(earlier, current, origins),
    ...dependencyNotes(origins).map((n) => n.text),
  ];
  return merged;
}

/** "cases a, d, e, f". */
export function caseList(ids: readonly CaseId[]): string {
  return `${ids.length > 1 ? "cases" : "case"} ${ids.join(", ")}`;
}

/** "this run" for the first origin, "the earlier run of 2026-12-02 00:54 UTC at commit 596e012" after. */
export function originLabel(origins: readonly RunOrigin[], index: number): string {
  if (index === 0) return "this run";
  const m = origins[index].machine;
  return `the earlier run of ${m.date.slice(0, 16).replace("T", " ")} UTC at commit ${m.commit}`;
}

/** The warning when an earlier invocation's machine (CPU model, cores) is not this one's. */
export function machineNote(current: MachineInfo, origin: RunOrigin): string | undefined {
  const m = origin.machine;
  if (m.cpuModel === current.cpuModel && m.cores === current.cores) return undefined;
  return `**Different machine:** ${caseList(origin.kept)} come from a run on ${m.cpuModel} ` +
    `(${m.cores} cores, ${m.date}), this run is on ${current.cpuModel} (${current.cores} cores): ` +
    "figures from the two are not comparable.";
}

/** Quick beside full runs, taskset or seed or Redis limit differing between the invocations. */
function settingNotes(
  earlier: ScenarioResults,
  current: ScenarioResults,
  origins: readonly RunOrigin[],
): string[] {
  const differ = (pick: (o: RunOrigin) => unknown) =>
    origins.slice(1).some((o) => JSON.stringify(pick(o)) !== JSON.stringify(pick(origins[0])));
  const portless = (o: RunOrigin) => Object.values(o.commands).map((c) => c.replace(/\d+/g, "N"));
  return [
    differ((o) => o.quick)
      ? "**Quick and full runs are mixed:** see which run is quick above."
      : "",
    differ((o) => o.pinned) ? "`taskset` was found in some of the runs and not in others." : "",
    differ((o) => o.redisOutputBufferLimit)
      ? "Redis's `client-output-buffer-limit` differed between the runs (see `origins` in the " +
        "`--json` output); the one shown under Setup is this run's."
      : "",
    differ(portless)
      ? "The command templates differed between the runs (beyond ports); those under Setup are " +
        "this run's, every run's own command line is listed under its case."
      : "",
    JSON.stringify(earlier.seed) !== JSON.stringify(current.seed)
      ? "The seeded viewers differ between the runs; the table under case c is this run's."
      : "",
  ].filter(Boolean);
}

/** Where a case's runs come from: an index into `origins`, -1 if none holds it. */
export function originOf(origins: readonly RunOrigin[], caseId: CaseId): number {
  return origins.findIndex((o) => o.kept.includes(caseId));
}

/** For each case that takes figures from a case of another invocation, what that means. */
export function dependencyNotes(origins: readonly RunOrigin[]): { caseId: CaseId; text: string }[] {
  return CASES.flatMap((c) => {
    const x = originOf(origins, c.id);
    return (c.uses ?? []).flatMap((use) => {
      const y = originOf(origins, use.caseId);
      if (x < 0 || y < 0 || x === y) return [];
      const [lx, ly, other] = [originLabel(origins, x), originLabel(origins, y), use.caseId];
      const notes: string[] = [];
      if (use.whenRun && origins[x].cases.includes(other)) {
        notes.push(
          `Case ${c.id} (${lx}): ${use.whenRun} was derived from case ${other} of that run, ` +
            `not from the case ${other} figures shown here (${ly}).`,
        );
      } else if (use.whenRun) {
        notes.push(
          `Case ${c.id} (${lx}) ran without case ${other}: ${use.whenRun} had no case ` +
            `${other} figure of its own run, so the plan's default was used.`,
        );
      }
      if (use.whenRendered) {
        notes.push(
          `Case ${c.id} (${lx}): ${use.whenRendered} set it against case ${other} of ${ly}.`,
        );
      }
      return notes.map((text) => ({ caseId: c.id, text }));
    });
  });
}

/** The header sentence: "Cases b, c: this run (…); cases a, d, e, f: earlier run (…)." */
export function provenance(origins: readonly RunOrigin[]): string {
  const parts = origins.map((o, i) => {
    const m = o.machine;
    const span = o.kept.length === o.cases.length
      ? `${o.elapsedSeconds.toFixed(0)} s`
      : `${o.elapsedSeconds.toFixed(0)} s for ${caseList(o.cases)}`;
    return `${caseList(o.kept)}: ${i === 0 ? "this run" : "earlier run"} (${m.date}, commit ` +
      `${m.commit}, ${m.cpuModel}, ${m.cores} cores, ${span}${o.quick ? ", quick" : ""})`;
  });
  const text = parts.join("; ") + ".";
  return text[0].toUpperCase() + text.slice(1);
}
