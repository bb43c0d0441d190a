/**
 * EventSource responses: a `ReadableStream` per client that starts with
 * `:)\n`, carries shared event bytes and heartbeats, and is ended by `kill`,
 * by an overflowing queue or by shutdown. When heartbeats are due is decided
 * by `heartbeat.ts`, and the set of open streams belongs to `clients.ts`.
 * sse.ts never parses Redis messages.
 *
 * @module
 */
import type { Viewer } from "./auth.ts";
import { Client, type ClientContext } from "./client.ts";
import type { StreamEvent } from "./event.ts";

const encoder = new TextEncoder();
const OPENING = encoder.encode(":)\n");
/** One LF: the blank line of `:thump\n\n` ends the streams of some clients (Mastodon.py 1.8). */
const THUMP = encoder.encode(":thump\n");

/** Queued bytes, not chunks, measure a stream's backlog (one function for every stream). */
const QUEUING: QueuingStrategy<Uint8Array> = {
  highWaterMark: 0,
  size: (chunk) => chunk.byteLength,
};

/**
 * The underlying source of a client's body: prototype methods, so a stream
 * holds no closures of its own.
 */
class SseSource implements UnderlyingDefaultSource<Uint8Array> {
  constructor(readonly client: SseClient) {}
  start(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.client.started(controller);
  }
  cancel(): void {
    this.client.cancelled(); // the client went away
  }
}

/** One EventSource client. */
export class SseClient extends Client {
  readonly body: ReadableStream<Uint8Array>;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  readonly #onFinish: (client: SseClient) => void;
  readonly #closed?: () => void;

  /**
   * `onFinish` (shared by many clients), then `closed` (this client's own),
   * are called once when the stream ends, whatever ended it.
   */
  constructor(
    viewer: Viewer,
    context: ClientContext,
    onFinish: (client: SseClient) => void,
    closed?: () => void,
  ) {
    super(viewer, "eventsource", context);
    this.#onFinish = onFinish;
    this.#closed = closed;
    this.body = new ReadableStream<Uint8Array>(new SseSource(this), QUEUING);
  }

  /** The body's controller arrived: the opening comment goes first. */
  started(controller: ReadableStreamDefaultController<Uint8Array>): void {
    this.#controller = controller;
    controller.enqueue(OPENING);
  }

  /** The reader cancelled the body. */
  cancelled(): void {
    this.#finish();
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
    if (-(this.#controller.desiredSize ?? 0) <= this.context.clientQueueBytes) return true;
    // The client cannot keep up: drop its queue and end the response.
    this.overflowed();
    this.#finish();
    this.#controller.error(new Error("client too slow"));
    return false;
  }

  #finish(): void {
    this.#onFinish(this);
    this.#closed?.();
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
