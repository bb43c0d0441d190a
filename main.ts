/**
 * Sluice: a drop-in replacement for Mastodon's streaming API server.
 *
 * The only place things are wired together: permissions and config →
 * logging → Redis and PostgreSQL → hub → HTTP server; SIGTERM/SIGINT → one
 * ordered shutdown.
 * `start()` is exported so integration tests run the real wiring in-process.
 *
 * @module
 */
import { Access } from "./src/access.ts";
import { AddressLimit } from "./src/address_limit.ts";
import { Authenticator } from "./src/auth.ts";
import { Clients } from "./src/clients.ts";
import {
  type Config,
  ConfigError,
  envFileArgument,
  envFilePath,
  type Listen,
  loadConfig,
} from "./src/config.ts";
import { PgDatabase } from "./src/db.ts";
import { EventFilter } from "./src/filter.ts";
import { Hub } from "./src/hub.ts";
import { createLogger, type Logger } from "./src/log.ts";
import { Metrics } from "./src/metrics.ts";
import { compileTrust } from "./src/proxy_addr.ts";
import { RedisClient } from "./src/redis/client.ts";
import { SubscribedKeys } from "./src/redis/subscribed_keys.ts";
import { RedisSubscriber } from "./src/redis/subscriber.ts";
import {
  checkPermissions,
  envFilePermission,
  requiredPermissions,
  variablePermissions,
} from "./src/permissions.ts";
import { createHandler } from "./src/router.ts";
import { prepareListen, type RunningServer, startServer } from "./src/server.ts";
import { readinessDetail } from "./src/tls.ts";
import { instanceMetrics, instanceReady, type WorkerLink } from "./src/_instance_view.ts";
import { availableCpus, planWorkers, reusePortAvailable, Supervisor } from "./src/workers.ts";
import denoJson from "./deno.json" with { type: "json" };

/** A running Sluice. */
export interface Sluice {
  readonly server: RunningServer;
  readonly hub: Hub;
  readonly metrics: Metrics;
  readonly subscriber: RedisSubscriber;
  /** Rejects with the reason when this Sluice cannot serve: Redis down or PostgreSQL not answering. */
  ready(): Promise<void>;
  /** Ordered shutdown: streams, server, Redis, PostgreSQL. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Timings that tests shorten; production uses Mastodon's. */
export interface Timings {
  /** SSE heartbeat period (15 s). */
  heartbeatMs?: number;
  /** Idle seconds before a WebSocket is pinged, and then cut without a pong (30). */
  wsIdleTimeoutSeconds?: number;
  /** How long a closing WebSocket may take before its connection is dropped (5 s). */
  wsCloseGraceMs?: number;
  /** How long a client's bytes may wait without any reaching its socket before it is cut (10 s). */
  stallMs?: number;
}

/** How a Sluice runs as one worker of several (`src/worker.ts`). */
export interface AsWorker {
  /** The line to the supervisor: /metrics and readiness then answer for the whole instance. */
  link?: WorkerLink;
  /**
   * How many workers the instance runs: with more than one they share the
   * address (`SO_REUSEPORT`), and each allows its share of SLUICE_MAX_CONNECTIONS_PER_IP.
   */
  workers?: number;
}

/** Starts every part of Sluice for a parsed configuration. */
export function start(
  config: Readonly<Config>,
  log: Logger,
  timings: Timings = {},
  asWorker: AsWorker = {},
): Sluice {
  const metrics = new Metrics({ log: log.child({ module: "metrics" }) });
  const db = new PgDatabase({ config: config.postgres, log: log.child({ module: "db" }), metrics });
  const namespace = config.redisNamespace;
  const redisLog = log.child({ module: "redis" });
  const client = new RedisClient({ config: config.redis, log: redisLog });
  const keys = new SubscribedKeys({ client, namespace, log: redisLog });
  const subscriber = new RedisSubscriber({
    config: config.redis,
    namespace,
    log: redisLog,
    onMessage: (channel, message) => hub.publish(channel, message),
    onStateChange: (connected) => {
      metrics.redisConnected.set(connected ? 1 : 0);
      if (!connected) return;
      metrics.redisReconnects.set(subscriber.reconnects);
      keys.rewriteAll();
    },
  });
  const filter = new EventFilter({ db, log: log.child({ module: "filter" }), metrics });
  const hub = new Hub({ subscriber, keys, log: log.child({ module: "hub" }), metrics, filter });
  metrics.beforeRender = () => {
    metrics.redisSubscriptions.set(subscriber.subscriptionCount);
    metrics.messageHandlerFailures.set(subscriber.hookFailures);
    const stats = db.stats();
    metrics.pgTotal.set(stats.total);
    metrics.pgIdle.set(stats.idle);
    metrics.pgWaiting.set(stats.waiting);
  };

  const access = new Access({ db });
  const clients = new Clients({
    hub,
    metrics,
    access,
    log: log.child({ module: "client" }),
    clientQueueBytes: config.clientQueueBytes,
    queueBudgetBytes: config.queueBudgetBytes,
    stallMs: timings.stallMs,
    limits: config.limits,
    heartbeatMs: timings.heartbeatMs,
    wsIdleTimeoutSeconds: timings.wsIdleTimeoutSeconds,
    wsCloseGraceMs: timings.wsCloseGraceMs,
  });
  const ready = async () => {
    const redisDown = `Redis is not connected${readinessDetail(subscriber.failure)}`;
    if (!subscriber.connected) throw new Error(redisDown);
    await db.ping().catch((err) =>
      Promise.reject(new Error(`PostgreSQL is not answering${readinessDetail(err)}`))
    );
  };
  const { link } = asWorker;
  const handler = createHandler({
    auth: new Authenticator({ db }),
    access,
    clients,
    metrics: link ? instanceMetrics(link, metrics) : metrics,
    log, // request records in pino-http's shape, without a module field
    trustProxy: compileTrust(config.trustedProxyIp),
    ready: link ? instanceReady(link) : ready,
    addressLimit: new AddressLimit({
      limit: config.limits.connectionsPerIp,
      workers: asWorker.workers,
      refusals: metrics.limitRefusals.series({ limit: "connections_per_ip" }),
      log: log.child({ module: "limits" }),
    }),
  });
  const server = startServer({
    listen: config.listen,
    handler,
    log,
    goAway: () => clients.goAway(),
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    reusePort: (asWorker.workers ?? 1) > 1,
    acceptErrors: metrics.acceptErrors.series(),
    announce: link === undefined, // the supervisor announces the instance
  });

  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      await server.shutdown();
      clients.close();
      await subscriber.close();
      await keys.close();
      await client.close();
      await db.close();
    })();
  return { server, hub, metrics, subscriber, ready, close, [Symbol.asyncDispose]: close };
}

/**
 * Reads the configuration, checking first that every permission it and
 * Sluice need was granted: the variables, then the env file, then the rest
 * (worked out from the configuration before any file it names is read).
 */
function configure(args: string[]): Readonly<Config> {
  const envFile = envFileArgument(args);
  const cwd = Deno.cwd();
  checkPermissions(variablePermissions());
  checkPermissions([envFilePermission(envFilePath(envFile), cwd)]);
  checkPermissions(requiredPermissions(loadConfig({ envFile, readFiles: false }), { cwd }));
  return loadConfig({ envFile });
}

/** Stops start-up with one line on stderr (there may be no logger yet) and exit code 1. */
function refuse(message: string): never {
  console.error(message);
  Deno.exit(1);
}

if (import.meta.main) {
  if (Deno.args.includes("--version")) {
    console.log(`sluice ${denoJson.version} (deno ${Deno.version.deno})`); // identifies a binary
    Deno.exit(0);
  }
  let config: Readonly<Config>;
  try {
    config = configure(Deno.args);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    refuse(err.message);
  }
  const log = createLogger({ level: config.logLevel, name: "streaming" });
  for (const name of config.ignoredVariables) {
    log.warn(`${name} is set but ignored: Mastodon's streaming server no longer reads it`);
  }
  await prepareListen(config.listen, log).catch((err) => {
    if (!(err instanceof ConfigError)) throw err;
    refuse(err.message);
  });
  const plan = planWorkers({
    requested: config.workers,
    cpus: availableCpus(),
    listen: config.listen,
    pool: config.postgres.max,
    reusePort: reusePortAvailable(),
  });
  for (const warning of plan.warnings) log.warn(warning);
  if (config.listen.kind === "tcp") refuseIfTaken(config.listen);
  const supervisor = new Supervisor({ config, plan, log: log.child({ module: "workers" }) });
  // Listeners first: a SIGTERM right after "listening" must still shut down gracefully.
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    log.info("Shutting down");
    await supervisor.shutdown();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  try {
    const address = await supervisor.start();
    const url = config.listen.kind === "unix" ? `unix:${address}` : `http://${address}`;
    log.info(`Streaming API now listening on ${url}`, {
      workers: plan.count,
      why: plan.reason,
      db_pool: plan.pools,
    });
  } catch (err) {
    if (!(err instanceof Deno.errors.AddrInUse)) refuse((err as Error).message);
    refuse(`Cannot listen on ${describeListen(config.listen)}: the address is in use`);
  }
}

/**
 * Workers share the port through SO_REUSEPORT, which another process using
 * it (another Sluice) could share too: a plain bind first makes a taken port
 * an error, as with one worker.
 */
function refuseIfTaken(listen: Extract<Listen, { kind: "tcp" }>): void {
  try {
    Deno.listen({ hostname: listen.hostname, port: listen.port }).close();
  } catch (err) {
    if (!(err instanceof Deno.errors.AddrInUse)) throw err;
    refuse(`Cannot listen on ${describeListen(listen)}: the address is in use`);
  }
}

function describeListen(listen: Listen): string {
  return listen.kind === "unix" ? `SOCKET=${listen.path}` : `${listen.hostname}:${listen.port}`;
}
