/**
 * A worker thread's entry point: one whole Sluice (`start` in main.ts) on
 * the instance's address, started by the supervisor (`workers.ts`) with its
 * share of `DB_POOL`. Answers the supervisor's questions (its metrics, its
 * readiness), asks it for the instance's, and shuts down when told, saying
 * when it is done. Its log records carry `worker`, its number.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { type Sluice, start } from "../main.ts";
import { createLogger } from "./log.ts";
import type { Collected, FromWorker, Gathered, Question, ToWorker } from "./_worker_messages.ts";
import type { WorkerLink } from "./_instance_view.ts";

let sluice: Sluice | undefined;
let number = 0;
let nextId = 0;
const asked = new Map<number, (gathered: Gathered) => void>();

function post(message: FromWorker): void {
  self.postMessage(message);
}

const link: WorkerLink = {
  gather(question: Question): Promise<Gathered> {
    const id = nextId++;
    const { promise, resolve } = Promise.withResolvers<Gathered>();
    asked.set(id, resolve);
    post({ type: "gather", id, question });
    return promise;
  },
};

async function answer(question: Question): Promise<Collected> {
  if (question === "metrics") {
    return { kind: "metrics", snapshot: sluice!.metrics.snapshot(number) };
  }
  try {
    await sluice!.ready();
    return { kind: "ready", worker: number };
  } catch (err) {
    return { kind: "ready", worker: number, problem: (err as Error).message };
  }
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const message = event.data;
  switch (message.type) {
    case "start": {
      number = message.worker;
      const log = createLogger({ level: message.config.logLevel, name: "streaming" }).child({
        worker: number,
      });
      try {
        sluice = start(message.config, log, {}, { link, workers: message.workers });
      } catch (err) {
        const { name, message: text } = err as Error;
        post({ type: "failed", name, message: text });
        return;
      }
      post({ type: "listening", address: sluice.server.address });
      return;
    }
    case "collect":
      if (sluice !== undefined) {
        post({ type: "collected", id: message.id, answer: await answer(message.question) });
      }
      return;
    case "gathered":
      asked.get(message.id)?.(message.gathered);
      asked.delete(message.id);
      return;
    case "shutdown":
      await sluice?.close();
      post({ type: "closed" });
      return;
  }
};
