/**
 * Replaying Mastodon's recorded transcripts (test_data/transcripts/): the
 * step list of a recording, a raw HTTP/1.1 response parser that de-chunks
 * bodies, a WebSocket frame codec, and a raw TCP connection that keeps every
 * byte the server sent. The comparison rules live in transcripts_test.ts.
 *
 * @module
 */

const decoder = new TextDecoder();
const encoder = new TextEncoder();
const DIR = new URL("../../test_data/transcripts/", import.meta.url);

/** One line of a `.steps.txt` file, as something the replay can do. */
export type Step =
  | { kind: "request" }
  | { kind: "open"; channels: string[] }
  | { kind: "subscribed"; channels: string[] }
  | { kind: "unsubscribed"; channels: string[] }
  | { kind: "publish"; channel: string; message: string; receivers: number; gapMs: number }
  | { kind: "numsub"; channel: string; count: number }
  | { kind: "sql"; sql: string }
  | { kind: "send-frame"; echo: boolean; gapMs: number }
  | { kind: "pause"; ms: number }
  | { kind: "server-closes" }
  | { kind: "client-closes" }
  | { kind: "note"; text: string };

/** A recording: what the client sent, what Mastodon answered, and the steps. */
export interface Transcript {
  name: string;
  /** Every byte Mastodon sent. */
  raw: Uint8Array;
  /** The request head as sent (Host to be replaced). */
  request: string;
  /** The client's WebSocket frames after the handshake, masked as recorded. */
  clientFrames: Uint8Array[];
  steps: Step[];
}

/** Reads `NN-name.{raw,sent,steps.txt}` from test_data/transcripts/. */
export async function loadTranscript(name: string): Promise<Transcript> {
  const read = (ext: string) => Deno.readFile(new URL(`${name}.${ext}`, DIR));
  const [raw, sent, steps] = await Promise.all([read("raw"), read("sent"), read("steps.txt")]);
  const end = indexOf(sent, CRLFCRLF) + CRLFCRLF.length;
  const clientFrames = decodeFrames(sent.subarray(end)).frames.map((f) => f.bytes);
  return {
    name,
    raw,
    request: decoder.decode(sent.subarray(0, end)),
    clientFrames,
    steps: parseSteps(decoder.decode(steps)),
  };
}

const STEP_LINE = /^\[\+\s*(\d+)ms\] /;

/** Parses a `.steps.txt` file; continuation lines belong to the step above. */
export function parseSteps(text: string): Step[] {
  const entries: Array<{ at: number; text: string }> = [];
  for (const line of text.split("\n")) {
    const match = STEP_LINE.exec(line);
    if (match) entries.push({ at: Number(match[1]), text: line.slice(match[0].length) });
    else if (entries.length > 0) entries[entries.length - 1].text += "\n" + line;
  }
  return entries.map((entry, i) =>
    parseStep(entry.text.trimEnd(), entry.at - (entries[i - 1]?.at ?? 0))
  );
}

function parseStep(text: string, gapMs: number): Step {
  const channels = (list: string) => list.split(",").map((c) => c.trim());
  let m: RegExpExecArray | null;
  if (/^sent (GET|POST|OPTIONS|WebSocket handshake) /.test(text)) return { kind: "request" };
  if ((m = /^stream open; redis subscribed to (.+)$/.exec(text))) {
    return { kind: "open", channels: channels(m[1]) };
  }
  if ((m = /^redis subscribed to (.+)$/.exec(text))) {
    return { kind: "subscribed", channels: channels(m[1]) };
  }
  if ((m = /^redis unsubscribed from (.+)$/.exec(text))) {
    return { kind: "unsubscribed", channels: channels(m[1]) };
  }
  if ((m = /^redis-cli PUBLISH (\S+) '([\s\S]*)'\s+=> (\d+) subscriber\(s\)$/.exec(text))) {
    return { kind: "publish", channel: m[1], message: m[2], receivers: Number(m[3]), gapMs };
  }
  if ((m = /^PUBSUB NUMSUB (\S+) => (\d+)$/.exec(text))) {
    return { kind: "numsub", channel: m[1], count: Number(m[2]) };
  }
  if ((m = /^psql: (.+?)\s+\(done before connecting\)$/.exec(text))) {
    return { kind: "sql", sql: m[1] };
  }
  if (/^sent (text|binary|close) frame/.test(text)) {
    return { kind: "send-frame", echo: text.includes("(echo"), gapMs };
  }
  if (text.startsWith("(")) return { kind: "pause", ms: gapMs };
  if (/^(server closed the connection|connection closed)$/.test(text)) {
    return { kind: "server-closes" };
  }
  if (text === "client closed the connection") return { kind: "client-closes" };
  return { kind: "note", text };
}

/** A response head: the status line and the headers in wire order. */
export interface ResponseHead {
  statusLine: string;
  status: number;
  headers: Array<[string, string]>;
}

/** Everything a server sent on one connection, decoded. */
export interface Exchange {
  head?: ResponseHead;
  /** The de-chunked (or Content-Length delimited) body. */
  body: string;
  /** Whether the body was terminated by its framing (last chunk, full length). */
  complete: boolean;
  /** WebSocket frames after a 101. */
  frames: Frame[];
  /** Whether the server closed the TCP connection. */
  eof: boolean;
}

/** Decodes what a server sent; `eof` says whether the connection has ended. */
export function parseExchange(bytes: Uint8Array, eof: boolean): Exchange {
  const empty = { body: "", complete: false, frames: [], eof };
  const headEnd = indexOf(bytes, CRLFCRLF);
  if (headEnd < 0) return empty;
  const head = parseHead(decoder.decode(bytes.subarray(0, headEnd)));
  const rest = bytes.subarray(headEnd + CRLFCRLF.length);
  if (head.status === 101) {
    return { ...empty, head, complete: true, frames: decodeFrames(rest).frames };
  }
  const header = (name: string) => head.headers.find(([n]) => n.toLowerCase() === name)?.[1];
  if (header("transfer-encoding")?.toLowerCase() === "chunked") {
    const { body, complete } = dechunk(rest);
    return { ...empty, head, body: decoder.decode(body), complete };
  }
  const length = header("content-length");
  if (length !== undefined) {
    const body = rest.subarray(0, Number(length));
    return { ...empty, head, body: decoder.decode(body), complete: body.length === Number(length) };
  }
  const bodiless = head.status === 204 || head.status === 304;
  return { ...empty, head, body: decoder.decode(rest), complete: bodiless || eof };
}

function parseHead(text: string): ResponseHead {
  const [statusLine, ...lines] = text.split("\r\n");
  const headers = lines.map((line): [string, string] => {
    const colon = line.indexOf(":");
    return [line.slice(0, colon), line.slice(colon + 1).trim()];
  });
  return { statusLine, status: Number(statusLine.split(" ")[1]), headers };
}

function dechunk(bytes: Uint8Array): { body: Uint8Array; complete: boolean } {
  const parts: Uint8Array[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = indexOf(bytes, CRLF, at);
    if (lineEnd < 0) break;
    const size = parseInt(decoder.decode(bytes.subarray(at, lineEnd)).split(";")[0], 16);
    const start = lineEnd + CRLF.length;
    if (size === 0) return { body: concat(parts), complete: indexOf(bytes, CRLF, start) >= 0 };
    if (start + size + CRLF.length > bytes.length) break;
    parts.push(bytes.subarray(start, start + size));
    at = start + size + CRLF.length;
  }
  return { body: concat(parts), complete: false };
}

/** One WebSocket frame, payload unmasked. */
export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
  /** The frame as it was on the wire. */
  bytes: Uint8Array;
}

/** Splits bytes into complete frames (masked or not); a partial tail is left over. */
export function decodeFrames(bytes: Uint8Array): { frames: Frame[]; used: number } {
  const frames: Frame[] = [];
  let at = 0;
  for (;;) {
    if (bytes.length - at < 2) break;
    const masked = (bytes[at + 1] & 0x80) !== 0;
    let length = bytes[at + 1] & 0x7f;
    let offset = at + 2;
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    if (length === 126 && bytes.length >= offset + 2) {
      [length, offset] = [view.getUint16(offset), offset + 2];
    } else if (length === 127 && bytes.length >= offset + 8) {
      [length, offset] = [Number(view.getBigUint64(offset)), offset + 8];
    } else if (length >= 126) break;
    const mask = masked ? bytes.subarray(offset, offset + 4) : undefined;
    if (mask) offset += 4;
    if (bytes.length < offset + length) break;
    const payload = bytes.slice(offset, offset + length);
    if (mask) payload.forEach((b, i) => payload[i] = b ^ mask[i % 4]);
    const fin = (bytes[at] & 0x80) !== 0;
    frames.push({
      fin,
      opcode: bytes[at] & 0x0f,
      payload,
      bytes: bytes.subarray(at, offset + length),
    });
    at = offset + length;
  }
  return { frames, used: at };
}

/** A frame as one readable line: `text …`, `close 1000 "reason"`, `close (no status)`. */
export function describeFrame(frame: Frame): string {
  const flags = frame.fin ? "" : "(not final) ";
  switch (frame.opcode) {
    case 0x1:
      return `${flags}text ${decoder.decode(frame.payload)}`;
    case 0x8: {
      if (frame.payload.length === 0) return `${flags}close (no status)`;
      const code = (frame.payload[0] << 8) | frame.payload[1];
      return `${flags}close ${code} ${JSON.stringify(decoder.decode(frame.payload.subarray(2)))}`;
    }
    default: {
      const hex = [...frame.payload].map((b) => b.toString(16).padStart(2, "0")).join("");
      return `${flags}opcode ${frame.opcode} ${hex}`;
    }
  }
}

/** A TCP connection that keeps every byte received and lets tests wait on them. */
export class RawConnection {
  bytes: Uint8Array = new Uint8Array(0);
  eof = false;
  readonly #conn: Deno.TcpConn;
  readonly #pump: Promise<void>;
  #waiters: Array<() => void> = [];

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#pump = this.#read();
  }

  static async open(port: number): Promise<RawConnection> {
    return new RawConnection(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    for (let at = 0; at < bytes.length;) at += await this.#conn.write(bytes.subarray(at));
  }

  /** Everything received so far, decoded. */
  exchange(): Exchange {
    return parseExchange(this.bytes, this.eof);
  }

  /** Resolves true once `check()` holds, or false after `timeoutMs`. */
  async until(check: (exchange: Exchange) => boolean, timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (check(this.exchange())) return true;
      if (this.eof || Date.now() >= deadline) return false;
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#waiters.push(resolve);
      const timer = setTimeout(resolve, deadline - Date.now());
      await promise;
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch {
      // already closed by the pump
    }
    await this.#pump;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  async #read(): Promise<void> {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        this.bytes = concat([this.bytes, buf.subarray(0, n)]);
        this.#notify();
      }
    } catch {
      // closed locally or reset: treated as the end
    }
    this.eof = true;
    this.#notify();
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve();
  }
}

const CRLF = encoder.encode("\r\n");
const CRLFCRLF = encoder.encode("\r\n\r\n");

function indexOf(haystack: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i <= haystack.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
