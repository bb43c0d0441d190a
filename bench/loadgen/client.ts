/**
 * One listening load client over a raw TCP (or TLS) connection: an SSE GET
 * with a bearer token, or a WebSocket handshake with `access_token` in the
 * query. It reads into one reused buffer, strips HTTP chunking or WebSocket
 * framing, answers pings, and hands stream bytes straight to a marker
 * scanner that records latencies into the shared {@link LoadStats}. A slow
 * client sends its request and then never reads.
 *
 * @module
 */
import { Histogram } from "./histogram.ts";
import { type HttpHead, HttpResponseReader, MarkerScanner } from "./scan.ts";
import { encodeClientFrame, Opcode, randomKey, WsFrameParser } from "./ws.ts";

/** One client's wire protocol. */
export type Transport = "sse" | "ws";

/** Where and how a client connects. */
export interface ClientSpec {
  transport: Transport;
  hostname: string;
  port: number;
  tls: boolean;
  /** Request path with query, without the token. */
  path: string;
  token: string;
  readBufferBytes: number;
}

/** µs since the epoch, the unit of the markers. */
export function nowMicros(): number {
  return (performance.timeOrigin + performance.now()) * 1000;
}

/** Counters every client of a run writes into (one object, no per-client closures for it). */
export class LoadStats {
  /** Time (µs) of the read being parsed right now. */
  now = 0;
  /** Streams opened and connection attempts failed so far (for progress lines). */
  opened = 0;
  failed = 0;
  delivered = 0;
  readonly latency = new Histogram();
  readonly disconnects: Record<Transport, number> = { sse: 0, ws: 0 };
  readonly closeCodes: Record<string, number> = {};
  #target = Infinity;
  #reached: PromiseWithResolvers<void> | undefined;

  /** Records a marker read at `now`. */
  readonly record = (micros: number): void => {
    this.latency.record(this.now - micros);
    if (++this.delivered === this.#target) this.#reached?.resolve();
  };

  /** Resolves once `target` deliveries have been recorded. */
  deliveriesReached(target: number): Promise<void> {
    this.#target = target;
    this.#reached = Promise.withResolvers();
    if (this.delivered >= target) this.#reached.resolve();
    return this.#reached.promise;
  }
}

/** The request bytes a client sends. */
export function requestFor(spec: ClientSpec): Uint8Array {
  const host = `${spec.hostname.includes(":") ? `[${spec.hostname}]` : spec.hostname}:${spec.port}`;
  const lines = spec.transport === "sse"
    ? [
      `GET ${spec.path} HTTP/1.1`,
      `Host: ${host}`,
      `Authorization: Bearer ${spec.token}`,
      "Accept: text/event-stream",
      "Cache-Control: no-cache",
    ]
    : [
      `GET ${spec.path}${spec.path.includes("?") ? "&" : "?"}access_token=${
        encodeURIComponent(spec.token)
      } HTTP/1.1`,
      `Host: ${host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${randomKey()}`,
      "Sec-WebSocket-Version: 13",
    ];
  return new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n");
}

/** Short reason for a failed or lost connection. */
export function describeFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  return error.name === "Error" ? error.message : `${error.name}: ${error.message}`;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) offset += await conn.write(bytes.subarray(offset));
}

function connect(spec: ClientSpec): Promise<Deno.Conn> {
  const { hostname, port } = spec;
  return spec.tls ? Deno.connectTls({ hostname, port }) : Deno.connect({ hostname, port });
}

/** Connection state of a client. */
export type ClientState = "new" | "connecting" | "open" | "failed" | "closed";

/** A listening client; `open()` connects, `close()` hangs up. */
export class StreamClient {
  readonly spec: ClientSpec;
  state: ClientState = "new";
  /** ms from connect start to the first stream byte (SSE) or the 101 (WebSocket). */
  connectMs: number | undefined;
  failure: string | undefined;
  /** Markers this client has read (every message published while it listened should be one). */
  delivered = 0;
  readonly #stats: LoadStats;
  #conn: Deno.Conn | undefined;
  #started = 0;
  #opened = Promise.withResolvers<boolean>();
  #writes: Promise<void> = Promise.resolve();
  #reading: Promise<void> = Promise.resolve();

  constructor(spec: ClientSpec, stats: LoadStats) {
    this.spec = spec;
    this.#stats = stats;
  }

  /** Connects and waits until the stream is open; false (with `failure`) if it is not. */
  async open(timeoutMs: number): Promise<boolean> {
    this.state = "connecting";
    this.#started = performance.now();
    const timer = setTimeout(() => this.#fail("timed out"), timeoutMs);
    try {
      this.#conn = await connect(this.spec);
      if (this.state !== "connecting") this.#conn.close();
      else {
        await writeAll(this.#conn, requestFor(this.spec));
        this.#reading = this.#readLoop(this.#conn);
      }
    } catch (error) {
      this.#fail(describeFailure(error));
    }
    const ok = await this.#opened.promise;
    clearTimeout(timer);
    return ok;
  }

  /** Connects and sends the request, then never reads. */
  async openSlow(): Promise<boolean> {
    this.state = "connecting";
    try {
      this.#conn = await connect(this.spec);
      await writeAll(this.#conn, requestFor(this.spec));
      this.state = "open";
      return true;
    } catch (error) {
      this.#fail(describeFailure(error));
      return false;
    }
  }

  /**
   * For a slow client: reads what piled up until the server ends the stream
   * or sends a WebSocket close frame ("cut"), or until `deadline` (ms,
   * performance.now) passes ("open").
   */
  async drainUntil(deadline: number): Promise<"cut" | "open"> {
    const conn = this.#conn;
    if (conn === undefined || this.state !== "open") return "cut";
    let closeFrame = false;
    const frames = new WsFrameParser({ data() {}, ping() {}, close: () => closeFrame = true });
    const reader = new HttpResponseReader(() => {}, (buf, start, end) => {
      if (this.spec.transport === "ws") frames.push(buf, start, end);
    });
    const buf = new Uint8Array(65536);
    const late = Promise.withResolvers<"late">();
    const timer = setTimeout(() => late.resolve("late"), Math.max(0, deadline - performance.now()));
    try {
      while (!closeFrame) {
        const n = await Promise.race([conn.read(buf), late.promise]);
        if (n === "late") return "open";
        if (n === null) break;
        reader.push(buf, 0, n);
      }
      return "cut";
    } catch {
      return "cut";
    } finally {
      clearTimeout(timer);
      this.close();
    }
  }

  /** Settles once the client has stopped reading (after `close()` or a server hang-up). */
  get finished(): Promise<void> {
    return Promise.all([this.#reading, this.#writes]).then(() => {});
  }

  /** Hangs up (not counted as a server disconnect). */
  close(): void {
    if (this.state === "connecting") this.#fail("closed before open");
    if (this.state === "open") this.state = "closed";
    try {
      this.#conn?.close();
    } catch {
      // already closed
    }
    this.#conn = undefined;
  }

  #markOpen(): void {
    if (this.state !== "connecting") return;
    this.state = "open";
    this.connectMs = performance.now() - this.#started;
    this.#stats.opened++;
    this.#opened.resolve(true);
  }

  #fail(reason: string): void {
    if (this.state !== "connecting") return;
    this.state = "failed";
    this.failure = reason;
    this.#stats.failed++;
    this.#opened.resolve(false);
    try {
      this.#conn?.close();
    } catch {
      // already closed
    }
    this.#conn = undefined;
  }

  async #readLoop(conn: Deno.Conn): Promise<void> {
    const buf = new Uint8Array(this.spec.readBufferBytes);
    const reader = this.#responseReader();
    const stats = this.#stats;
    let reason = "closed by server";
    try {
      while (this.#conn === conn) {
        const n = await conn.read(buf);
        if (n === null) break;
        stats.now = nowMicros();
        reader.push(buf, 0, n);
      }
    } catch (error) {
      reason = describeFailure(error);
    }
    if (this.#conn !== conn) return;
    this.#fail(reason);
    if (this.state === "open") {
      this.state = "closed";
      stats.disconnects[this.spec.transport]++;
      this.close();
    }
  }

  #responseReader(): HttpResponseReader {
    const record = this.#stats.record;
    const scanner = new MarkerScanner((micros) => {
      this.delivered++;
      record(micros);
    });
    if (this.spec.transport === "sse") {
      return new HttpResponseReader((head) => this.#checkHead(head, 200), (buf, start, end) => {
        this.#markOpen();
        scanner.scan(buf, start, end);
      });
    }
    const frames = new WsFrameParser({
      data: (buf, start, end) => scanner.scan(buf, start, end),
      ping: (payload) => this.#send(encodeClientFrame(Opcode.Pong, payload)),
      close: (code) => this.#serverClosed(code),
    });
    return new HttpResponseReader((head) => {
      if (this.#checkHead(head, 101)) this.#markOpen();
    }, (buf, start, end) => frames.push(buf, start, end));
  }

  #checkHead(head: HttpHead, expected: number): boolean {
    if (head.status === expected) return true;
    this.#fail(`HTTP ${head.status}`);
    return false;
  }

  #serverClosed(code: number): void {
    const codes = this.#stats.closeCodes;
    codes[code] = (codes[code] ?? 0) + 1;
    const reply = new Uint8Array([code >> 8, code & 0xff]);
    this.#send(encodeClientFrame(Opcode.Close, code === 1005 ? new Uint8Array(0) : reply));
  }

  #send(frame: Uint8Array): void {
    const conn = this.#conn;
    if (conn === undefined) return;
    this.#writes = this.#writes.then(() => writeAll(conn, frame)).catch(() => {});
  }
}
