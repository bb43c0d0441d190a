/**
 * Opening one authenticated Redis connection as configured: TCP, TLS, a unix
 * socket, or the master a Sentinel names, then the AUTH/SELECT/PING
 * handshake. One attempt, no retrying (that is `connection.ts`); private to
 * `src/redis/`. Also opens the connection to a sentinel that `sentinel_watch.ts`
 * keeps. Sentinels and the master they name are reached without TLS, as
 * Mastodon's streaming server does (REDIS_SENTINELS has no TLS setting).
 *
 * @module
 */
import type { RedisConfig } from "../config.ts";
import {
  RedisConnectionError,
  RedisReplyError,
  RespConnection,
  type RespEndpoint,
} from "./resp.ts";

const CLOSED = "Redis closed the connection";

/** A connection just opened and authenticated, and the address it was opened to. */
export interface Opened {
  conn: RespConnection;
  endpoint: RespEndpoint;
}

interface Credentials {
  username?: string;
  password?: string;
}

/** AUTH (when a password is set), SELECT (when asked), then PING, pipelined. */
async function handshake(conn: RespConnection, auth: Credentials, db?: number): Promise<void> {
  const commands: string[][] = [];
  if (auth.password) {
    commands.push(auth.username ? ["AUTH", auth.username, auth.password] : ["AUTH", auth.password]);
  }
  if (db) commands.push(["SELECT", String(db)]);
  commands.push(["PING"]);
  for (const command of commands) conn.send(command);
  for (const command of commands) {
    const reply = await conn.read();
    if (reply === undefined) throw new RedisConnectionError(CLOSED);
    if (reply instanceof RedisReplyError) {
      throw new RedisReplyError(`Redis ${command[0]} failed: ${reply.message}`);
    }
  }
}

/** Runs `use` on a fresh connection that `signal` closes; closes it if `use` throws. */
async function withConnection<T>(
  endpoint: RespEndpoint,
  signal: AbortSignal,
  use: (conn: RespConnection) => Promise<T>,
): Promise<T> {
  const conn = await RespConnection.open(endpoint, signal);
  const abort = () => conn.close();
  signal.addEventListener("abort", abort);
  try {
    return await use(conn);
  } catch (err) {
    conn.close();
    throw signal.aborted ? signal.reason : err;
  } finally {
    signal.removeEventListener("abort", abort);
  }
}

/** The master's address as a sentinel gives it (`host`, `port` as in its replies). */
export function masterEndpoint(config: RedisConfig, host: string, port: number): RespEndpoint {
  return { kind: "tcp", host, port, tls: config.tls };
}

/** `host:port` of a TCP endpoint, the socket path of a unix one (for logs and comparisons). */
export function addressOf(endpoint: RespEndpoint): string {
  return endpoint.kind === "unix" ? endpoint.path : `${endpoint.host}:${endpoint.port}`;
}

/** Opens a connection to `sentinel`, authenticates with the sentinel credentials, then runs `use`. */
function withSentinel<T>(
  sentinel: RespEndpoint,
  config: RedisConfig,
  signal: AbortSignal,
  use: (conn: RespConnection) => Promise<T>,
): Promise<T> {
  return withConnection(sentinel, signal, async (conn) => {
    await handshake(conn, { username: config.sentinelUsername, password: config.sentinelPassword });
    return await use(conn);
  });
}

async function askSentinel(
  sentinel: RespEndpoint,
  config: RedisConfig,
  signal: AbortSignal,
): Promise<RespEndpoint> {
  const master = config.sentinelMaster ?? "";
  const reply = await withSentinel(sentinel, config, signal, async (conn) => {
    try {
      return await conn.call(["SENTINEL", "get-master-addr-by-name", master]);
    } finally {
      conn.close();
    }
  });
  if (Array.isArray(reply) && typeof reply[0] === "string" && typeof reply[1] === "string") {
    return masterEndpoint(config, reply[0], Number(reply[1]));
  }
  throw reply instanceof Error ? reply : new Error(`Sentinel does not know master "${master}"`);
}

/** Runs `use` on each configured sentinel in turn until one succeeds; throws naming each failure. */
async function eachSentinel<T>(
  config: RedisConfig,
  signal: AbortSignal,
  what: string,
  use: (sentinel: RespEndpoint) => Promise<T>,
): Promise<T> {
  const failures: string[] = [];
  for (const { host, port } of config.sentinels ?? []) {
    try {
      return await use({ kind: "tcp", host, port, tls: false });
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      failures.push(`${host}:${port}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new RedisConnectionError(`${what} (${failures.join("; ")})`);
}

/** Asks each sentinel in turn for the master's address. */
function askSentinels(config: RedisConfig, signal: AbortSignal): Promise<RespEndpoint> {
  const what = `No sentinel gave the address of master "${config.sentinelMaster}"`;
  return eachSentinel(config, signal, what, (sentinel) => askSentinel(sentinel, config, signal));
}

/** Opens an authenticated connection to the first sentinel that answers, trying each in turn. */
export function openSentinel(config: RedisConfig, signal: AbortSignal): Promise<Opened> {
  return eachSentinel(config, signal, "No sentinel answered", async (endpoint) => ({
    conn: await withSentinel(endpoint, config, signal, (conn) => Promise.resolve(conn)),
    endpoint,
  }));
}

/**
 * Opens an authenticated connection as configured; `select` chooses the
 * database. In Sentinel mode, `at` (the address a `+switch-master` named) is
 * used instead of asking the sentinels.
 */
export async function openRedis(
  config: RedisConfig,
  select: boolean,
  signal: AbortSignal,
  at?: RespEndpoint,
): Promise<Opened> {
  const endpoint: RespEndpoint = config.mode === "sentinel"
    ? at ?? await askSentinels(config, signal)
    : config.mode === "unix"
    ? { kind: "unix", path: config.path ?? "" }
    : {
      kind: "tcp",
      host: config.host,
      port: config.port,
      tls: config.tls,
      extraCa: config.extraCa,
    };
  const conn = await withConnection(endpoint, signal, async (conn) => {
    try {
      await handshake(conn, config, select ? config.db : undefined);
    } catch (err) {
      throw explainCut(endpoint, err);
    }
    return conn;
  });
  return { conn, endpoint };
}

/** A plain TCP connection cut before any reply: say that the port may want TLS. */
function explainCut(endpoint: RespEndpoint, err: unknown): unknown {
  const cut = err instanceof RedisConnectionError || err instanceof Deno.errors.ConnectionReset ||
    err instanceof Deno.errors.UnexpectedEof || err instanceof Deno.errors.BrokenPipe;
  if (!cut || endpoint.kind !== "tcp" || endpoint.tls) return err;
  return new RedisConnectionError(
    `${CLOSED} at ${endpoint.host}:${endpoint.port} without answering; ` +
      "if that port accepts only TLS, use a rediss:// URL",
  );
}
