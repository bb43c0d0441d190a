/**
 * A Redis message becomes one immutable {@link StreamEvent}: parsed once,
 * its payload bytes kept as Rails wrote them, its SSE bytes and WebSocket
 * text built once and shared by every client that receives it.
 * This module never touches sockets, Redis or PostgreSQL.
 *
 * @module
 */
import { payloadSpan } from "./_json_span.ts";

const encoder = new TextEncoder();

/** Why a Redis message could not become an event. */
export type MalformedReason = "invalid_json" | "not_an_object" | "bad_event_name";

/** Thrown by {@link parseEvent} for messages that are not Mastodon events. */
export class MalformedMessageError extends SyntaxError {
  override name = "MalformedMessageError";
  constructor(readonly reason: MalformedReason, message: string) {
    super(message);
  }
}

/** One event as received from Redis, with memoised encodings. */
export class StreamEvent {
  #sse?: Uint8Array;
  #wsPayload?: string;
  #ws?: Map<string, string>;
  #derived?: Map<string, StreamEvent>;

  /**
   * @param event the `event` string
   * @param payload the parsed payload (undefined when absent)
   * @param payloadJson the payload's JSON text as published (whitespace removed), "" when absent
   * @param receivedAt `performance.now()` when the message arrived
   */
  constructor(
    readonly event: string,
    readonly payload: unknown,
    readonly payloadJson: string,
    readonly receivedAt: number,
  ) {}

  /** Mastodon only delivers events whose `event` and `payload` are both truthy. */
  get deliverable(): boolean {
    return this.event !== "" && Boolean(this.payload);
  }

  /** `event: X\ndata: Y\n\n`, encoded once. */
  sse(): Uint8Array {
    return this.#sse ??= encoder.encode(
      `event: ${this.event}\n${sseData(this.payload, this.payloadJson)}\n`,
    );
  }

  /** `{"stream":<label>,"event":"X","payload":"…"}` for a stream label (JSON array text). */
  ws(label: string): string {
    this.#ws ??= new Map();
    let text = this.#ws.get(label);
    if (text === undefined) {
      this.#wsPayload ??= wsPayload(this.payload, this.payloadJson);
      text = `{"stream":${label},"event":${
        JSON.stringify(this.event)
      },"payload":${this.#wsPayload}}`;
      this.#ws.set(label, text);
    }
    return text;
  }

  /**
   * The same event with another payload text (e.g. `filtered` appended),
   * memoised by that text so viewers with equal results share bytes.
   */
  withPayloadJson(payloadJson: string): StreamEvent {
    this.#derived ??= new Map();
    let derived = this.#derived.get(payloadJson);
    if (derived === undefined) {
      derived = new StreamEvent(this.event, this.payload, payloadJson, this.receivedAt);
      this.#derived.set(payloadJson, derived);
    }
    return derived;
  }
}

/**
 * Parses a Redis message once. Throws {@link MalformedMessageError} for
 * invalid JSON, non-objects and non-string event names. A message without
 * `event` or `payload` is returned but is not {@link StreamEvent.deliverable}.
 */
export function parseEvent(raw: string, receivedAt = performance.now()): StreamEvent {
  let message: unknown;
  try {
    message = JSON.parse(raw);
  } catch (err) {
    throw new MalformedMessageError("invalid_json", (err as Error).message);
  }
  if (typeof message !== "object" || message === null || Array.isArray(message)) {
    throw new MalformedMessageError("not_an_object", "message is not a JSON object");
  }
  const { event = "", payload } = message as { event?: unknown; payload?: unknown };
  if (typeof event !== "string" || /[\r\n]/.test(event)) {
    throw new MalformedMessageError("bad_event_name", "event is not a single-line string");
  }
  const payloadJson = payload === undefined ? "" : payloadSpan(raw);
  return new StreamEvent(event, payload, payloadJson, receivedAt);
}

function sseData(payload: unknown, payloadJson: string): string {
  if (typeof payload !== "string") return `data: ${payloadJson}\n`;
  // A string with line breaks would end the event early: one data line per line.
  if (!/[\r\n]/.test(payload)) return `data: ${payload}\n`;
  return payload.split(/\r\n|\r|\n/).map((line) => `data: ${line}\n`).join("");
}

function wsPayload(payload: unknown, payloadJson: string): string {
  if (typeof payload === "string") return payloadJson;
  if (typeof payload === "object" && payload !== null) return JSON.stringify(payloadJson);
  return payloadJson; // numbers and booleans are passed through unencoded, as Mastodon does
}
