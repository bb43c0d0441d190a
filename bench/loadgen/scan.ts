/**
 * Byte-level readers for the load clients: the marker scanner, the HTTP
 * response head, the chunked transfer decoder and the WebSocket frame parser.
 * All of them are push parsers fed `(buffer, start, end)` slices of a reused
 * read buffer, keep their state across any split, and never decode payloads
 * to strings. Nothing here does I/O.
 *
 * @module
 */
import { MARKER_DIGITS, MARKER_PREFIX } from "../messages.ts";

const PREFIX = new TextEncoder().encode(MARKER_PREFIX);
const MARKER_LENGTH = PREFIX.length + MARKER_DIGITS;
const CR = 13;
const LF = 10;
const ZERO = 48;
const NINE = 57;

/** Finds `BENCHTS<16 digits>` in a byte stream and reports each timestamp (µs). */
export class MarkerScanner {
  #matched = 0;
  #value = 0;
  readonly #onMarker: (micros: number) => void;

  constructor(onMarker: (micros: number) => void) {
    this.#onMarker = onMarker;
  }

  /** Scans `buf[start, end)`; a marker may continue in the next call. */
  scan(buf: Uint8Array, start: number, end: number): void {
    let i = start;
    while (i < end) {
      if (this.#matched === 0) {
        const at = buf.subarray(i, end).indexOf(PREFIX[0]);
        if (at < 0) return;
        i += at + 1;
        this.#matched = 1;
        continue;
      }
      if (this.#step(buf[i])) i++;
    }
  }

  /** Advances on one byte; false when the byte must be looked at again as a new start. */
  #step(byte: number): boolean {
    if (this.#matched < PREFIX.length) {
      if (byte === PREFIX[this.#matched]) {
        this.#matched++;
        return true;
      }
    } else if (byte >= ZERO && byte <= NINE) {
      this.#value = this.#value * 10 + byte - ZERO;
      if (++this.#matched === MARKER_LENGTH) {
        const value = this.#value;
        this.#matched = this.#value = 0;
        this.#onMarker(value);
      }
      return true;
    }
    this.#matched = this.#value = 0;
    return false;
  }
}

/** Status and framing of an HTTP/1.1 response head. */
export interface HttpHead {
  status: number;
  chunked: boolean;
  headers: Map<string, string>;
}

const HEAD_LIMIT = 16 * 1024;

/** Reads an HTTP response head, then hands the body (de-chunked when chunked) to `onBody`. */
export class HttpResponseReader {
  head: HttpHead | undefined;
  #headBytes: number[] = [];
  #chunks: ChunkedDecoder | undefined;
  readonly #onHead: (head: HttpHead) => void;
  readonly #onBody: (buf: Uint8Array, start: number, end: number) => void;

  constructor(
    onHead: (head: HttpHead) => void,
    onBody: (buf: Uint8Array, start: number, end: number) => void,
  ) {
    this.#onHead = onHead;
    this.#onBody = onBody;
  }

  /** Feeds bytes; throws SyntaxError when the head is not HTTP or too long. */
  push(buf: Uint8Array, start: number, end: number): void {
    let i = start;
    if (this.head === undefined) {
      i = this.#readHead(buf, start, end);
      if (this.head === undefined) return;
    }
    if (i >= end) return;
    if (this.#chunks) this.#chunks.push(buf, i, end);
    else this.#onBody(buf, i, end);
  }

  #readHead(buf: Uint8Array, start: number, end: number): number {
    const bytes = this.#headBytes;
    for (let i = start; i < end; i++) {
      bytes.push(buf[i]);
      const n = bytes.length;
      if (buf[i] === LF && n >= 4 && bytes[n - 2] === CR && bytes[n - 3] === LF) {
        this.head = parseHead(new TextDecoder().decode(new Uint8Array(bytes)));
        this.#headBytes = [];
        if (this.head.chunked) this.#chunks = new ChunkedDecoder(this.#onBody);
        this.#onHead(this.head);
        return i + 1;
      }
    }
    if (bytes.length > HEAD_LIMIT) throw new SyntaxError("HTTP response head too long");
    return end;
  }
}

/** Parses `HTTP/1.1 200 OK\r\nName: value\r\n…`; header names lower-cased. */
export function parseHead(text: string): HttpHead {
  const lines = text.split("\r\n");
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
  if (!match) throw new SyntaxError(`Not an HTTP response: ${JSON.stringify(lines[0])}`);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  const encoding = headers.get("transfer-encoding") ?? "";
  return { status: Number(match[1]), chunked: /\bchunked\b/i.test(encoding), headers };
}

/** Chunked decoder states. */
const Chunk = { Size: 0, Extension: 1, Data: 2, DataEnd: 3, Done: 4 } as const;

/** Strips `Transfer-Encoding: chunked` framing; chunk data goes to `onData` as slices. */
export class ChunkedDecoder {
  #state: number = Chunk.Size;
  #size = 0;
  #remaining = 0;
  readonly #onData: (buf: Uint8Array, start: number, end: number) => void;

  constructor(onData: (buf: Uint8Array, start: number, end: number) => void) {
    this.#onData = onData;
  }

  /** Whether the terminating zero-length chunk has been seen. */
  get done(): boolean {
    return this.#state === Chunk.Done;
  }

  push(buf: Uint8Array, start: number, end: number): void {
    let i = start;
    while (i < end && this.#state !== Chunk.Done) {
      if (this.#state === Chunk.Data) {
        const n = Math.min(this.#remaining, end - i);
        this.#onData(buf, i, i + n);
        i += n;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#state = Chunk.DataEnd;
        continue;
      }
      this.#control(buf[i++]);
    }
  }

  /** One byte of a size line or of the CRLF after chunk data. */
  #control(byte: number): void {
    if (this.#state === Chunk.DataEnd) {
      if (byte === LF) this.#state = Chunk.Size;
      return;
    }
    if (byte === LF) {
      this.#remaining = this.#size;
      this.#size = 0;
      this.#state = this.#remaining === 0 ? Chunk.Done : Chunk.Data;
      return;
    }
    const digit = this.#state === Chunk.Size ? hexDigit(byte) : -1;
    if (digit >= 0) this.#size = this.#size * 16 + digit;
    else this.#state = Chunk.Extension;
  }
}

function hexDigit(byte: number): number {
  if (byte >= ZERO && byte <= NINE) return byte - ZERO;
  const lower = byte | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}
