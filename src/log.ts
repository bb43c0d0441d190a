/**
 * Structured JSON-line logging. One record per line on stdout, level as a
 * string like pino's, fields merged in. Tokens must be redacted by callers
 * before they reach a record; `redactUrl` helps with query strings.
 * This module never reads the environment.
 *
 * @module
 */

export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
type Fields = Record<string, unknown>;

/** A logger bound to a set of context fields. */
export interface Logger {
  trace(msg: string, fields?: Fields): void;
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  fatal(msg: string, fields?: Fields): void;
  /** A logger that adds `fields` to every record. */
  child(fields: Fields): Logger;
}

const RANK: Record<LogLevel, number> = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: 100,
};

const encoder = new TextEncoder();

function stdoutSink(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let written = 0;
  while (written < bytes.length) written += Deno.stdout.writeSync(bytes.subarray(written));
}

/** Creates the root logger. `sink` receives each JSON line (default: stdout). */
export function createLogger(
  options: { level: LogLevel; name?: string; sink?: (line: string) => void },
): Logger {
  const min = RANK[options.level];
  const sink = options.sink ?? stdoutSink;
  const make = (base: Fields): Logger => {
    const emit = (level: Exclude<LogLevel, "silent">) => (msg: string, fields?: Fields) => {
      if (RANK[level] < min) return;
      const record: Fields = { level, time: Date.now(), name: options.name ?? "sluice", ...base };
      if (fields) {
        for (const [k, v] of Object.entries(fields)) {
          record[k] = v instanceof Error ? errorFields(v) : v;
        }
      }
      record.msg = msg;
      sink(JSON.stringify(record));
    };
    return {
      trace: emit("trace"),
      debug: emit("debug"),
      info: emit("info"),
      warn: emit("warn"),
      error: emit("error"),
      fatal: emit("fatal"),
      child: (fields) => make({ ...base, ...fields }),
    };
  };
  return make({});
}

function errorFields(err: Error): Fields {
  return { type: err.name, message: err.message };
}

/** A logger that drops everything (for tests and tools). */
export const silentLogger: Logger = createLogger({ level: "silent" });

/** `access_token=…` in a URL or query string becomes `access_token=[Redacted]`. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]access_token=)[^&#]*/g, "$1[Redacted]");
}
