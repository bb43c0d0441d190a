/**
 * Mastodon's streaming environment variables → one frozen Config.
 *
 * Owns the variable names, their defaults (production and development) and
 * what each value may be; env files are read by `_env_file.ts` and connection
 * URLs split by `_connection_url.ts`. `parseConfig` is pure and reads only
 * through the getter it is given; `loadConfig` is the only place in the
 * project that touches `Deno.env`. This module never opens a connection and
 * never logs: errors are `ConfigError`s whose one-line message names the
 * variable and the bad value (never a password).
 *
 * @module
 */
import { splitUrl } from "./_connection_url.ts";
import { envFileName, environment, type Getter, type TextFileReader } from "./_env_file.ts";
import { ConfigError } from "./errors.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";
import { compileTrust } from "./proxy_addr.ts";
import type { ExtraCa } from "./tls.ts";

export { ConfigError } from "./errors.ts";
export type { Getter, TextFileReader } from "./_env_file.ts";

/** Where to listen. */
export type Listen =
  | { kind: "tcp"; hostname: string; port: number }
  | { kind: "unix"; path: string };

/** Options handed to the PostgreSQL pool (node-postgres names). */
export interface PostgresConfig {
  user?: string;
  password?: string;
  /** Host name, or a directory holding the server's unix socket. */
  host?: string;
  port?: number;
  database?: string;
  /** false: no TLS; object: TLS with these options. Undefined: driver default. */
  ssl?: false | { rejectUnauthorized: boolean; ca?: string; cert?: string; key?: string };
  options?: string;
  /** DB_POOL */
  max: number;
  /**
   * NODE_EXTRA_CA_CERTS, named in errors; the runtime itself trusts it for
   * node:tls besides the built-in roots (unless `ssl.ca` replaces them).
   */
  extraCa?: ExtraCa;
}

export interface RedisEndpoint {
  host: string;
  port: number;
}

/** How to reach Redis. */
export interface RedisConfig {
  /** tcp: host/port (tls for rediss://); unix: socket path; sentinel: ask the sentinels. */
  mode: "tcp" | "unix" | "sentinel";
  host: string;
  port: number;
  path?: string;
  tls: boolean;
  db: number;
  username?: string;
  password?: string;
  sentinels?: RedisEndpoint[];
  sentinelMaster?: string;
  sentinelUsername?: string;
  sentinelPassword?: string;
  /** NODE_EXTRA_CA_CERTS, trusted besides the built-in roots for rediss://. */
  extraCa?: ExtraCa;
}

/** The whole configuration, parsed once and frozen. */
export interface Config {
  /** NODE_ENV as given (default "development"). */
  nodeEnv: string;
  logLevel: LogLevel;
  listen: Listen;
  /** TRUSTED_PROXY_IP split on commas/whitespace. */
  trustedProxyIp: string[];
  postgres: PostgresConfig;
  redis: RedisConfig;
  /** REDIS_NAMESPACE, or undefined. */
  redisNamespace?: string;
  /** SLUICE_CLIENT_QUEUE_BYTES: queued bytes after which a client is cut off. */
  clientQueueBytes: number;
  /** SLUICE_SHUTDOWN_TIMEOUT_MS: how long graceful shutdown may take. */
  shutdownTimeoutMs: number;
  /** Names of obsolete variables that were set (logged once, otherwise ignored). */
  ignoredVariables: string[];
  /** The env file consulted, existing or not (set by `loadConfig`). */
  envFile?: string;
  /** Other files the variables name and `parseConfig` read (DATABASE_URL's certificates). */
  files?: string[];
}

/** Every variable `parseConfig` reads, for `--allow-env=…`. */
export const VARIABLES: readonly string[] = Object.freeze([
  "NODE_ENV",
  "LOG_LEVEL",
  "PORT",
  "BIND",
  "SOCKET",
  "TRUSTED_PROXY_IP",
  "DATABASE_URL",
  "DB_HOST",
  "DB_PORT",
  "DB_USER",
  "DB_PASS",
  "DB_NAME",
  "DB_SSLMODE",
  "DB_POOL",
  "USER",
  "REDIS_URL",
  "REDIS_HOST",
  "REDIS_PORT",
  "REDIS_DB",
  "REDIS_USER",
  "REDIS_USERNAME",
  "REDIS_PASSWORD",
  "REDIS_SENTINELS",
  "REDIS_SENTINEL_MASTER",
  "REDIS_SENTINEL_PORT",
  "REDIS_SENTINEL_USERNAME",
  "REDIS_SENTINEL_PASSWORD",
  "REDIS_NAMESPACE",
  "SLUICE_CLIENT_QUEUE_BYTES",
  "SLUICE_SHUTDOWN_TIMEOUT_MS",
  "STREAMING_CLUSTER_NUM",
  "LIMITED_FEDERATION_MODE",
  "WHITELIST_MODE",
  "AUTHORIZED_FETCH",
  "NODE_EXTRA_CA_CERTS",
]);

const OBSOLETE = [
  "STREAMING_CLUSTER_NUM",
  "LIMITED_FEDERATION_MODE",
  "WHITELIST_MODE",
  "AUTHORIZED_FETCH",
];

/** How parseConfig reads files, and the process environment without the env file. */
export interface ParseOptions {
  /** Serves DATABASE_URL's sslrootcert/sslcert/sslkey and NODE_EXTRA_CA_CERTS. */
  readTextFile?: TextFileReader;
  /** The process environment alone (default: `get`): NODE_EXTRA_CA_CERTS must come from it. */
  processEnv?: Getter;
  /** false: files are only listed, not read (their contents are not checked). */
  readFiles?: boolean;
}

/** Turns variables into a deeply frozen Config. */
export function parseConfig(get: Getter, options: ParseOptions = {}): Readonly<Config> {
  const nodeEnv = nonEmpty(get, "NODE_ENV") ?? "development";
  const files: string[] = [];
  const readTextFile = (path: string) => {
    files.push(path);
    return options.readTextFile?.(path);
  };
  const ca = extraCa(get, { ...options, readTextFile });
  return deepFreeze(defined({
    nodeEnv,
    logLevel: logLevel(get, nodeEnv),
    listen: listen(get),
    trustedProxyIp: trustedProxyIp(get),
    postgres: { ...postgres(get, nodeEnv, readTextFile), ...ca },
    redis: { ...redis(get), ...ca },
    redisNamespace: nonEmpty(get, "REDIS_NAMESPACE"),
    clientQueueBytes: integer(get, "SLUICE_CLIENT_QUEUE_BYTES", 1048576, POSITIVE),
    shutdownTimeoutMs: integer(get, "SLUICE_SHUTDOWN_TIMEOUT_MS", 10000, TIMER),
    ignoredVariables: OBSOLETE.filter((name) => nonEmpty(get, name) !== undefined),
    files: files.length === 0 ? undefined : files,
  }));
}

// --- numbers and small values -------------------------------------------------

/** TRUSTED_PROXY_IP's entries (default Mastodon's), each checked now so a bad one stops start-up. */
function trustedProxyIp(get: Getter): string[] {
  const value = nonEmpty(get, "TRUSTED_PROXY_IP") ?? "loopback,uniquelocal";
  const entries = value.split(/[\s,]+/).filter((entry) => entry !== "");
  try {
    compileTrust(entries);
  } catch (err) {
    if (err instanceof RangeError) {
      throw new ConfigError(`Cannot parse TRUSTED_PROXY_IP: ${err.message}`);
    }
    throw err;
  }
  return entries;
}

interface Range {
  min: number;
  max: number;
  what: string;
}

const PORT: Range = { min: 1, max: 65535, what: "an integer from 1 to 65535" };
const NON_NEGATIVE: Range = {
  min: 0,
  max: Number.MAX_SAFE_INTEGER,
  what: "a non-negative integer",
};
const POSITIVE: Range = { min: 1, max: Number.MAX_SAFE_INTEGER, what: "a positive integer" };
const TIMER: Range = { min: 1, max: 2 ** 31 - 1, what: "an integer from 1 to 2147483647" };

function nonEmpty(get: Getter, name: string): string | undefined {
  const value = get(name);
  return value === "" ? undefined : value;
}

function toInteger(text: string, range: Range): number | undefined {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) return undefined;
  const n = Number(trimmed);
  return n >= range.min && n <= range.max ? n : undefined;
}

function integer(get: Getter, name: string, fallback: number, range: Range): number {
  const raw = nonEmpty(get, name);
  if (raw === undefined) return fallback;
  const n = toInteger(raw, range);
  if (n === undefined) {
    throw new ConfigError(
      `Cannot parse ${name}: expected ${range.what}, got ${JSON.stringify(raw)}`,
    );
  }
  return n;
}

function logLevel(get: Getter, nodeEnv: string): LogLevel {
  const raw = get("LOG_LEVEL");
  const known = LOG_LEVELS.find((level) => level === raw);
  return known ?? (nodeEnv === "development" ? "debug" : "info");
}

function listen(get: Getter): Listen {
  const socket = nonEmpty(get, "SOCKET");
  if (socket !== undefined) return { kind: "unix", path: socket };
  const bind = nonEmpty(get, "BIND") ?? "127.0.0.1";
  const hostname = bind.replace(/^\[(.*)\]$/, "$1");
  return { kind: "tcp", hostname, port: integer(get, "PORT", 4000, PORT) };
}

/**
 * NODE_EXTRA_CA_CERTS, read and checked now (Node only warns about a bad
 * file, then TLS fails). Deno, like Node, reads the variable at start-up for
 * node:tls (PostgreSQL), so it must come from the process environment.
 */
function extraCa(get: Getter, options: ParseOptions): { extraCa?: ExtraCa } {
  const file = nonEmpty(get, "NODE_EXTRA_CA_CERTS");
  if (file === undefined) return {};
  if ((options.processEnv ?? get)("NODE_EXTRA_CA_CERTS") !== file) {
    throw new ConfigError(
      "NODE_EXTRA_CA_CERTS is set in the env file: set it in the process environment instead " +
        "(e.g. Environment= in the systemd unit), where the TLS runtime reads it, as Node does",
    );
  }
  const pem = options.readTextFile?.(file);
  if (options.readFiles === false) return { extraCa: { file, pem: "" } };
  if (pem === undefined) {
    throw new ConfigError(`Cannot read NODE_EXTRA_CA_CERTS: no file "${file}"`);
  }
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError(
      `Cannot parse NODE_EXTRA_CA_CERTS: "${file}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    );
  }
  return { extraCa: { file, pem } };
}

// --- PostgreSQL -----------------------------------------------------------------

function postgres(get: Getter, nodeEnv: string, read?: TextFileReader): PostgresConfig {
  const max = integer(get, "DB_POOL", 10, POSITIVE);
  const url = nonEmpty(get, "DATABASE_URL");
  if (url !== undefined) return defined({ ...postgresFromUrl(url, get, read), max });
  if (nodeEnv !== "production" && nodeEnv !== "development") {
    throw new ConfigError(
      "Unable to resolve postgresql database configuration. " +
        `(NODE_ENV is ${
          JSON.stringify(nodeEnv)
        }: set DATABASE_URL, or NODE_ENV to production or development)`,
    );
  }
  const production = nodeEnv === "production";
  return defined({
    user: nonEmpty(get, "DB_USER") ?? (production ? "mastodon" : nonEmpty(get, "USER")),
    password: nonEmpty(get, "DB_PASS") ?? (production ? "" : undefined),
    host: nonEmpty(get, "DB_HOST") ?? "localhost",
    port: integer(get, "DB_PORT", 5432, PORT),
    database: nonEmpty(get, "DB_NAME") ??
      (production ? "mastodon_production" : "mastodon_development"),
    ssl: dbSslMode(get("DB_SSLMODE")),
    max,
  });
}

function dbSslMode(mode: string | undefined): PostgresConfig["ssl"] {
  if (mode === undefined) return undefined;
  if (mode === "" || mode === "disable") return false;
  return { rejectUnauthorized: mode !== "no-verify" };
}

function postgresFromUrl(
  text: string,
  get: Getter,
  read?: TextFileReader,
): Omit<PostgresConfig, "max"> {
  // A `%` that starts no escape stands for itself, as pg-connection-string allows.
  const url = splitUrl("DATABASE_URL", text.replace(/%(?![0-9a-f]{2})/gi, "%25"));
  if (url.scheme !== "postgres" && url.scheme !== "postgresql") {
    throw new ConfigError(
      `Cannot parse DATABASE_URL: expected a postgres:// or postgresql:// URL, got "${url.scheme}:"`,
    );
  }
  const query = url.query;
  const portText = query.get("port") || url.port;
  const port = portText ? toInteger(portText, PORT) : undefined;
  if (portText && port === undefined) {
    throw new ConfigError(
      "Invalid port specified in DATABASE_URL environment variable: " +
        `expected ${PORT.what}, got ${JSON.stringify(portText)}`,
    );
  }
  return {
    user: query.get("user") || url.username || undefined,
    password: query.get("password") || url.password || nonEmpty(get, "DB_PASS"),
    host: query.get("host") || url.host || undefined,
    port,
    database: url.path.replace(/^\//, "") || undefined,
    ssl: urlSsl(query, read),
    options: query.get("options") ?? undefined,
  };
}

const SSL_MODES: Record<string, PostgresConfig["ssl"]> = {
  "disable": false,
  "allow": false,
  "prefer": { rejectUnauthorized: false },
  "require": { rejectUnauthorized: false },
  "no-verify": { rejectUnauthorized: false },
  "verify-ca": { rejectUnauthorized: true },
  "verify-full": { rejectUnauthorized: true },
};

function urlSsl(query: URLSearchParams, read?: TextFileReader): PostgresConfig["ssl"] {
  const flag = query.get("ssl");
  let ssl: PostgresConfig["ssl"] = flag === "true" || flag === "1"
    ? { rejectUnauthorized: true }
    : flag === "false" || flag === "0"
    ? false
    : undefined;
  const mode = query.get("sslmode");
  if (mode !== null) {
    if (!Object.hasOwn(SSL_MODES, mode)) {
      const modes = Object.keys(SSL_MODES).join(", ").replace(/, (?!.*, )/, " or ");
      throw new ConfigError(
        `Cannot parse DATABASE_URL: expected sslmode ${modes}, got ${JSON.stringify(mode)}`,
      );
    }
    ssl = SSL_MODES[mode];
  }
  const files = certificates(query, read);
  if (files === undefined || ssl === false) return ssl;
  return { rejectUnauthorized: ssl?.rejectUnauthorized ?? true, ...files };
}

function certificates(query: URLSearchParams, read?: TextFileReader) {
  const files: { ca?: string; cert?: string; key?: string } = {};
  const params = [["sslrootcert", "ca"], ["sslcert", "cert"], ["sslkey", "key"]] as const;
  for (const [param, field] of params) {
    const path = query.get(param);
    if (!path) continue;
    const text = read?.(path);
    if (text === undefined) {
      throw new ConfigError(`Cannot parse DATABASE_URL: cannot read ${param} file "${path}"`);
    }
    files[field] = text;
  }
  return Object.keys(files).length === 0 ? undefined : files;
}

// --- Redis ----------------------------------------------------------------------

const REDIS_HOST = "127.0.0.1";
const REDIS_PORT = 6379;

function redis(get: Getter): RedisConfig {
  const url = nonEmpty(get, "REDIS_URL");
  if (url !== undefined) return defined(redisFromUrl(url));
  const base = {
    host: nonEmpty(get, "REDIS_HOST") ?? REDIS_HOST,
    port: integer(get, "REDIS_PORT", REDIS_PORT, PORT),
    tls: false,
    db: integer(get, "REDIS_DB", 0, NON_NEGATIVE),
    username: nonEmpty(get, "REDIS_USER") ?? nonEmpty(get, "REDIS_USERNAME"),
    password: nonEmpty(get, "REDIS_PASSWORD"),
  };
  const sentinels = nonEmpty(get, "REDIS_SENTINELS");
  const master = nonEmpty(get, "REDIS_SENTINEL_MASTER");
  if (sentinels === undefined || master === undefined) return defined({ mode: "tcp", ...base });
  const sentinelPort = integer(get, "REDIS_SENTINEL_PORT", 26379, PORT);
  // Like `??`: a variable set to "" means "none", not "use the fallback".
  const or = (raw: string | undefined, fallback: string | undefined) =>
    raw === undefined ? fallback : raw || undefined;
  return defined({
    mode: "sentinel",
    ...base,
    sentinels: sentinels.split(",").map((entry) => entry.trim()).filter((entry) => entry !== "")
      .map((entry) => sentinel(entry, sentinelPort)),
    sentinelMaster: master,
    sentinelUsername: or(get("REDIS_SENTINEL_USERNAME"), base.username),
    sentinelPassword: or(get("REDIS_SENTINEL_PASSWORD"), base.password),
  });
}

function sentinel(entry: string, defaultPort: number): RedisEndpoint {
  const bracketed = /^\[([^\]]*)\](?::(.*))?$/.exec(entry);
  const colons = entry.split(":").length - 1;
  const [host, portText] = bracketed
    ? [bracketed[1], bracketed[2]]
    : colons > 1
    ? [entry, undefined] // a bare IPv6 address
    : entry.split(":");
  const port = portText === undefined ? defaultPort : toInteger(portText, PORT);
  if (!host || port === undefined) {
    throw new ConfigError(
      `Cannot parse REDIS_SENTINELS: expected host[:port] with a port from 1 to 65535, got ${
        JSON.stringify(entry)
      }`,
    );
  }
  return { host, port };
}

/** Parses a `redis://`, `rediss://` or `unix://` URL as REDIS_URL is parsed; throws ConfigError. */
export function parseRedisUrl(text: string): Readonly<RedisConfig> {
  return deepFreeze(defined(redisFromUrl(text)));
}

function redisFromUrl(text: string): RedisConfig {
  const url = splitUrl("REDIS_URL", text);
  const query = url.query;
  const credentials = {
    tls: url.scheme === "rediss",
    username: url.username || query.get("username") || undefined,
    password: url.password || query.get("password") || undefined,
  };
  if (url.scheme === "unix") {
    if (!url.path) {
      throw new ConfigError("Cannot parse REDIS_URL: expected a socket path after unix://");
    }
    const db = redisDb(query.get("db"));
    return { mode: "unix", host: REDIS_HOST, port: REDIS_PORT, path: url.path, db, ...credentials };
  }
  if (url.scheme !== "redis" && url.scheme !== "rediss") {
    throw new ConfigError(
      `Cannot parse REDIS_URL: expected a redis://, rediss:// or unix:// URL, got "${url.scheme}:"`,
    );
  }
  const port = url.port ? toInteger(url.port, PORT) : REDIS_PORT;
  if (port === undefined) {
    throw new ConfigError(
      `Cannot parse REDIS_URL: expected a port from 1 to 65535, got ${JSON.stringify(url.port)}`,
    );
  }
  const db = redisDb(url.path.replace(/^\//, "") || query.get("db"));
  return { mode: "tcp", host: url.host || REDIS_HOST, port, db, ...credentials };
}

function redisDb(text: string | null): number {
  if (!text) return 0;
  const db = toInteger(text, NON_NEGATIVE);
  if (db === undefined) {
    throw new ConfigError(
      `Cannot parse REDIS_URL: expected a non-negative integer as the database, got ${
        JSON.stringify(text)
      }`,
    );
  }
  return db;
}

/**
 * Reads the process environment and env file (see `environment`) into a
 * Config. With `readFiles: false` the other files the variables name are not
 * read (their text is empty), only listed in `files`: enough to work out the
 * permissions Sluice needs before reading them.
 */
export function loadConfig(
  args: { envFile?: string; readFiles?: boolean } = {},
): Readonly<Config> {
  const get = (name: string) => Deno.env.get(name);
  const env = environment({ get, readTextFile: readIfExists, envFile: args.envFile });
  const readTextFile = args.readFiles === false ? () => "" : readIfExists;
  const config = parseConfig(env, { readTextFile, processEnv: get, readFiles: args.readFiles });
  return deepFreeze({ ...config, envFile: envFilePath(args.envFile) });
}

/** The value of a `--env-file=PATH` argument (main.ts's, not Deno's), if any. */
export function envFileArgument(args: readonly string[]): string | undefined {
  return args.find((a) => a.startsWith("--env-file="))?.slice("--env-file=".length);
}

/** The env file `loadConfig` reads: `envFile`, else `.env.production` or `.env` by NODE_ENV. */
export function envFilePath(envFile?: string): string {
  return envFileName((name) => Deno.env.get(name), envFile);
}

function readIfExists(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    const reason = error instanceof Error ? error.message : String(error);
    throw new ConfigError(`Cannot read ${JSON.stringify(path)}: ${reason}`);
  }
}

// --- helpers --------------------------------------------------------------------

/** Drops keys whose value is undefined, so configs compare and print cleanly. */
function defined<T extends object>(record: T): T {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined)) as T;
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
