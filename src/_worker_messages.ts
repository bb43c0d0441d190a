/**
 * What the supervisor (`workers.ts`, the main thread) and each worker
 * thread (`worker.ts`) say to each other with `postMessage`. Only
 * structured-cloneable data; nothing of the data path goes through here.
 *
 * @module
 */
import type { Config } from "./config.ts";
import type { WorkerSnapshot } from "./metrics.ts";

/** What one worker answers when asked for the instance's view. */
export type Collected =
  | { kind: "metrics"; snapshot: WorkerSnapshot }
  | { kind: "ready"; worker: number; problem?: string };

/** What a worker asks every worker for: its metrics, or its readiness. */
export type Question = Collected["kind"];

/** Every answer to one gather, and the workers that could not answer. */
export interface Gathered {
  answers: Collected[];
  /** Workers that are starting, restarting or did not answer in time, with why. */
  missing: { worker: number; why: string }[];
  /** Workers restarted since the instance started. */
  restarts: number;
}

/** Supervisor → worker. */
export type ToWorker =
  | { type: "start"; worker: number; workers: number; config: Config }
  | { type: "collect"; id: number; question: Question }
  | { type: "gathered"; id: number; gathered: Gathered }
  | { type: "shutdown" };

/** Worker → supervisor. */
export type FromWorker =
  | { type: "listening"; address: string }
  | { type: "failed"; name: string; message: string }
  | { type: "gather"; id: number; question: Question }
  | { type: "collected"; id: number; answer: Collected }
  | { type: "closed" };
