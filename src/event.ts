/**
 * A Redis message becomes one immutable {@link StreamEvent}: parsed once,
 * its payload bytes kept as Rails wrote them, its SSE bytes and WebSocket
 * text built once and shared by every client that receives it.
 * This module never touches sockets, Redis or PostgreSQL.
 *
 * @module
 */
import { type ObjectBody, objectBody, payloadSpan } from "./_json_span.ts";

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
  /** On a base event: its object payload's body and that body's shared encodings. */
  #body?: ObjectBody & { sseHead?: Uint8Array; wsHead?: string };
  /** On a base event: events derived by {@link withLastKey}, by appended text. */
  #derived?: Map<string, StreamEvent>;
  /** On a derived event: its base and the text appended to the base's body. */
  #tail?: { base: StreamEvent; text: string };

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
    if (this.#sse !== undefined) return this.#sse;
    if (this.#tail === undefined) {
      return this.#sse = encoder.encode(
        `event: ${this.event}\n${sseData(this.payload, this.payloadJson)}\n`,
      );
    }
    // A derived event copies its base's encoded head and encodes only its tail.
    const head = this.#tail.base.#sseHead();
    const tail = encoder.encode(`${this.#tail.text}\n\n`);
    const bytes = new Uint8Array(head.length + tail.length);
    bytes.set(head);
    bytes.set(tail, head.length);
    return this.#sse = bytes;
  }

  /** `{"stream":<label>,"event":"X","payload":"…"}` for a stream label (JSON array text). */
  ws(label: string): string {
    this.#ws ??= new Map();
    let text = this.#ws.get(label);
    if (text === undefined) {
      this.#wsPayload ??= this.#tail === undefined
        ? wsPayload(this.payload, this.payloadJson)
        // JSON string escaping is per character: the base's escaped head, then the tail's.
        : this.#tail.base.#wsHead() + JSON.stringify(this.#tail.text).slice(1);
      text = `{"stream":${label},"event":${
        JSON.stringify(this.event)
      },"payload":${this.#wsPayload}}`;
      this.#ws.set(label, text);
    }
    return text;
  }

  /**
   * The same event with `"key":valueJson` appended as the last key of its
   * object payload, the rest of the payload text untouched; memoised by the
   * appended text, so viewers with equal results share one event. The derived
   * event's encodings reuse the base's encoded body: only the appended part is
   * encoded per derived event. Throws SyntaxError when the payload is not a
   * JSON object.
   */
  withLastKey(key: string, valueJson: string): StreamEvent {
    const body = this.#body ??= objectBody(this.payloadJson);
    const text = `${body.separator}${JSON.stringify(key)}:${valueJson}}`;
    this.#derived ??= new Map();
    let derived = this.#derived.get(text);
    if (derived === undefined) {
      derived = new StreamEvent(this.event, this.payload, body.text + text, this.receivedAt);
      derived.#tail = { base: this, text };
      this.#derived.set(text, derived);
    }
    return derived;
  }

  /** `event: X\ndata: <body>`, encoded once for every derived event. */
  #sseHead(): Uint8Array {
    const body = this.#body!;
    return body.sseHead ??= encoder.encode(`event: ${this.event}\ndata: ${body.text}`);
  }

  /** The body as a JSON string without its closing quote, escaped once. */
  #wsHead(): string {
    const body = this.#body!;
    return body.wsHead ??= JSON.stringify(body.text).slice(0, -1);
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
