/**
 * EventSource responses: a `ReadableStream` per client that starts with
 * `:)\n`, carries shared event bytes, and is ended by `kill`, by an
 * overflowing queue or by shutdown. One shared timer writes `:thump\n\n`
 * to every open stream every 15 s. sse.ts never parses Redis messages.
 *
 * @module
 */
import type { Viewer } from "./auth.ts";
import { Client, type ClientContext } from "./client.ts";
import type { StreamEvent } from "./event.ts";

const encoder = new TextEncoder();
const OPENING = encoder.encode(":)\n");
const THUMP = encoder.encode(":thump\n\n");

/** Every open SSE client, for the shared heartbeat and for shutdown. */
export class SseRegistry {
  readonly clients = new Set<SseClient>();
  readonly #timer: ReturnType<typeof setInterval>;

  constructor(options: { heartbeatMs?: number } = {}) {
    this.#timer = setInterval(() => {
      for (const client of this.clients) client.heartbeat();
    }, options.heartbeatMs ?? 15_000);
  }

  /** Ends every stream (shutdown). */
  endAll(): void {
    for (const client of [...this.clients]) client.end();
  }

  close(): void {
    clearInterval(this.#timer);
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** One EventSource client. */
export class SseClient extends Client {
  readonly body: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly #registry: SseRegistry;

  constructor(viewer: Viewer, context: ClientContext, registry: SseRegistry) {
    super(viewer, "eventsource", context);
    this.#registry = registry;
    this.body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        this.#controller = controller;
        controller.enqueue(OPENING);
      },
      cancel: () => this.#finish(), // the client went away
    }, { highWaterMark: 0, size: (chunk) => chunk.byteLength });
    registry.clients.add(this);
  }

  transmit(event: StreamEvent): void {
    if (this.#write(event.sse())) this.counted(event);
  }

  /** Writes the heartbeat comment. */
  heartbeat(): void {
    this.#write(THUMP);
  }

  /** Ends the response cleanly (kill, shutdown). */
  end(): void {
    if (this.closed) return;
    this.#finish();
    this.#controller.close();
  }

  protected kill(): void {
    this.end();
  }

  #write(bytes: Uint8Array): boolean {
    if (this.closed) return false;
    this.#controller.enqueue(bytes);
    if (-(this.#controller.desiredSize ?? 0) <= this.context.queueLimit) return true;
    // The client cannot keep up: drop its queue and end the response.
    this.overflowed();
    this.#finish();
    this.#controller.error(new Error("client too slow"));
    return false;
  }

  #finish(): void {
    this.#registry.clients.delete(this);
    this.dispose();
  }
}

/** Headers of a successful SSE response (docs/protocol.md §5.1). */
export function sseHeaders(requestId: string): Headers {
  return new Headers({
    "Access-Control-Allow-Origin": "*",
    "X-Request-Id": requestId,
    "Content-Type": "text/event-stream",
    "Cache-Control": "private, no-store",
  });
}
