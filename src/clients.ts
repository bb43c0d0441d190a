/**
 * Every open connection of the instance, SSE and WebSocket: opening an SSE
 * stream for a resolved subscription, accepting a WebSocket upgrade, putting
 * each SSE stream on the heartbeat wheel (its own 15 s phase, `heartbeat.ts`),
 * and ending them all at shutdown. It builds the one
 * {@link ClientContext} connections share, so no other module hands its own
 * options to a client. clients.ts never parses requests and never talks to
 * PostgreSQL.
 *
 * @module
 */
import type { Access, ResolvedStream } from "./access.ts";
import type { Viewer } from "./auth.ts";
import type { ClientContext } from "./client.ts";
import { DEFAULT_LIMITS } from "./config.ts";
import { HeartbeatWheel } from "./heartbeat.ts";
import type { Hub } from "./hub.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { SseClient } from "./sse.ts";
import type { SessionContext, WebSocketSession } from "./websocket.ts";
import { acceptWebSocket, type UpgradeOptions } from "./websocket_upgrade.ts";
import { QueueWatch } from "./_queue_watch.ts";

/** Mastodon's SSE heartbeat period. */
const HEARTBEAT_MS = 15_000;
/** Idle seconds before a WebSocket is pinged, and then cut without a pong (Mastodon's). */
const WS_IDLE_TIMEOUT_SECONDS = 30;

/** What {@link Clients} needs; the timings are shortened by tests. */
export interface ClientsOptions {
  hub: Hub;
  metrics: Metrics;
  access: Access;
  log: Logger;
  /** Queued bytes that must drain every second (SLUICE_CLIENT_QUEUE_BYTES). */
  clientQueueBytes: number;
  /** All queues of this worker together (its share of SLUICE_QUEUE_BUDGET_BYTES). */
  queueBudgetBytes: number;
  /** How long bytes may wait without any reaching the socket (10 s). */
  stallMs?: number;
  /** Per-WebSocket limits (default {@link DEFAULT_LIMITS}). */
  limits?: SessionContext["limits"];
  /** SSE heartbeat period, each stream on its own phase (15 s). */
  heartbeatMs?: number;
  wsIdleTimeoutSeconds?: number;
  /** How long a closing WebSocket may take before its connection is dropped. */
  wsCloseGraceMs?: number;
}

/** The open SSE streams and WebSocket sessions, and how new ones start. */
export class Clients {
  /** The open SSE streams, each on its own heartbeat phase. */
  readonly #streams: HeartbeatWheel<SseClient>;
  readonly #sessions = new Set<WebSocketSession>();
  readonly #context: ClientContext;
  /** What every WebSocket upgrade shares (context, timings, the session set's hooks). */
  readonly #upgrade: UpgradeOptions;
  /** One callback for every SSE stream that ends, not a closure per stream. */
  readonly #streamEnded = (client: SseClient) => this.#streams.delete(client);

  constructor(options: ClientsOptions) {
    const { hub, metrics, clientQueueBytes, access, log } = options;
    const queues = new QueueWatch({
      budgetBytes: options.queueBudgetBytes,
      clientQueueBytes,
      stallMs: options.stallMs,
    });
    this.#context = { hub, metrics, clientQueueBytes, queues };
    this.#upgrade = {
      context: { ...this.#context, access, log, limits: options.limits ?? DEFAULT_LIMITS },
      idleTimeoutSeconds: options.wsIdleTimeoutSeconds ?? WS_IDLE_TIMEOUT_SECONDS,
      closeGraceMs: options.wsCloseGraceMs,
      opened: (session) => this.#sessions.add(session),
      closed: (session) => this.#sessions.delete(session),
    };
    this.#streams = new HeartbeatWheel(options.heartbeatMs ?? HEARTBEAT_MS);
  }

  /** Open SSE streams plus WebSocket sessions. */
  get size(): number {
    return this.#streams.size + this.#sessions.size;
  }

  /**
   * Opens an SSE stream of `stream` for `viewer`; returns its response body.
   * `closed` runs once when the stream ends, whatever ended it.
   */
  openStream(
    viewer: Viewer,
    stream: ResolvedStream,
    closed?: () => void,
  ): ReadableStream<Uint8Array> {
    const client = new SseClient(viewer, this.#context, this.#streamEnded, closed);
    this.#streams.add(client);
    client.subscribe(stream);
    return client.body;
  }

  /**
   * Upgrades an authenticated request to a WebSocket session; returns the 101
   * response. `ended` runs when the socket closes, with its close code.
   */
  acceptWebSocket(
    request: Request,
    viewer: Viewer,
    requestId: string,
    ended?: (code: number) => void,
  ): Response {
    return acceptWebSocket(request, viewer, requestId, this.#upgrade, ended);
  }

  /** Shutdown: closes every WebSocket with 1001 and ends every SSE stream. */
  goAway(): void {
    for (const session of [...this.#sessions]) session.goAway();
    for (const stream of [...this.#streams]) stream.end();
  }

  /** Open SSE streams (each on the heartbeat wheel). */
  get streams(): number {
    return this.#streams.size;
  }

  /** Stops the heartbeat timer and the queue watch. */
  close(): void {
    this.#streams.close();
    this.#context.queues.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
