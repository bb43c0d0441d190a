/**
 * WebSocket sessions (docs/protocol.md §6): the upgrade, `?stream=` on connect, subscribe and
 * unsubscribe messages, error frames, binary frames, `kill`, a bounded
 * send buffer, and the per-socket limits (subscriptions, message size). The session talks to a small {@link ClientPort} so its logic
 * is tested with a fake; `websocket_upgrade.ts` adapts Deno's WebSocket to it.
 *
 * @module
 */
import type { Access } from "./access.ts";
import type { Viewer } from "./auth.ts";
import { Client, type ClientContext, HARD_CAP_FACTOR } from "./client.ts";
import { describeError, LimitError } from "./errors.ts";
import type { StreamEvent } from "./event.ts";
import type { Logger } from "./log.ts";

/** The reason Mastodon gives when it closes on a binary frame (docs/protocol.md §6.2). */
export const BINARY_REASON = "The mastodon streaming server does not support binary messages";
/** Close code for a client whose send buffer overflowed ("try again later"). */
export const OVERLOADED = 1013;

/**
 * Reading `bufferedAmount` is a call into the runtime, so it is checked once
 * this many characters were sent since the last check (at most an eighth of
 * the queue limit): the limit is overshot by at most that much.
 */
const CHECK_EVERY_CHARS = 16_384;

function checkEvery(clientQueueBytes: number): number {
  return Math.max(1, Math.min(CHECK_EVERY_CHARS, clientQueueBytes >> 3));
}

/** Client frames waiting for earlier ones to finish; beyond this the socket is closed. */
export const MAX_PENDING_MESSAGES = 100;
/** Close code and reason for a client that floods frames faster than they are handled. */
export const POLICY_VIOLATION = 1008;
const FLOOD_REASON = "Too many messages";
/** Close code for a client message larger than the limit (RFC 6455 "message too big"). */
export const MESSAGE_TOO_BIG = 1009;
/** The error frame's message for a subscribe beyond the limit (status 429). */
export const TOO_MANY_SUBSCRIPTIONS = "Too many subscriptions";

const encoder = new TextEncoder();

/** Whether `text` takes more than `max` bytes in UTF-8 (encoded only when it might). */
function tooBig(text: string, max: number): boolean {
  if (text.length > max) return true; // at least one byte per UTF-16 unit
  return text.length * 3 > max && encoder.encode(text).byteLength > max;
}

/** The part of a WebSocket a session uses. */
export interface ClientPort {
  send(text: string): void;
  close(code?: number, reason?: string): void;
  readonly bufferedAmount: number;
  /** False once the socket is closing or closed, whoever started it. */
  readonly open: boolean;
}

/** What a session needs besides its port. */
export interface SessionContext extends ClientContext {
  access: Access;
  log: Logger;
  /** Per-socket limits (SLUICE_MAX_SUBSCRIPTIONS_PER_WEBSOCKET, SLUICE_MAX_WEBSOCKET_MESSAGE_BYTES). */
  limits: { subscriptionsPerWebSocket: number; webSocketMessageBytes: number };
}

/** Turns a query string into Mastodon's params object (repeated keys → arrays). */
export function queryParams(query: URLSearchParams): Record<string, unknown> {
  const params: Record<string, unknown> = {};
  for (const key of new Set(query.keys())) {
    const values = query.getAll(key);
    params[key] = values.length > 1 ? values : values[0];
  }
  return params;
}

/** Already settled: what a session returns when it queues nothing. */
const SETTLED: Promise<void> = Promise.resolve();

/** One WebSocket client; its access, log and limits come from the shared context. */
export class WebSocketSession extends Client {
  declare readonly context: SessionContext;
  readonly #port: ClientPort;
  /** Characters sent since `bufferedAmount` was last read. */
  #unchecked = 0;
  /** The tail of the frames being handled, one at a time in arrival order; none when idle. */
  #inbox?: Promise<void>;
  #pending = 0;

  constructor(viewer: Viewer, context: SessionContext, port: ClientPort) {
    super(viewer, "websocket", context);
    this.#port = port;
  }

  /** Subscribes the upgrade URL's `stream`, if any, before any frame (docs/protocol.md §6.1). */
  start(query: URLSearchParams): Promise<void> {
    const stream = query.get("stream");
    if (stream === null) return this.#inbox ?? SETTLED;
    const params = queryParams(query);
    return this.#enqueue(() => this.requestSubscribe(stream, params));
  }

  /**
   * Queues one frame from the client. Frames are handled one at a time in
   * arrival order, so a subscribe that waits for the database is never
   * overtaken by the unsubscribe sent after it. A client with more than
   * {@link MAX_PENDING_MESSAGES} frames waiting is closed with 1008, a text
   * message over the size limit with 1009.
   */
  receive(data: unknown): Promise<void> {
    if (this.closed) return this.#inbox ?? SETTLED;
    const max = this.context.limits.webSocketMessageBytes;
    if (typeof data === "string" && tooBig(data, max)) {
      this.#refused(
        "websocket_message_bytes",
        "Closing a WebSocket that sent a too large message",
        {
          limit: max,
          length: data.length,
        },
      );
      this.#port.close(MESSAGE_TOO_BIG, "Message too big");
      this.dispose();
      return this.#inbox ?? SETTLED;
    }
    if (this.#pending >= MAX_PENDING_MESSAGES) {
      this.context.log.warn("Closing a WebSocket that sends frames faster than they are handled", {
        pending: this.#pending,
      });
      this.#port.close(POLICY_VIOLATION, FLOOD_REASON);
      this.dispose();
      return this.#inbox ?? SETTLED;
    }
    return this.#enqueue(() => this.handleMessage(data));
  }

  #enqueue(task: () => Promise<void>): Promise<void> {
    this.#pending++;
    const tail: Promise<void> = (this.#inbox ?? SETTLED).then(async () => {
      try {
        if (!this.closed) await task();
      } catch (err) {
        this.context.log.error("WebSocket message handling failed", { err });
      } finally {
        // The last frame handled: an idle session keeps no promise chain.
        if (--this.#pending === 0 && this.#inbox === tail) this.#inbox = undefined;
      }
    });
    this.#inbox = tail;
    return tail;
  }

  /** Handles one frame from the client. */
  async handleMessage(data: unknown): Promise<void> {
    if (typeof data !== "string") {
      this.#port.close(1003, BINARY_REASON);
      this.dispose();
      return;
    }
    let message: unknown;
    try {
      message = JSON.parse(data);
    } catch {
      this.context.log.debug("Ignoring a WebSocket message that is not JSON");
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) return;
    const { type, stream, ...params } = message as Record<string, unknown>;
    if (type === "subscribe") await this.requestSubscribe(stream, params);
    else if (type === "unsubscribe") await this.requestUnsubscribe(stream, params);
  }

  /** Scopes, resolution, duplicates ignored, errors as frames (docs/protocol.md §6.3). */
  async requestSubscribe(stream: unknown, params: Record<string, unknown>): Promise<void> {
    try {
      this.#checkSubscriptionLimit();
      this.subscribe(await this.context.access.resolve(this.viewer, stream, params));
    } catch (err) {
      const { status, message } = describeError(err);
      if (status === 500) {
        this.context.log.error("Subscription failed", { err, stream: String(stream) });
      }
      this.#sendControl(JSON.stringify({ error: message, status }));
    }
  }

  /** Re-resolves without scopes; unknown ones are a silent no-op (docs/protocol.md §6.4). */
  async requestUnsubscribe(stream: unknown, params: Record<string, unknown>): Promise<void> {
    try {
      const resolved = await this.context.access.resolve(this.viewer, stream, params, {
        checkScopes: false,
      });
      this.unsubscribe(resolved.key);
    } catch {
      this.#sendControl(JSON.stringify({ error: "Error unsubscribing from channel" }));
    }
  }

  /**
   * Sends one event. Whether the client keeps up is the queue watch's call
   * (`_queue_watch.ts`), told once enough was sent since the last look; only
   * a queue past the hard cap is cut here at once.
   */
  transmit(event: StreamEvent, label: string): void {
    if (this.closed) return;
    if (!this.#port.open) {
      // Deno is closing it (a ping went unanswered: a client that stopped
      // reading), and discards what is sent meanwhile: release it now, and
      // drop the connection if that close stalls.
      this.context.log.debug("Releasing a WebSocket that Deno is closing");
      this.#port.close();
      this.dispose();
      return;
    }
    const { clientQueueBytes, queues } = this.context;
    if (this.#unchecked >= checkEvery(clientQueueBytes)) {
      this.#unchecked = 0;
      if (this.#port.bufferedAmount > clientQueueBytes * HARD_CAP_FACTOR) {
        this.cutOff("cap");
        return;
      }
      queues.waiting(this);
    }
    const text = event.ws(label);
    if (!this.#send(text)) return;
    this.#unchecked += text.length;
    this.sentBytes += text.length;
    this.counted(event);
  }

  queuedBytes(): number {
    return this.#port.bufferedAmount;
  }

  protected dropSlow(): void {
    this.#port.close(OVERLOADED, "Client is too slow"); // then dropped if the close stalls
    this.dispose();
  }

  /** Closes with 1001 (shutdown). */
  goAway(): void {
    this.#port.close(1001, "Server shutting down");
    this.dispose();
  }

  protected kill(): void {
    this.#port.close(); // no status code, as Mastodon
    this.dispose();
  }

  /**
   * At the limit every subscribe is refused before it is resolved (no
   * database work), even one that repeats an existing subscription.
   */
  #checkSubscriptionLimit(): void {
    const max = this.context.limits.subscriptionsPerWebSocket;
    if (this.subscriptionCount < max) return;
    this.#refused("subscriptions_per_websocket", "Refusing a subscription beyond the limit", {
      limit: max,
    });
    throw new LimitError(TOO_MANY_SUBSCRIPTIONS);
  }

  /** Counts and logs a refusal by a limit (never with the token). */
  #refused(limit: string, message: string, fields: Record<string, unknown>): void {
    this.context.metrics.limitRefusals.inc({ limit });
    this.context.log.info(message, { ...fields, accountId: this.viewer.accountId });
  }

  #sendControl(text: string): void {
    if (!this.closed) this.#send(text);
  }

  #send(text: string): boolean {
    try {
      this.#port.send(text);
      return true;
    } catch (err) {
      this.context.log.debug("WebSocket send failed", { err });
      this.dispose();
      return false;
    }
  }
}
