/**
 * Real clients for integration tests: an SSE reader over `fetch`, a
 * WebSocket wrapper that queues frames and close events, and a raw TCP
 * exchange for byte-level comparisons. Waiting is event-driven.
 *
 * @module
 */

const decoder = new TextDecoder();

/** Resolves when `check()` becomes true after one of the `notify` calls. */
export class Waiters {
  #waiters: Array<() => void> = [];
  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
  async until<T>(check: () => T | undefined, what: string, timeoutMs = 5000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value !== undefined) return value;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#waiters.push(resolve);
      const timer = setTimeout(resolve, left);
      await promise;
      clearTimeout(timer);
    }
  }
}

/**
 * An EventSource-style reader that keeps every byte received. The response
 * ends either cleanly (the server finished the body) or with an error (reset,
 * aborted, cut mid-chunk): `ended` is set either way, `error` only for the
 * second, so a test of a graceful end asserts `endedCleanly`.
 */
export class SseReader {
  text = "";
  ended = false;
  /** Why the body failed, when it did not end cleanly. */
  error?: unknown;
  #cancelled = false;
  readonly #waiters = new Waiters();
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #done: Promise<void>;

  constructor(readonly response: Response) {
    this.#reader = response.body!.getReader();
    this.#done = this.#pump();
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<SseReader> {
    return new SseReader(await fetch(url, { headers }));
  }

  async #pump(): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        this.text += decoder.decode(value, { stream: true });
        this.#waiters.notify();
      }
    } catch (error) {
      if (!this.#cancelled) this.error = error ?? new Error("the body failed");
    }
    this.ended = true;
    this.#waiters.notify();
  }

  /** Whether the server finished the body (not reset, aborted or cut). */
  get endedCleanly(): boolean {
    return this.ended && this.error === undefined;
  }

  /** Waits until the body contains `needle` (counting from `from`). */
  contains(needle: string, from = 0): Promise<number> {
    return this.#waiters.until(() => {
      const at = this.text.indexOf(needle, from);
      return at < 0 ? undefined : at;
    }, JSON.stringify(needle));
  }

  /** Waits until the response ends, cleanly or not (see `endedCleanly`). */
  async end(): Promise<void> {
    await this.#waiters.until(() => this.ended || undefined, "end of stream");
  }

  async close(): Promise<void> {
    this.#cancelled = true;
    await this.#reader.cancel().catch(() => {});
    await this.#done;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** A WebSocket that queues text frames and remembers how it closed. */
export class WsClient {
  readonly frames: string[] = [];
  closeEvent?: CloseEvent;
  readonly #waiters = new Waiters();
  #read = 0;

  private constructor(readonly socket: WebSocket) {
    socket.onmessage = (e) => {
      this.frames.push(String(e.data));
      this.#waiters.notify();
    };
    socket.onclose = (e) => {
      this.closeEvent = e;
      this.#waiters.notify();
    };
  }

  static async open(url: string, protocols?: string | string[]): Promise<WsClient> {
    const socket = new WebSocket(url, protocols);
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    socket.onopen = () => resolve();
    socket.onerror = (e) => reject(new Error(`WebSocket failed: ${(e as ErrorEvent).message}`));
    await promise;
    return new WsClient(socket);
  }

  send(data: string | ArrayBuffer): void {
    this.socket.send(data);
  }

  /** The next frame not yet returned by `next()`. */
  next(): Promise<string> {
    return this.#waiters.until(
      () => this.#read < this.frames.length ? this.frames[this.#read++] : undefined,
      "a WebSocket frame",
    );
  }

  /** Waits for the close event. */
  closed(): Promise<CloseEvent> {
    return this.#waiters.until(() => this.closeEvent, "WebSocket close");
  }

  async close(): Promise<void> {
    if (this.closeEvent) return;
    this.socket.close();
    await this.closed();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Sends raw bytes and returns everything received until the server closes
 * or `until` matches the text so far.
 */
export async function rawExchange(
  port: number,
  request: string,
  until?: (received: string) => boolean,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(request));
    let received = "";
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      received += decoder.decode(buf.subarray(0, n), { stream: true });
      if (until?.(received)) break;
    }
    return received;
  } finally {
    conn.close();
  }
}
