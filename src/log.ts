/**
 * Structured JSON-line logging. One record per line on stdout, shaped like
 * pino's: level as a string, `time`, `pid`, `hostname`, `name`, the fields,
 * `msg`. Tokens must be redacted by callers before they reach a record;
 * `redactUrl` does it for a request URL from its parsed query.
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

/**
 * `pid` and `hostname` as pino writes them on every record. The host name
 * needs `--allow-sys=hostname`; without it (never prompting) the field is left out.
 */
function processFields(): Fields {
  try {
    const sys = Deno.permissions.querySync({ name: "sys", kind: "hostname" });
    if (sys.state === "granted") return { pid: Deno.pid, hostname: Deno.hostname() };
  } catch {
    // no permission API (or no host name): the pid alone
  }
  return { pid: Deno.pid };
}

/** Creates the root logger. `sink` receives each JSON line (default: stdout). */
export function createLogger(
  options: { level: LogLevel; name?: string; sink?: (line: string) => void },
): Logger {
  const min = RANK[options.level];
  const sink = options.sink ?? stdoutSink;
  const origin = min < RANK.silent ? processFields() : {};
  const name = options.name ?? "sluice";
  const make = (base: Fields): Logger => {
    const emit = (level: Exclude<LogLevel, "silent">) => (msg: string, fields?: Fields) => {
      if (RANK[level] < min) return;
      const record: Fields = { level, time: Date.now(), ...origin, name, ...base };
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

/** Query parameters whose values are secrets (Mastodon's token parameter). */
const SECRET_PARAMETERS: ReadonlySet<string> = new Set(["access_token"]);
const REDACTED = "[Redacted]";

/**
 * The path and query of `url` for a log record: each query pair whose name,
 * parsed as `URLSearchParams` parses it (so `access%5Ftoken` too) and in any
 * letter case, is a secret parameter becomes `<name as sent>=[Redacted]`; every other pair is kept as sent.
 */
export function redactUrl(url: URL): string {
  if (url.search.length <= 1) return url.pathname;
  const pairs = url.search.slice(1).split("&").map((pair) => {
    const [parsed] = new URLSearchParams("&" + pair); // "&": a leading "?" is not stripped
    if (parsed === undefined || !SECRET_PARAMETERS.has(parsed[0].toLowerCase())) return pair;
    const equals = pair.indexOf("=");
    return `${equals < 0 ? pair : pair.slice(0, equals)}=${REDACTED}`;
  });
  return `${url.pathname}?${pairs.join("&")}`;
}
