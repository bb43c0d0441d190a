/**
 * TLS to Redis (`rediss://`) and PostgreSQL (DB_SSLMODE, DATABASE_URL's
 * sslmode/sslrootcert) against a real redis-server and PostgreSQL that
 * accept only TLS, with certificates from a throwaway CA. A private CA is
 * trusted through NODE_EXTRA_CA_CERTS, as for Mastodon's Node server; a
 * wrong one gives a log line saying what to set and a 503 readiness reason.
 *
 * The in-process cases pass NODE_EXTRA_CA_CERTS through parseConfig only, not
 * the process environment, so they test Sluice's own handling of the file
 * (Deno ≥ 2.8 also honours the variable itself; the main.ts case covers that
 * path as an admin runs it).
 */
import assert from "node:assert/strict";
import { type Sluice, start } from "../../main.ts";
import { type PostgresServer, startPostgresServer } from "../../scripts/postgres_server.ts";
import { type RedisServer, startRedisServer } from "../../scripts/redis_server.ts";
import { parseConfig, parseRedisUrl } from "../../src/config.ts";
import { silentLogger } from "../../src/log.ts";
import { RedisClient } from "../../src/redis/client.ts";
import { portOf } from "../../src/server.ts";
import { SseReader } from "../_support/clients.ts";
import { LogLines, type LogRecord } from "../_support/log_lines.ts";
import { spawnMain } from "../_support/main_process.ts";
import { makeTestCa, type TestCa } from "../_support/test_ca.ts";
import { freePort } from "../../scripts/free_port.ts";

const ALICE = { Authorization: "Bearer token-alice" };

/** A CA, a TLS-only redis-server and a TLS-only (hostssl) PostgreSQL, both for 127.0.0.1. */
interface TlsServices {
  ca: TestCa;
  redis: RedisServer;
  pg: PostgresServer;
  [Symbol.asyncDispose](): Promise<void>;
}

async function startTlsServices(): Promise<TlsServices> {
  const ca = await makeTestCa();
  const [redis, pg] = await Promise.all([
    // Also on 127.0.0.2, a name the certificate does not cover.
    startRedisServer({ tls: ca, args: ["--bind", "127.0.0.1", "127.0.0.2"] }),
    startPostgresServer({ tls: { certFile: ca.certFile, keyFile: ca.keyFile, only: true } }),
  ]);
  return {
    ca,
    redis,
    pg,
    [Symbol.asyncDispose]: async () => {
      await Promise.all([redis.stop(), pg.stop()]);
      await ca.remove();
    },
  };
}

/** Redis over TLS (rediss://), PostgreSQL over TLS without certificate checks. */
function tlsEnv(s: TlsServices): Record<string, string> {
  return {
    NODE_ENV: "production",
    REDIS_URL: s.redis.url,
    DB_HOST: "127.0.0.1",
    DB_PORT: String(s.pg.port),
    DB_USER: s.pg.user,
    DB_NAME: s.pg.database,
    DB_SSLMODE: "no-verify",
  };
}

function readFile(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
}

/** Sluice in-process on a free port, configured by `env` only, logging into `logs`. */
function startApp(env: Record<string, string>) {
  const logs = new LogLines();
  const config = parseConfig((name) => env[name], { readTextFile: readFile });
  const listen = { kind: "tcp" as const, hostname: "127.0.0.1", port: 0 };
  const sluice: Sluice = start({ ...config, listen }, logs.logger());
  const http = `http://127.0.0.1:${portOf(sluice.server)}`;
  return { sluice, config, logs, http, [Symbol.asyncDispose]: () => sluice.close() };
}

/** `promise`, or a failure naming `what` after 10 s (a refused TLS handshake is retried forever). */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 10_000);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function readiness(http: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`${http}/api/v1/streaming/health/ready`);
  return { status: response.status, body: await response.text() };
}

async function assertNotReady(http: string, reason: string): Promise<void> {
  const answer = await readiness(http);
  assert.equal(answer.status, 503, answer.body);
  assert.deepEqual(JSON.parse(answer.body), { error: reason });
}

/** The first warning of the subscriber that it cannot connect. */
function subscriberWarning(logs: LogLines): Promise<LogRecord> {
  return logs.find(
    (r) =>
      r.redis === "subscriber" && r.level === "warn" &&
      r.msg === "Cannot connect to Redis, retrying",
    "the subscriber's warning",
  );
}

/** A user stream for alice answers 200 (her token was checked in PostgreSQL). */
async function assertAuthenticates(http: string): Promise<void> {
  await using reader = await SseReader.open(`${http}/api/v1/streaming/user`, ALICE);
  assert.equal(reader.response.status, 200, reader.text);
  await reader.contains(":)\n");
}

Deno.test("Redis over TLS: rediss:// works with NODE_EXTRA_CA_CERTS and fails clearly without", async (t) => {
  await using services = await startTlsServices();
  const env = { ...tlsEnv(services), NODE_EXTRA_CA_CERTS: services.ca.caFile };
  const port = services.redis.port;

  await t.step("an event published to Redis reaches an SSE client", async () => {
    await using app = await startApp(env);
    await within(app.sluice.subscriber.ready(), "the subscriber connected");
    await using publisher = new RedisClient({
      config: { ...parseRedisUrl(services.redis.url), extraCa: app.config.redis.extraCa },
      log: silentLogger,
    });
    await within(publisher.ready(), "the publisher connected");
    await using reader = await SseReader.open(`${app.http}/api/v1/streaming/public`, ALICE);
    await reader.contains(":)\n");
    await within(app.sluice.subscriber.ready(), "SUBSCRIBE confirmed");
    await publisher.publish("timeline:public", '{"event":"delete","payload":"7"}');
    await reader.contains("event: delete\ndata: 7\n\n");
    assert.deepEqual(await readiness(app.http), { status: 200, body: "OK" });
  });

  await t.step("the URL's host is the name checked: localhost works", async () => {
    await using app = await startApp({ ...env, REDIS_URL: `rediss://localhost:${port}` });
    await within(app.sluice.subscriber.ready(), "the subscriber connected");
  });

  await t.step("a host the certificate does not name is refused", async () => {
    await using app = await startApp({ ...env, REDIS_URL: `rediss://127.0.0.2:${port}` });
    const warning = await subscriberWarning(app.logs);
    assert.deepEqual(warning.error, {
      type: "TlsCertificateError",
      message: `TLS certificate of 127.0.0.2:${port} is not valid for 127.0.0.2`,
    });
    await assertNotReady(
      app.http,
      "Redis is not connected: TLS certificate is not valid for 127.0.0.2",
    );
  });

  await t.step("no NODE_EXTRA_CA_CERTS: the log says to set it; readiness 503", async () => {
    const { NODE_EXTRA_CA_CERTS: _, ...withoutCa } = env;
    await using app = await startApp(withoutCa);
    const warning = await subscriberWarning(app.logs);
    assert.deepEqual(warning.error, {
      type: "TlsCertificateError",
      message: `TLS certificate of 127.0.0.1:${port} is not trusted (unknown issuer); ` +
        "set NODE_EXTRA_CA_CERTS to the CA's PEM file",
    });
    await assertNotReady(
      app.http,
      "Redis is not connected: TLS certificate is not trusted (unknown issuer)",
    );
  });

  await t.step(
    "the wrong CA: the log names the file; one warning, then quiet retries",
    async () => {
      await using app = await startApp({ ...env, NODE_EXTRA_CA_CERTS: services.ca.otherCaFile });
      const warning = await subscriberWarning(app.logs);
      assert.equal(
        (warning.error as { message: string }).message,
        `TLS certificate of 127.0.0.1:${port} is not trusted (unknown issuer); ` +
          `NODE_EXTRA_CA_CERTS (${services.ca.otherCaFile}) does not hold the CA that signed it`,
      );
      const retry = (r: LogRecord) =>
        r.redis === "subscriber" && r.msg === "Cannot connect to Redis, retrying";
      const quiet = () => app.logs.filter((r) => retry(r) && r.level === "debug");
      await app.logs.find(() => quiet().length >= 2, "two quiet retries after the warning");
      assert.equal(app.logs.filter((r) => retry(r) && r.level === "warn").length, 1);
      await assertNotReady(
        app.http,
        "Redis is not connected: TLS certificate is not trusted (unknown issuer)",
      );
    },
  );

  await t.step("a plain redis:// client on the TLS port gets an answer, not a hang", async () => {
    await using app = await startApp({ ...env, REDIS_URL: `redis://127.0.0.1:${port}` });
    const warning = await subscriberWarning(app.logs);
    assert.deepEqual(warning.error, {
      type: "RedisConnectionError",
      message: `Redis closed the connection at 127.0.0.1:${port} without answering; ` +
        "if that port accepts only TLS, use a rediss:// URL",
    });
    await assertNotReady(app.http, "Redis is not connected");
  });
});

Deno.test("PostgreSQL over TLS: each sslmode authenticates a token; a wrong CA fails clearly", async (t) => {
  await using services = await startTlsServices();
  await using plainRedis = await startRedisServer(); // Redis is not under test here
  const { pg, ca } = services;
  const env = { ...tlsEnv(services), REDIS_URL: plainRedis.url };
  const url = `postgres://${pg.user}@127.0.0.1:${pg.port}/${pg.database}`;
  const cases: [string, Record<string, string>][] = [
    ["DB_SSLMODE=no-verify needs no CA", { DB_SSLMODE: "no-verify" }],
    ["DATABASE_URL with sslmode=verify-full and sslrootcert", {
      DATABASE_URL: `${url}?sslmode=verify-full&sslrootcert=${ca.caFile}`,
    }],
    ["DATABASE_URL with sslmode=require needs no CA", { DATABASE_URL: `${url}?sslmode=require` }],
  ];
  for (const [name, overrides] of cases) {
    await t.step(name, async () => {
      await using app = await startApp({ ...env, ...overrides });
      await assertAuthenticates(app.http);
      assert.deepEqual(await readiness(app.http), { status: 200, body: "OK" });
    });
  }

  const failures: [string, Record<string, string>, string][] = [
    [
      "DB_SSLMODE=require checks the certificate, as in Mastodon",
      { DB_SSLMODE: "require" },
      "set NODE_EXTRA_CA_CERTS to the CA's PEM file",
    ],
    [
      "the wrong CA in sslrootcert",
      { DATABASE_URL: `${url}?sslmode=verify-full&sslrootcert=${ca.otherCaFile}` },
      "DATABASE_URL's sslrootcert does not hold the CA that signed it",
    ],
  ];
  for (const [name, overrides, hint] of failures) {
    await t.step(`${name}: the failed request logs what to set; readiness 503`, async () => {
      await using app = await startApp({ ...env, ...overrides });
      await assertRefused(app.http, app.logs, pg.port, hint);
    });
  }

  await t.step("a client without TLS is refused at once, not left hanging", async () => {
    await using app = await startApp({ ...env, DB_SSLMODE: "disable" });
    const response = await fetch(`${app.http}/api/v1/streaming/user`, { headers: ALICE });
    assert.equal(response.status, 500);
    await response.body?.cancel();
    const logged = await app.logs.find((r) => r.level === "error", "the failed request");
    assert.match(
      (logged.err as { message: string }).message,
      /no pg_hba\.conf entry .* no encryption/,
    );
    await assertNotReady(app.http, "PostgreSQL is not answering");
  });
});

/** A stream request fails (500) on PostgreSQL's certificate, logged with `hint`; readiness says why. */
async function assertRefused(http: string, logs: LogLines, port: number, hint: string) {
  const response = await fetch(`${http}/api/v1/streaming/user`, { headers: ALICE });
  assert.equal(response.status, 500);
  assert.deepEqual(await response.json(), { error: "An unexpected error occurred" });
  const logged = await logs.find((r) => r.level === "error", "the failed request");
  assert.deepEqual(logged.err, {
    type: "TlsCertificateError",
    message:
      `TLS certificate of 127.0.0.1:${port} is not trusted (unknown issuer or expired); ${hint}`,
  });
  const answer = await readiness(http);
  assert.equal(answer.status, 503);
  assert.match(
    JSON.parse(answer.body).error,
    /: TLS certificate is not trusted \(unknown issuer( or expired)?\)$/,
  );
}

Deno.test("main.ts trusts NODE_EXTRA_CA_CERTS from its environment for Redis and PostgreSQL", async (t) => {
  await using services = await startTlsServices();
  const { ca, redis, pg } = services;
  const env = { ...tlsEnv(services), DB_SSLMODE: "require" };
  const run = async (caFile: string, check: (http: string, logs: LogLines) => Promise<void>) => {
    const port = String(freePort());
    const main = spawnMain({ ...env, NODE_EXTRA_CA_CERTS: caFile, PORT: port });
    try {
      await main.listening();
      await check(`http://127.0.0.1:${port}`, main.logs);
    } finally {
      try {
        main.child.kill("SIGTERM");
      } catch {
        // It exited on its own; listening() or check() reported why.
      }
      await main.exited();
    }
  };

  await t.step("the right CA: rediss:// and DB_SSLMODE=require work, ready", async () => {
    await run(ca.caFile, async (http, logs) => {
      await logs.find((r) => r.msg === "Redis subscriber connected", "the subscriber connected");
      await assertAuthenticates(http);
      assert.deepEqual(await readiness(http), { status: 200, body: "OK" });
    });
  });

  await t.step("the wrong CA: log lines say what to set; readiness 503", async () => {
    await run(ca.otherCaFile, async (http, logs) => {
      const hint = `NODE_EXTRA_CA_CERTS (${ca.otherCaFile}) does not hold the CA that signed it`;
      const warning = await subscriberWarning(logs);
      assert.equal(
        (warning.error as { message: string }).message,
        `TLS certificate of 127.0.0.1:${redis.port} is not trusted (unknown issuer); ${hint}`,
      );
      await assertRefused(http, logs, pg.port, hint);
    });
  });
});
