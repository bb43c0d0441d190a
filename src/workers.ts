/**
 * One instance, several JavaScript threads (`SLUICE_WORKERS`). The main
 * thread is the supervisor: it plans how many workers run and how the
 * PostgreSQL pool is shared ({@link planWorkers}), starts each worker
 * (`worker.ts`: a whole Sluice with its own `Deno.serve` on the same
 * address through `SO_REUSEPORT`, Redis subscriber and share of `DB_POOL`),
 * answers the workers' questions about the whole instance (metrics summed,
 * readiness of every worker), restarts a worker that dies, and shuts them
 * all down on SIGTERM. It never touches a client connection: the kernel
 * spreads connections over the workers' listeners.
 *
 * @module
 */
import type { Config, Listen } from "./config.ts";
import type { Logger } from "./log.ts";
import type { Collected, FromWorker, Gathered, Question, ToWorker } from "./_worker_messages.ts";

/** How many workers run, the PostgreSQL connections each may open, and why. */
export interface WorkerPlan {
  count: number;
  /** `DB_POOL` split over the workers: their sum is `DB_POOL`, each at least 1. */
  pools: number[];
  /** Where the plan differs from what was asked: logged as warnings at start-up. */
  warnings: string[];
  /** How `count` was arrived at, for the start-up log. */
  reason: string;
}

/**
 * Works out the workers from `SLUICE_WORKERS` (`auto`: the CPUs this process
 * may run on, its affinity), the listen address (a unix socket cannot be
 * shared: one worker), whether `SO_REUSEPORT` is available (Deno's
 * `--unstable-net`) and `DB_POOL` (every worker needs a connection).
 */
export function planWorkers(options: {
  requested: number | "auto";
  cpus: number;
  listen: Listen;
  pool: number;
  reusePort: boolean;
}): WorkerPlan {
  const { requested, listen, pool } = options;
  const cpus = Math.max(1, options.cpus);
  const warnings: string[] = [];
  let count = requested === "auto" ? cpus : requested;
  let reason = requested === "auto"
    ? `SLUICE_WORKERS=auto: ${cpus} CPU${cpus === 1 ? "" : "s"} available to the process`
    : `SLUICE_WORKERS=${requested}`;
  if (count > 1 && listen.kind === "unix") {
    reason = "SOCKET is set: a unix socket is served by one worker";
    if (requested !== "auto") {
      warnings.push(
        `SLUICE_WORKERS=${requested} ignored: a unix socket (SOCKET) cannot be shared between ` +
          "workers, so one worker serves it; listen on TCP (PORT, BIND) to use several",
      );
    }
    count = 1;
  }
  if (count > 1 && !options.reusePort) {
    warnings.push(
      `${count} workers need Deno's --unstable-net flag (SO_REUSEPORT): running one worker`,
    );
    reason = "no --unstable-net";
    count = 1;
  }
  if (count > pool) {
    warnings.push(
      `${count} workers need at least one PostgreSQL connection each but DB_POOL=${pool}: ` +
        `running ${pool}`,
    );
    reason = `DB_POOL=${pool}`;
    count = pool;
  }
  const pools = Array.from(
    { length: count },
    (_, i) => Math.floor(pool / count) + (i < pool % count ? 1 : 0),
  );
  return { count, pools, warnings, reason };
}

/** The CPUs this process may run on (its affinity; `taskset` and `CPUAffinity=` count). */
export function availableCpus(): number {
  return navigator.hardwareConcurrency; // Rust's available_parallelism: sched_getaffinity
}

/** Whether `Deno.serve` may use `reusePort` (Deno's `--unstable-net`). */
export function reusePortAvailable(): boolean {
  return typeof (Deno as { listenDatagram?: unknown }).listenDatagram === "function";
}

/** A worker thread's state, seen from the supervisor. */
interface Slot {
  /** 1-based, in logs and metrics. */
  readonly number: number;
  worker?: Worker;
  state: "starting" | "running" | "closed";
  startedAt: number;
  /** Delay before the next restart: doubles while a worker keeps dying young. */
  backoffMs: number;
  closed?: PromiseWithResolvers<void>;
}

/** One gather in progress: the worker that asked, and the answers so far. */
interface Gathering {
  asker: Slot;
  askerId: number;
  waiting: Set<number>;
  answers: Collected[];
  missing: { worker: number; why: string }[];
  timer: ReturnType<typeof setTimeout>;
}

const WORKER_URL = new URL("./worker.ts", import.meta.url);
/** A worker living at least this long before dying restarts after the shortest delay. */
const HEALTHY_MS = 10_000;
const MAX_BACKOFF_MS = 30_000;

/** Starts, watches and stops the worker threads of one instance. */
export class Supervisor {
  readonly #config: Readonly<Config>;
  readonly #plan: WorkerPlan;
  readonly #log: Logger;
  readonly #url: URL;
  readonly #restartDelayMs: number;
  readonly #gatherTimeoutMs: number;
  readonly #slots: Slot[];
  readonly #started = Promise.withResolvers<string>();
  readonly #gatherings = new Map<number, Gathering>();
  #nextGather = 0;
  #stopping = false;
  #startedOnce = false;
  /** Workers restarted after dying. */
  restarts = 0;

  constructor(options: {
    config: Readonly<Config>;
    plan: WorkerPlan;
    log: Logger;
    /** The worker module (tests give one that can be made to crash). */
    workerUrl?: URL;
    /** First delay before a dead worker is started again (1 s). */
    restartDelayMs?: number;
    /** How long a scrape or readiness check waits for every worker (2 s). */
    gatherTimeoutMs?: number;
  }) {
    this.#config = options.config;
    this.#plan = options.plan;
    this.#log = options.log;
    this.#url = options.workerUrl ?? WORKER_URL;
    this.#restartDelayMs = options.restartDelayMs ?? 1000;
    this.#gatherTimeoutMs = options.gatherTimeoutMs ?? 2000;
    this.#slots = options.plan.pools.map((_, i) => ({
      number: i + 1,
      state: "starting",
      startedAt: 0,
      backoffMs: this.#restartDelayMs,
    }));
  }

  /** How many workers the instance runs. */
  get count(): number {
    return this.#slots.length;
  }

  /**
   * Starts every worker; resolves with the address once all of them listen,
   * rejects with the first worker's start-up error (every worker is then stopped).
   */
  start(): Promise<string> {
    for (const slot of this.#slots) this.#spawn(slot);
    return this.#started.promise;
  }

  /** Asks every worker to shut down gracefully; resolves when all have (or were stopped). */
  async shutdown(): Promise<void> {
    this.#stopping = true;
    const bound = this.#config.shutdownTimeoutMs + 2000;
    await Promise.all(this.#slots.map(async (slot) => {
      if (slot.worker === undefined || slot.state === "closed") return;
      slot.closed ??= Promise.withResolvers();
      this.#post(slot, { type: "shutdown" });
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<"late">((resolve) =>
        timer = setTimeout(() => resolve("late"), bound)
      );
      const outcome = await Promise.race([slot.closed.promise, late]);
      clearTimeout(timer);
      if (outcome === "late") {
        this.#log.warn(`Worker ${slot.number} did not finish shutting down: stopped`);
      }
      this.#stop(slot);
    }));
    for (const gathering of this.#gatherings.values()) clearTimeout(gathering.timer);
    this.#gatherings.clear();
  }

  #spawn(slot: Slot): void {
    const worker = new Worker(this.#url, { type: "module", name: `sluice-worker-${slot.number}` });
    slot.worker = worker;
    slot.state = "starting";
    slot.startedAt = Date.now();
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      if (slot.worker === worker) this.#onMessage(slot, event.data);
    };
    worker.onerror = (event) => {
      event.preventDefault(); // one worker's death is not the process's
      if (slot.worker === worker) this.#died(slot, event.message || "uncaught error");
    };
    worker.onmessageerror = () => {
      this.#log.error(`Worker ${slot.number} sent a message that could not be read`);
    };
    const config: Config = {
      ...this.#config,
      postgres: { ...this.#config.postgres, max: this.#plan.pools[slot.number - 1] },
      queueBudgetBytes: Math.max(1, Math.floor(this.#config.queueBudgetBytes / this.count)),
    };
    this.#post(slot, {
      type: "start",
      worker: slot.number,
      workers: this.count,
      config,
    });
  }

  #onMessage(slot: Slot, message: FromWorker): void {
    switch (message.type) {
      case "listening":
        slot.state = "running";
        if (this.#startedOnce) {
          this.#log.info(`Worker ${slot.number} is serving again`);
        }
        if (!this.#startedOnce && this.#slots.every((s) => s.state === "running")) {
          this.#startedOnce = true;
          this.#started.resolve(message.address);
        }
        return;
      case "failed":
        return this.#failed(slot, message);
      case "gather":
        return this.#gather(slot, message.id, message.question);
      case "collected":
        return this.#collected(slot, message.id, message.answer);
      case "closed":
        slot.closed?.resolve();
        return;
    }
  }

  /** A worker could not start (its `Deno.serve` threw). */
  #failed(slot: Slot, failure: { name: string; message: string }): void {
    this.#stop(slot);
    if (!this.#startedOnce) {
      const error = failure.name === "AddrInUse"
        ? new Deno.errors.AddrInUse(failure.message)
        : new Error(`Worker ${slot.number} could not start: ${failure.message}`);
      for (const other of this.#slots) this.#stop(other);
      this.#started.reject(error);
      return;
    }
    this.#log.error(`Worker ${slot.number} could not start`, { error: failure.message });
    this.#restartLater(slot);
  }

  #died(slot: Slot, why: string): void {
    this.#stop(slot);
    slot.closed?.resolve();
    if (this.#stopping) return;
    if (!this.#startedOnce) {
      for (const other of this.#slots) this.#stop(other);
      this.#started.reject(new Error(`Worker ${slot.number} died while starting: ${why}`));
      return;
    }
    this.restarts++;
    this.#log.error(`Worker ${slot.number} died: restarting it; its clients reconnect`, {
      error: why,
      restarts: this.restarts,
    });
    this.#restartLater(slot);
  }

  #restartLater(slot: Slot): void {
    const young = Date.now() - slot.startedAt < HEALTHY_MS;
    const delay = young ? slot.backoffMs : this.#restartDelayMs;
    slot.backoffMs = young ? Math.min(slot.backoffMs * 2, MAX_BACKOFF_MS) : this.#restartDelayMs;
    setTimeout(() => {
      if (!this.#stopping) this.#spawn(slot);
    }, delay);
  }

  /** Terminates a worker thread: the kernel closes its listener and connections. */
  #stop(slot: Slot): void {
    slot.state = "closed";
    slot.worker?.terminate();
    slot.worker = undefined;
    for (const [id, gathering] of this.#gatherings) {
      if (gathering.waiting.delete(slot.number)) {
        gathering.missing.push({ worker: slot.number, why: `worker ${slot.number} stopped` });
        this.#maybeAnswer(id, gathering);
      }
    }
  }

  /** A worker asks for every worker's answer to `question`. */
  #gather(asker: Slot, askerId: number, question: Question): void {
    const id = this.#nextGather++;
    const gathering: Gathering = {
      asker,
      askerId,
      waiting: new Set(),
      answers: [],
      missing: [],
      timer: setTimeout(() => {
        for (const worker of gathering.waiting) {
          gathering.missing.push({ worker, why: `worker ${worker} did not answer in time` });
        }
        gathering.waiting.clear();
        this.#maybeAnswer(id, gathering);
      }, this.#gatherTimeoutMs),
    };
    this.#gatherings.set(id, gathering);
    for (const slot of this.#slots) {
      if (slot.state === "running") {
        gathering.waiting.add(slot.number);
        this.#post(slot, { type: "collect", id, question });
      } else {
        const why = this.#startedOnce ? "is restarting" : "is starting";
        gathering.missing.push({ worker: slot.number, why: `worker ${slot.number} ${why}` });
      }
    }
    this.#maybeAnswer(id, gathering);
  }

  #collected(slot: Slot, id: number, answer: Collected): void {
    const gathering = this.#gatherings.get(id);
    if (gathering === undefined || !gathering.waiting.delete(slot.number)) return; // too late
    gathering.answers.push(answer);
    this.#maybeAnswer(id, gathering);
  }

  #maybeAnswer(id: number, gathering: Gathering): void {
    if (gathering.waiting.size > 0) return;
    clearTimeout(gathering.timer);
    this.#gatherings.delete(id);
    const gathered: Gathered = {
      answers: gathering.answers,
      missing: gathering.missing,
      restarts: this.restarts,
    };
    if (gathering.asker.state !== "closed") {
      this.#post(gathering.asker, { type: "gathered", id: gathering.askerId, gathered });
    }
  }

  #post(slot: Slot, message: ToWorker): void {
    slot.worker?.postMessage(message);
  }
}
