/**
 * Which clients are too far behind, decided from each client's own progress
 * and from one memory budget for every queue together, never from a
 * momentary queue length alone: a client that keeps reading is not cut
 * because the server fell behind for a few seconds.
 *
 * Only clients with bytes waiting are followed (a transport reports them
 * with {@link QueueWatch.waiting} when it queues), and only while bytes
 * wait; idle connections cost nothing. Once a tick, for each one:
 * - it made progress when its queue is shorter than the tick before plus
 *   what was handed to it since (bytes reached the socket);
 * - no progress for `stallMs` while bytes wait: cut ("stalled": the socket
 *   accepts nothing, a client that stopped reading);
 * - more than `clientQueueBytes` waiting and no progress this tick: cut
 *   ("behind");
 * then, while all queues together exceed `budgetBytes`, the clients
 * furthest behind are cut first ("budget").
 * The watch never writes to a socket; cutting is the client's own `cutOff`.
 *
 * @module
 */

/** Why a client was cut. */
export type CutReason = "stalled" | "behind" | "budget" | "cap";

/** A client whose queue the watch follows. */
export interface Queued {
  /** Bytes waiting to reach the socket now. */
  queuedBytes(): number;
  /** Bytes (WebSocket: characters) handed to the transport so far. */
  readonly sentBytes: number;
  readonly closed: boolean;
  /** Ends the connection: it is too far behind. */
  cutOff(reason: CutReason): void;
}

/** Limits and timing of a {@link QueueWatch}. */
export interface QueueWatchOptions {
  /** All queues together (SLUICE_QUEUE_BUDGET_BYTES, this worker's share). */
  budgetBytes: number;
  /** One client's queue that must drain every tick (SLUICE_CLIENT_QUEUE_BYTES). */
  clientQueueBytes: number;
  /** How long bytes may wait without any reaching the socket (10 s). */
  stallMs?: number;
  /** Period of the checks (1 s); 0: no timer, {@link QueueWatch.tick} is called by hand (tests). */
  tickMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

interface Track {
  queued: number;
  sent: number;
  lastProgress: number;
}

/** Follows the clients with bytes waiting and cuts those too far behind. */
export class QueueWatch {
  readonly #options: Required<QueueWatchOptions>;
  readonly #waiting = new Map<Queued, Track>();
  #timer?: ReturnType<typeof setInterval>;
  #closed = false;

  constructor(options: QueueWatchOptions) {
    this.#options = { stallMs: 10_000, tickMs: 1000, now: () => performance.now(), ...options };
  }

  /** Clients followed now. */
  get size(): number {
    return this.#waiting.size;
  }

  /** A client queued bytes: follow it until its queue is empty. */
  waiting(client: Queued): void {
    if (this.#closed || this.#waiting.has(client)) return;
    const queued = client.queuedBytes();
    this.#waiting.set(client, {
      queued,
      sent: client.sentBytes,
      lastProgress: this.#options.now(),
    });
    if (this.#timer === undefined && this.#options.tickMs > 0) {
      this.#timer = setInterval(() => this.tick(), this.#options.tickMs);
      Deno.unrefTimer(this.#timer);
    }
  }

  /** One round of checks (the timer's; tests call it directly). */
  tick(): void {
    const now = this.#options.now();
    const behind: [Queued, number][] = [];
    let total = 0;
    for (const [client, track] of this.#waiting) {
      const queued = client.closed ? 0 : client.queuedBytes();
      const progressed = queued < track.queued + (client.sentBytes - track.sent);
      if (progressed) track.lastProgress = now;
      track.queued = queued;
      track.sent = client.sentBytes;
      if (queued === 0) {
        this.#waiting.delete(client);
      } else if (now - track.lastProgress >= this.#options.stallMs) {
        this.#cut(client, "stalled");
      } else if (!progressed && queued > this.#options.clientQueueBytes) {
        this.#cut(client, "behind");
      } else {
        behind.push([client, queued]);
        total += queued;
      }
    }
    if (total > this.#options.budgetBytes) {
      behind.sort((a, b) => b[1] - a[1]);
      for (const [client, queued] of behind) {
        if (total <= this.#options.budgetBytes) break;
        this.#cut(client, "budget");
        total -= queued;
      }
    }
    if (this.#waiting.size === 0) this.#stop();
  }

  /** Stops following (shutdown). */
  close(): void {
    this.#closed = true;
    this.#waiting.clear();
    this.#stop();
  }

  #cut(client: Queued, reason: CutReason): void {
    this.#waiting.delete(client);
    client.cutOff(reason);
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
