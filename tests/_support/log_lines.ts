/**
 * Sluice's JSON log lines, kept so a test can wait for one: from an
 * in-process Sluice (pass `logger()` to `startSluice`) or from a child
 * process's stdout (`follow`). Lets tests wait for what Sluice noticed (a
 * lost connection, a shutdown deadline) instead of sleeping.
 *
 * @module
 */
import { createLogger, type Logger, type LogLevel } from "../../src/log.ts";
import { Waiters } from "./clients.ts";

/** One parsed log line: level, msg and the context fields. */
export type LogRecord = Record<string, unknown> & { level?: string; msg?: string };

/** Log records in arrival order, with a way to wait for one. */
export class LogLines {
  readonly records: LogRecord[] = [];
  /** Lines that were not JSON (a crash trace, a stray print). */
  readonly other: string[] = [];
  readonly #waiters = new Waiters();
  readonly #echo = Deno.env.get("SLUICE_TEST_LOG") !== undefined;

  /** A logger writing here, for an in-process Sluice. */
  logger(level: LogLevel = "debug"): Logger {
    return createLogger({ level, sink: (line) => this.add(line) });
  }

  /** Keeps one line. */
  add(line: string): void {
    if (this.#echo) console.log(line);
    try {
      this.records.push(JSON.parse(line));
    } catch {
      if (line.trim() !== "") this.other.push(line);
    }
    this.#waiters.notify();
  }

  /** Keeps every line of `stream` (a child's stdout); resolves when it ends. */
  async follow(stream: ReadableStream<Uint8Array>): Promise<void> {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      const lines = (pending + chunk).split("\n");
      pending = lines.pop()!;
      for (const line of lines) this.add(line);
    }
    if (pending !== "") this.add(pending);
  }

  /** Waits for a record from index `from` on that satisfies `match`. */
  find(
    match: (record: LogRecord) => boolean,
    what: string,
    options: { from?: number; timeoutMs?: number } = {},
  ): Promise<LogRecord> {
    return this.#waiters.until(
      () => this.records.slice(options.from ?? 0).find(match),
      `a log record: ${what}`,
      options.timeoutMs ?? 10_000,
    );
  }

  /** Records that satisfy `match`. */
  filter(match: (record: LogRecord) => boolean): LogRecord[] {
    return this.records.filter(match);
  }
}
