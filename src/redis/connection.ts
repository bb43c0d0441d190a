/**
 * The connection layer under the Redis subscriber and client: opening an
 * authenticated connection (TCP, TLS, unix socket, or via Sentinel), the
 * AUTH/SELECT/PING handshake, and {@link ConnectionLoop}, which keeps one
 * connection alive with backoff and hands its replies to hooks. Knows nothing
 * about what the replies mean.
 *
 * @module
 */
import type { RedisConfig } from "./config.ts";
import type { Logger } from "./log.ts";
import { RedisReplyError, RespConnection, type RespEndpoint, type RespValue } from "./_resp.ts";

/** Redis is not connected (or the connection was lost before the reply came). */
export class RedisConnectionError extends Error {
  override name = "RedisConnectionError";
}

const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const CONNECT_TIMEOUT_MS = 10_000;

/** Delay before reconnect attempt `n` (0-based): 100 ms doubling to 5 s, then halved by jitter. */
function backoff(attempt: number): number {
  const ceiling = Math.min(BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 16), BACKOFF_MAX_MS);
  return ceiling / 2 + Math.random() * ceiling / 2;
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
    if (reply === undefined) throw new RedisConnectionError("Redis closed the connection");
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

async function askSentinel(
  sentinel: RespEndpoint,
  config: RedisConfig,
  signal: AbortSignal,
): Promise<RespEndpoint> {
  const master = config.sentinelMaster ?? "";
  const reply = await withConnection(sentinel, signal, async (conn) => {
    try {
      await handshake(conn, {
        username: config.sentinelUsername,
        password: config.sentinelPassword,
      });
      return await conn.call(["SENTINEL", "get-master-addr-by-name", master]);
    } finally {
      conn.close();
    }
  });
  if (Array.isArray(reply) && typeof reply[0] === "string" && typeof reply[1] === "string") {
    return { kind: "tcp", host: reply[0], port: Number(reply[1]), tls: config.tls };
  }
  throw reply instanceof Error ? reply : new Error(`Sentinel does not know master "${master}"`);
}

/** Asks each sentinel in turn for the master's address. */
async function askSentinels(config: RedisConfig, signal: AbortSignal): Promise<RespEndpoint> {
  const failures: string[] = [];
  for (const { host, port } of config.sentinels ?? []) {
    try {
      return await askSentinel({ kind: "tcp", host, port, tls: false }, config, signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      failures.push(`${host}:${port}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  throw new RedisConnectionError(
    `No sentinel gave the address of master "${config.sentinelMaster}" (${failures.join("; ")})`,
  );
}

/** Opens an authenticated connection as configured; `select` chooses the database. */
async function openRedis(
  config: RedisConfig,
  select: boolean,
  signal: AbortSignal,
): Promise<RespConnection> {
  const endpoint: RespEndpoint = config.mode === "sentinel"
    ? await askSentinels(config, signal)
    : config.mode === "unix"
    ? { kind: "unix", path: config.path ?? "" }
    : { kind: "tcp", host: config.host, port: config.port, tls: config.tls };
  return await withConnection(endpoint, signal, async (conn) => {
    await handshake(conn, config, select ? config.db : undefined);
    return conn;
  });
}

/** What {@link ConnectionLoop} tells its owner about the connection it keeps. */
export interface LoopHooks {
  /** A connection is up and authenticated. */
  up(conn: RespConnection): void;
  reply(reply: RespValue): void;
  /** The connection from the last `up` is gone. */
  down(): void;
}

/**
 * Keeps one connection alive: connect, serve replies until it ends, back off,
 * repeat, until closed. Logs one warning per outage (and again only when the
 * reason for failing changes); further failed attempts are debug lines.
 */
export class ConnectionLoop {
  readonly #config: RedisConfig;
  readonly #select: boolean;
  readonly #log: Logger;
  readonly #hooks: LoopHooks;
  readonly #done: Promise<void>;
  #closed = false;
  #conn: RespConnection | undefined;
  #attempt: AbortController | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  #outage = false;
  #lastReason: string | undefined;

  constructor(
    options: { config: RedisConfig; select: boolean; log: Logger; hooks: LoopHooks },
  ) {
    this.#config = options.config;
    this.#select = options.select;
    this.#log = options.log;
    this.#hooks = options.hooks;
    this.#done = this.#run();
  }

  /** Stops reconnecting, closes the connection and waits for the loop to end. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#wake?.();
    this.#attempt?.abort(new RedisConnectionError("Closed"));
    this.#conn?.close();
    await this.#done;
  }

  async #run(): Promise<void> {
    let attempt = 0;
    while (!this.#closed) {
      const conn = await this.#open().catch((err) => this.#failed(err));
      if (conn !== undefined && this.#closed) conn.close();
      else if (conn !== undefined) {
        attempt = 0;
        const reason = await this.#serve(conn);
        if (!this.#closed) this.#lost(reason);
      }
      if (!this.#closed) await this.#sleep(backoff(attempt++));
    }
  }

  async #open(): Promise<RespConnection> {
    const attempt = new AbortController();
    this.#attempt = attempt;
    const timer = setTimeout(
      () => attempt.abort(new RedisConnectionError(`No answer within ${CONNECT_TIMEOUT_MS} ms`)),
      CONNECT_TIMEOUT_MS,
    );
    try {
      return await openRedis(this.#config, this.#select, attempt.signal);
    } finally {
      clearTimeout(timer);
      this.#attempt = undefined;
    }
  }

  /** Hands replies to the hooks until the connection ends; returns why it ended. */
  async #serve(conn: RespConnection): Promise<unknown> {
    this.#conn = conn;
    this.#outage = false;
    this.#lastReason = undefined;
    try {
      this.#hooks.up(conn);
      for (let reply = await conn.read(); reply !== undefined; reply = await conn.read()) {
        this.#hooks.reply(reply);
      }
      return new RedisConnectionError("Redis closed the connection");
    } catch (err) {
      return err;
    } finally {
      this.#conn = undefined;
      conn.close();
      this.#hooks.down();
    }
  }

  #lost(reason: unknown): void {
    this.#outage = true;
    this.#log.warn("Redis connection lost, reconnecting", { error: reason });
  }

  #failed(err: unknown): undefined {
    if (this.#closed) return;
    const reason = err instanceof Error ? err.message : String(err);
    const changed = this.#lastReason !== undefined && reason !== this.#lastReason;
    const loud = !this.#outage || changed;
    this.#outage = true;
    this.#lastReason = reason;
    if (loud) this.#log.warn("Cannot connect to Redis, retrying", { error: err });
    else this.#log.debug("Cannot connect to Redis, retrying", { error: err });
  }

  #sleep(ms: number): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#wake = resolve;
    this.#timer = setTimeout(resolve, ms);
    return promise.finally(() => {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#wake = undefined;
    });
  }
}
