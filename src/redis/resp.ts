/**
 * The RESP2 wire: an incremental reply parser, the command encoder, a socket
 * that speaks them (TCP, TLS through `_tls.ts`, or unix), and the two errors
 * callers of the Redis classes see. Knows nothing about AUTH, pub/sub or
 * reconnecting (`connection.ts`) and never parses message payloads.
 *
 * @module
 */
import type { ExtraCa } from "../tls.ts";
import { startTls } from "./_tls.ts";

/** One decoded reply. Bulk strings are UTF-8 decoded; nulls stay `null`. */
export type RespValue = string | number | null | RedisReplyError | RespValue[];

/** An error reply (`-ERR …`) from Redis. */
export class RedisReplyError extends Error {
  override name = "RedisReplyError";
}

/** Redis is not connected (or the connection was lost before the reply came). */
export class RedisConnectionError extends Error {
  override name = "RedisConnectionError";
}

const CR = 13;
const LF = 10;
const textEncoder = new TextEncoder();

interface ArrayFrame {
  items: RespValue[];
  remaining: number;
}

interface PartialBulk {
  /** Payload plus its trailing CRLF. */
  bytes: Uint8Array;
  filled: number;
}

/**
 * Incremental RESP2 reply parser. Chunks may split replies anywhere and hold
 * many replies. A chunk is never retained, so the caller may reuse its buffer.
 * A bulk string is decoded straight from the chunk when it fits, else copied
 * once into a buffer of its final size.
 */
export class RespParser {
  readonly #decoder = new TextDecoder();
  readonly #stack: ArrayFrame[] = [];
  /** An unfinished header line (type byte up to CRLF), copied. */
  #line: Uint8Array | undefined;
  #bulk: PartialBulk | undefined;

  /** Parses `chunk` and appends every completed top-level reply to `out`. */
  push(chunk: Uint8Array, out: RespValue[]): void {
    let pos = 0;
    if (this.#line !== undefined) {
      const lf = chunk.indexOf(LF);
      if (lf === -1) {
        this.#line = join(this.#line, chunk);
        return;
      }
      const line = join(this.#line, chunk.subarray(0, lf + 1));
      this.#line = undefined;
      if (line[line.length - 2] !== CR) throw new SyntaxError("RESP header line not ended by CRLF");
      this.#parse(line, 0, out); // one header; only the header is copied, never a payload
      pos = lf + 1;
    }
    if (this.#bulk !== undefined) {
      pos += this.#fillBulk(chunk.subarray(pos), out);
      if (this.#bulk !== undefined) return;
    }
    this.#parse(chunk, pos, out);
  }

  #parse(data: Uint8Array, start: number, out: RespValue[]): void {
    let pos = start;
    while (pos < data.length) {
      const eol = data.indexOf(CR, pos);
      if (eol === -1 || eol + 1 >= data.length) {
        this.#line = data.slice(pos);
        return;
      }
      if (data[eol + 1] !== LF) throw new SyntaxError("RESP header line not ended by CRLF");
      const type = data[pos];
      const next = eol + 2;
      if (type === 0x24 /* $ */) {
        pos = this.#bulkString(data, parseInteger(data, pos + 1, eol), next, out);
      } else if (type === 0x2a /* * */) {
        this.#array(parseInteger(data, pos + 1, eol), out);
        pos = next;
      } else {
        this.#emit(this.#simple(type, data, pos + 1, eol), out);
        pos = next;
      }
    }
  }

  #simple(type: number, data: Uint8Array, from: number, to: number): RespValue {
    switch (type) {
      case 0x2b /* + */:
        return this.#decoder.decode(data.subarray(from, to));
      case 0x2d /* - */:
        return new RedisReplyError(this.#decoder.decode(data.subarray(from, to)));
      case 0x3a /* : */:
        return parseInteger(data, from, to);
      default:
        throw new SyntaxError(`Unexpected RESP type byte 0x${type.toString(16)}`);
    }
  }

  /** Handles a `$<length>` header; returns the position after what it consumed. */
  #bulkString(data: Uint8Array, length: number, start: number, out: RespValue[]): number {
    if (length < 0) {
      this.#emit(null, out);
      return start;
    }
    const end = start + length;
    if (end + 2 <= data.length) {
      checkCrlf(data, end);
      this.#emit(this.#decoder.decode(data.subarray(start, end)), out);
      return end + 2;
    }
    this.#bulk = { bytes: new Uint8Array(length + 2), filled: 0 };
    return this.#fillBulk(data.subarray(start), out) + start;
  }

  /** Copies into the partial bulk string; returns how many bytes of `data` it took. */
  #fillBulk(data: Uint8Array, out: RespValue[]): number {
    const bulk = this.#bulk!;
    const take = Math.min(bulk.bytes.length - bulk.filled, data.length);
    bulk.bytes.set(data.subarray(0, take), bulk.filled);
    bulk.filled += take;
    if (bulk.filled < bulk.bytes.length) return take;
    this.#bulk = undefined;
    const end = bulk.bytes.length - 2;
    checkCrlf(bulk.bytes, end);
    this.#emit(this.#decoder.decode(bulk.bytes.subarray(0, end)), out);
    return take;
  }

  #array(length: number, out: RespValue[]): void {
    if (length < 0) this.#emit(null, out);
    else if (length === 0) this.#emit([], out);
    else this.#stack.push({ items: [], remaining: length });
  }

  /** Adds a finished value to the innermost open array, closing arrays as they fill. */
  #emit(value: RespValue, out: RespValue[]): void {
    let done = value;
    while (this.#stack.length > 0) {
      const frame = this.#stack[this.#stack.length - 1];
      frame.items.push(done);
      if (--frame.remaining > 0) return;
      this.#stack.pop();
      done = frame.items;
    }
    out.push(done);
  }
}

function join(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function parseInteger(data: Uint8Array, from: number, to: number): number {
  const negative = data[from] === 0x2d;
  let i = negative ? from + 1 : from;
  if (i >= to) throw new SyntaxError("Empty RESP integer");
  let n = 0;
  for (; i < to; i++) {
    const digit = data[i] - 0x30;
    if (digit < 0 || digit > 9) throw new SyntaxError("Invalid digit in RESP integer");
    n = n * 10 + digit;
  }
  return negative ? -n : n;
}

function checkCrlf(data: Uint8Array, at: number): void {
  if (data[at] !== CR || data[at + 1] !== LF) {
    throw new SyntaxError("RESP bulk string not followed by CRLF");
  }
}

/** Encodes a command as a RESP array of bulk strings. */
export function encodeCommand(args: string[]): Uint8Array {
  const encoded = args.map((arg) => textEncoder.encode(arg));
  const headers = encoded.map((bytes) => textEncoder.encode(`$${bytes.length}\r\n`));
  const head = textEncoder.encode(`*${args.length}\r\n`);
  let size = head.length;
  for (let i = 0; i < encoded.length; i++) size += headers[i].length + encoded[i].length + 2;
  const out = new Uint8Array(size);
  out.set(head);
  let pos = head.length;
  for (let i = 0; i < encoded.length; i++) {
    out.set(headers[i], pos);
    pos += headers[i].length;
    out.set(encoded[i], pos);
    pos += encoded[i].length;
    out[pos++] = CR;
    out[pos++] = LF;
  }
  return out;
}

/** Where a Redis server listens; `extraCa` is trusted besides the built-in roots for TLS. */
export type RespEndpoint =
  | { kind: "tcp"; host: string; port: number; tls: boolean; extraCa?: ExtraCa }
  | { kind: "unix"; path: string };

const READ_BUFFER_BYTES = 256 * 1024;

/** One socket speaking RESP2: pipelined writes, replies read in order. */
export class RespConnection {
  readonly #conn: Deno.Conn;
  readonly #parser = new RespParser();
  readonly #buffer = new Uint8Array(READ_BUFFER_BYTES);
  #ready: RespValue[] = [];
  #head = 0;
  #outbox: Uint8Array[] = [];
  #flushing = false;
  #closed = false;
  #writeError: unknown;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Connects (TCP with keep-alive, TLS on top of it, or a unix socket). */
  static async open(endpoint: RespEndpoint, signal: AbortSignal): Promise<RespConnection> {
    signal.throwIfAborted();
    if (endpoint.kind === "unix") {
      return new RespConnection(await Deno.connect({ transport: "unix", path: endpoint.path }));
    }
    const tcp = await Deno.connect({ hostname: endpoint.host, port: endpoint.port, signal });
    tcp.setKeepAlive(true);
    if (!endpoint.tls) return new RespConnection(tcp);
    return new RespConnection(await startTls(tcp, endpoint, signal));
  }

  /** Queues a command; writes are batched. A write failure closes the connection. */
  send(args: string[]): void {
    if (this.#closed) return;
    this.#outbox.push(encodeCommand(args));
    if (!this.#flushing) void this.#flush();
  }

  /** The next reply, or `undefined` once the server has closed the connection. */
  async read(): Promise<RespValue | undefined> {
    while (this.#head === this.#ready.length) {
      this.#ready = [];
      this.#head = 0;
      let n: number | null;
      try {
        n = await this.#conn.read(this.#buffer);
      } catch (err) {
        throw this.#writeError ?? err;
      }
      if (n === null) return undefined;
      this.#parser.push(this.#buffer.subarray(0, n), this.#ready);
    }
    const reply = this.#ready[this.#head];
    this.#ready[this.#head++] = null;
    return reply;
  }

  /** Sends one command and reads one reply (only while nothing else is in flight). */
  async call(args: string[]): Promise<RespValue> {
    this.send(args);
    const reply = await this.read();
    if (reply === undefined) throw new Deno.errors.UnexpectedEof("Redis closed the connection");
    return reply;
  }

  /** Closes the socket; a pending `read()` then rejects. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed (for example by the connect signal).
    }
  }

  async #flush(): Promise<void> {
    this.#flushing = true;
    try {
      while (this.#outbox.length > 0 && !this.#closed) {
        const batch = concat(this.#outbox);
        this.#outbox = [];
        let written = 0;
        while (written < batch.length) written += await this.#conn.write(batch.subarray(written));
      }
    } catch (err) {
      this.#writeError = err;
      this.close(); // the pending read() rejects with this error
    } finally {
      this.#flushing = false;
    }
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let pos = 0;
  for (const part of parts) {
    out.set(part, pos);
    pos += part.length;
  }
  return out;
}
