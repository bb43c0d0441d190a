/**
 * What `/metrics` and the readiness check answer in a worker of a
 * several-worker instance: the whole instance, gathered from every worker
 * through the supervisor (`workers.ts`), whichever worker takes the request.
 *
 * @module
 */
import type { Metrics } from "./metrics.ts";
import type { Gathered, Question } from "./_worker_messages.ts";

/** A worker's line to the supervisor. */
export interface WorkerLink {
  /** Asks every worker (this one too) and resolves with their answers. */
  gather(question: Question): Promise<Gathered>;
}

/** `/metrics` for the whole instance: every running worker's series summed. */
export function instanceMetrics(link: WorkerLink, metrics: Metrics): Pick<Metrics, "render"> {
  return {
    render: async () => {
      const gathered = await link.gather("metrics");
      const snapshots = gathered.answers.flatMap((a) => a.kind === "metrics" ? [a.snapshot] : []);
      snapshots.sort((a, b) => a.worker - b.worker);
      return metrics.renderInstance(snapshots, { restarts: gathered.restarts });
    },
  };
}

/**
 * Readiness of the whole instance: rejects unless every worker is running
 * and ready, with each distinct problem once (so two workers without Redis
 * say "Redis is not connected" once).
 */
export function instanceReady(link: WorkerLink): () => Promise<void> {
  return async () => {
    const gathered = await link.gather("ready");
    const problems = [
      ...gathered.answers.flatMap((a) => a.kind === "ready" && a.problem ? [a.problem] : []),
      ...gathered.missing.map((m) => m.why),
    ];
    if (problems.length > 0) throw new Error([...new Set(problems)].join("; "));
  };
}
