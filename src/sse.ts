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
import { Client, type ClientContext, HARD_CAP_FACTOR } from "./client.ts";
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

  /**
   * Queues bytes. Whether the client keeps up is the queue watch's call
   * (`_queue_watch.ts`); only a queue past the hard cap is cut here at once.
   */
  #write(bytes: Uint8Array): boolean {
    if (this.closed) return false;
    this.#controller.enqueue(bytes);
    this.sentBytes += bytes.byteLength;
    const queued = this.queuedBytes();
    if (queued === 0) return true;
    const { clientQueueBytes, queues } = this.context;
    if (queued <= clientQueueBytes * HARD_CAP_FACTOR) {
      queues.waiting(this);
      return true;
    }
    this.cutOff("cap");
    return false;
  }

  queuedBytes(): number {
    return this.closed ? 0 : -(this.#controller.desiredSize ?? 0);
  }

  /**
   * Drops its queue and ends the response. Deno.serve cannot drop the TCP
   * connection of one response: if the client never reads, the connection
   * stays until the client goes (docs/compatibility.md).
   */
  protected dropSlow(): void {
    this.#finish();
    this.#controller.error(new Error("client too slow"));
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
