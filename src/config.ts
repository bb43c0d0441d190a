/**
 * Mastodon's streaming environment variables → one frozen Config.
 *
 * Owns the variable names, their defaults (production and development) and
 * what each value may be; env files are read by `_env_file.ts`, connection
 * URLs split by `_connection_url.ts`, and the PostgreSQL and Redis variables
 * parsed by `_postgres_config.ts` and `_redis_config.ts`. `parseConfig` is pure and reads only
 * through the getter it is given; `loadConfig` is the only place in the
 * project that touches `Deno.env`. This module never opens a connection and
 * never logs: errors are `ConfigError`s whose one-line message names the
 * variable and the bad value (never a password).
 *
 * @module
 */
import {
  deepFreeze,
  defined,
  integer,
  NON_NEGATIVE, // SLUICE_MAX_CONNECTIONS_PER_IP may be 0 (off)
  nonEmpty,
  PORT,
  POSITIVE,
  TIMER,
  WORKERS,
} from "./_config_values.ts";
import { envFileName, environment, type Getter, type TextFileReader } from "./_env_file.ts";
import { ConfigError } from "./errors.ts";
import { LOG_LEVELS, type LogLevel } from "./log.ts";
import { compileTrust } from "./proxy_addr.ts";
import { postgres, type PostgresConfig } from "./_postgres_config.ts";
import { redis, type RedisConfig } from "./_redis_config.ts";
import type { ExtraCa } from "./tls.ts";

export { ConfigError } from "./errors.ts";
export type { Getter, TextFileReader } from "./_env_file.ts";
export type { PostgresConfig } from "./_postgres_config.ts";
export { parseRedisUrl, type RedisConfig, type RedisEndpoint } from "./_redis_config.ts";

/** Where to listen. */
export type Listen =
  | { kind: "tcp"; hostname: string; port: number }
  | { kind: "unix"; path: string };

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
  /** SLUICE_CLIENT_QUEUE_BYTES: queued bytes a client must drain every second, or be cut off. */
  clientQueueBytes: number;
  /** SLUICE_QUEUE_BUDGET_BYTES: all clients' queues together; the furthest behind are cut beyond it. */
  queueBudgetBytes: number;
  /** SLUICE_SHUTDOWN_TIMEOUT_MS: how long graceful shutdown may take. */
  shutdownTimeoutMs: number;
  /** The abuse limits (SLUICE_MAX_*). */
  limits: Limits;
  /** SLUICE_WORKERS: JavaScript threads serving clients, or "auto" (one per CPU the process may use). */
  workers: number | "auto";
  /** Names of obsolete variables that were set (logged once, otherwise ignored). */
  ignoredVariables: string[];
  /** The env file consulted, existing or not (set by `loadConfig`). */
  envFile?: string;
  /** Other files the variables name and `parseConfig` read (DATABASE_URL's certificates). */
  files?: string[];
}

/** Limits on what one client may hold or send; each refusal is answered as Mastodon answers errors. */
export interface Limits {
  /** SLUICE_MAX_SUBSCRIPTIONS_PER_WEBSOCKET: stream subscriptions one WebSocket may hold. */
  subscriptionsPerWebSocket: number;
  /** SLUICE_MAX_WEBSOCKET_MESSAGE_BYTES: the largest client message; a larger one closes with 1009. */
  webSocketMessageBytes: number;
  /** SLUICE_MAX_CONNECTIONS_PER_IP: open streams and WebSockets per client address, 0 for no limit. */
  connectionsPerIp: number;
}

/** The limits' defaults: far above what any known client does. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  subscriptionsPerWebSocket: 1000,
  webSocketMessageBytes: 65536,
  connectionsPerIp: 0,
});

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
  "SLUICE_QUEUE_BUDGET_BYTES",
  "SLUICE_SHUTDOWN_TIMEOUT_MS",
  "SLUICE_WORKERS",
  "SLUICE_MAX_SUBSCRIPTIONS_PER_WEBSOCKET",
  "SLUICE_MAX_WEBSOCKET_MESSAGE_BYTES",
  "SLUICE_MAX_CONNECTIONS_PER_IP",
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
    queueBudgetBytes: integer(get, "SLUICE_QUEUE_BUDGET_BYTES", 1073741824, POSITIVE),
    shutdownTimeoutMs: integer(get, "SLUICE_SHUTDOWN_TIMEOUT_MS", 10000, TIMER),
    limits: limits(get),
    workers: workers(get),
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

/** The SLUICE_MAX_* variables, each defaulting to {@link DEFAULT_LIMITS}. */
function limits(get: Getter): Limits {
  const d = DEFAULT_LIMITS;
  return {
    subscriptionsPerWebSocket: integer(
      get,
      "SLUICE_MAX_SUBSCRIPTIONS_PER_WEBSOCKET",
      d.subscriptionsPerWebSocket,
      POSITIVE,
    ),
    webSocketMessageBytes: integer(
      get,
      "SLUICE_MAX_WEBSOCKET_MESSAGE_BYTES",
      d.webSocketMessageBytes,
      POSITIVE,
    ),
    connectionsPerIp: integer(
      get,
      "SLUICE_MAX_CONNECTIONS_PER_IP",
      d.connectionsPerIp,
      NON_NEGATIVE,
    ),
  };
}

/** SLUICE_WORKERS: "auto" (the default) or an integer from 1 to 256. */
function workers(get: Getter): number | "auto" {
  const raw = nonEmpty(get, "SLUICE_WORKERS")?.trim();
  if (raw === undefined || raw.toLowerCase() === "auto") return "auto";
  return integer(get, "SLUICE_WORKERS", 1, WORKERS);
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
