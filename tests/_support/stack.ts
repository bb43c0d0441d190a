/**
 * The integration-test stack: a throwaway redis-server and PostgreSQL
 * (schema and seed of the reference transcripts) and Sluice itself, started
 * in-process through main.ts's `start()` on a free port.
 *
 * @module
 */
import { type Sluice, start, type Timings } from "../../main.ts";
import { type PostgresServer, startPostgresServer } from "../../scripts/postgres_server.ts";
import { type RedisServer, startRedisServer } from "../../scripts/redis_server.ts";
import { parseConfig, parseRedisUrl } from "../../src/config.ts";
import type { Hub } from "../../src/hub.ts";
import { createLogger, type Logger, silentLogger } from "../../src/log.ts";
import { RedisClient } from "../../src/redis/client.ts";
import { portOf } from "../../src/server.ts";

/** Services shared by the tests of one file. */
export interface Services {
  redis: RedisServer;
  pg: PostgresServer;
  /** A command connection to the test Redis (PUBLISH, TTL, …). */
  client: RedisClient;
  close(): Promise<void>;
}

/** Starts redis-server and PostgreSQL, each with a password when one is given. */
export async function startServices(
  options: { redisPassword?: string; pgPassword?: string } = {},
): Promise<Services> {
  const { redisPassword, pgPassword } = options;
  const [redis, pg] = await Promise.all([
    startRedisServer(redisPassword ? { args: ["--requirepass", redisPassword] } : {}),
    startPostgresServer(pgPassword ? { password: pgPassword } : {}),
  ]);
  const client = new RedisClient({
    config: { ...parseRedisUrl(redis.url), ...(redisPassword ? { password: redisPassword } : {}) },
    log: silentLogger,
  });
  await client.ready();
  return {
    redis,
    pg,
    client,
    close: async () => {
      await client.close();
      await Promise.all([redis.stop(), pg.stop()]);
    },
  };
}

/** The environment that points Sluice at the services. */
export function serviceEnv(services: Services): Record<string, string> {
  return {
    NODE_ENV: "production",
    REDIS_HOST: "127.0.0.1",
    REDIS_PORT: String(services.redis.port),
    DB_HOST: "127.0.0.1",
    DB_PORT: String(services.pg.port),
    DB_USER: services.pg.user,
    DB_NAME: services.pg.database,
    DB_PASS: "",
  };
}

/** A Sluice started in-process for a test. */
export interface TestSluice {
  sluice: Sluice;
  port: number;
  http: string;
  ws: string;
  /** Resolves once Redis has processed every SUBSCRIBE sent so far. */
  settled(): Promise<void>;
  /** Resolves once Sluice listens to every channel and Redis confirmed it. */
  listening(...channels: string[]): Promise<void>;
  /** Resolves once `channel` has `count` listeners and Redis confirmed the subscription. */
  listeners(channel: string, count: number): Promise<void>;
  /** Resolves once no channel of `channels` has a listener and Redis confirmed it. */
  unlistened(...channels: string[]): Promise<void>;
  /** How many listeners the hub has on `channel` now. */
  listenerCount(channel: string): number;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Starts Sluice against the services; `env` overrides variables. */
export async function startSluice(
  services: Services,
  env: Record<string, string> = {},
  timings: Timings = {},
  log: Logger = Deno.env.get("SLUICE_TEST_LOG") ? createLogger({ level: "debug" }) : silentLogger,
): Promise<TestSluice> {
  const vars: Record<string, string> = { ...serviceEnv(services), ...env };
  const config = parseConfig((k) => vars[k]);
  const listen = { kind: "tcp" as const, hostname: "127.0.0.1", port: 0 };
  const sluice = start({ ...config, listen }, log, timings);
  const counts = new ListenerCounts(sluice.hub);
  await sluice.subscriber.ready();
  const port = portOf(sluice.server);
  return {
    sluice,
    port,
    http: `http://127.0.0.1:${port}`,
    ws: `ws://127.0.0.1:${port}`,
    settled: () => sluice.subscriber.ready(),
    listeners: async (channel, count) => {
      await counts.until(() => counts.of(channel) >= count, `${count} listeners on ${channel}`);
      await sluice.subscriber.ready();
    },
    listening: async (...channels) => {
      await counts.until(() => channels.every((c) => counts.of(c) > 0), `${channels} listened`);
      await sluice.subscriber.ready();
    },
    unlistened: async (...channels) => {
      await counts.until(() => channels.every((c) => counts.of(c) === 0), `${channels} dropped`);
      await sluice.subscriber.ready();
    },
    listenerCount: (channel) => counts.of(channel),
    close: () => sluice.close(),
    [Symbol.asyncDispose]: () => sluice.close(),
  };
}

/** The hub's listener count per channel, followed through its observation hook. */
class ListenerCounts {
  readonly #counts = new Map<string, number>();
  readonly #changed = new Set<() => void>();

  constructor(hub: Hub) {
    hub.observe((channel, count) => {
      this.#counts.set(channel, count);
      for (const wake of [...this.#changed]) wake();
    });
  }

  of(channel: string): number {
    return this.#counts.get(channel) ?? 0;
  }

  /** Resolves when `check()` holds after some change; fails after `timeoutMs`. */
  async until(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const wake = () => check() && resolve();
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
    this.#changed.add(wake);
    try {
      wake();
      await promise;
    } finally {
      clearTimeout(timer);
      this.#changed.delete(wake);
    }
  }
}
