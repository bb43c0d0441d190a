/**
 * Fault: secrets in the log. A real main.ts (two workers) at LOG_LEVEL=trace
 * and at debug, with a Redis password and a PostgreSQL password, is given
 * tokens every way a client can send one (header, query in each encoding,
 * subprotocol, WebSocket frames), wrong tokens, and a Redis and a PostgreSQL
 * outage. Then no line of stdout or stderr may hold any token or password:
 * raw, percent-encoded or base64. Every secret is random, and the log must
 * show the requests and the outages, so the search cannot pass by accident.
 */
import assert from "node:assert/strict";
import { rawExchange, SseReader, WsClient } from "../_support/clients.ts";
import { type Instance, spawnInstance } from "../_support/faults.ts";
import { stopping } from "../_support/main_process.ts";
import { type Services, startServices } from "../_support/stack.ts";

/** A distinctive secret: a label, URL-special characters and 128 random bits. */
function secret(label: string, special = ""): string {
  return `${label}${special}${crypto.randomUUID().replaceAll("-", "")}`;
}

const REDIS_PASSWORD = secret("redis", "+/#");
const PG_PASSWORD = secret("pg", "+/#");

/** Tokens by how they are sent; the `valid` ones are in the database. */
const TOKENS = {
  header: secret("hdr"),
  query: secret("qry"),
  nameEscaped: secret("esc"),
  nameUpper: secret("upp"),
  valueEscaped: secret("val"),
  repeatedA: secret("repa"),
  repeatedB: secret("repb"),
  subprotocol: secret("sub"),
  frame: secret("frm"),
  wrongHeader: secret("bad"),
  wrongQuery: secret("badq"),
  wrongProtocol: secret("badp"),
};
const VALID = ["header", "query", "nameEscaped", "valueEscaped", "subprotocol", "frame"] as const;

/** Every form in which `value` could show up in a log line. */
function forms(value: string): string[] {
  const bytes = [...new TextEncoder().encode(value)];
  const escaped = bytes.map((b) => `%${b.toString(16).padStart(2, "0").toUpperCase()}`).join("");
  const base64 = (text: string) => btoa(text);
  return [
    value,
    encodeURIComponent(value),
    escaped,
    escaped.toLowerCase(),
    base64(value),
    base64(`:${value}`),
    base64(`postgres:${value}`),
    base64(`default:${value}`),
  ];
}

/** Redis with a password and PostgreSQL with a password, and a command connection. */
async function startLockedServices(): Promise<Services> {
  const services = await startServices({ redisPassword: REDIS_PASSWORD, pgPassword: PG_PASSWORD });
  const values = VALID.map((k) => `('${TOKENS[k]}', 'read write follow', 1)`).join(", ");
  await services.pg.query(
    `INSERT INTO oauth_access_tokens (token, scopes, resource_owner_id) VALUES ${values}`,
  );
  return services;
}

/** SSE requests with a token in the header and in the query, each encoding; their statuses. */
async function sseRequests(instance: Instance): Promise<number[]> {
  const t = TOKENS;
  const cases: Array<[string, Record<string, string>]> = [
    ["", { Authorization: `Bearer ${t.header}` }],
    [`?access_token=${t.query}`, {}],
    [`?access%5Ftoken=${t.nameEscaped}`, {}],
    [`?ACCESS_TOKEN=${t.nameUpper}`, {}],
    [`?access_token=${forms(t.valueEscaped)[2]}`, {}],
    [`?access_token=${t.repeatedA}&access_token=${t.repeatedB}`, {}],
    ["", { Authorization: `Bearer ${t.wrongHeader}` }],
    [`?access_token=${t.wrongQuery}`, {}],
  ];
  const statuses: number[] = [];
  for (const [query, headers] of cases) {
    const reader = await SseReader.open(`${instance.http}/api/v1/streaming/user${query}`, headers);
    statuses.push(reader.response.status);
    if (reader.response.status === 200) await reader.contains(":)");
    await reader.close();
  }
  return statuses;
}

/** WebSockets: token as subprotocol, wrong subprotocol, tokens inside frames. */
async function webSocketRequests(instance: Instance): Promise<void> {
  const t = TOKENS;
  const byProtocol = await WsClient.open(`${instance.ws}/api/v1/streaming`, t.subprotocol);
  byProtocol.send(JSON.stringify({ type: "subscribe", stream: "user", access_token: t.frame }));
  byProtocol.send(JSON.stringify({ type: "subscribe", stream: `nope-${t.frame}` }));
  byProtocol.send(`not json ${t.frame}`);
  byProtocol.send(JSON.stringify({ type: `odd-${t.frame}`, access_token: t.frame }));
  byProtocol.send(JSON.stringify({ type: "unsubscribe", stream: "user", access_token: t.frame }));
  const error = JSON.parse(await byProtocol.next());
  assert.ok(error.error, `an error frame for the unknown stream: ${JSON.stringify(error)}`);
  await byProtocol.close();
  const refused = await rawExchange(
    instance.port,
    "GET /api/v1/streaming?stream=user HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
      `dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: ${t.wrongProtocol}\r\n\r\n`,
    (received) => received.includes("\r\n\r\n"),
  );
  assert.match(refused, /^HTTP\/1\.1 401 /);
}

/** Stops Redis and PostgreSQL in turn, so that connection errors are logged, and starts them. */
async function outages(instance: Instance, services: Services): Promise<void> {
  const { main } = instance;
  const from = main.logs.records.length;
  await services.redis.halt("SIGKILL");
  await main.logs.find((r) => r.redis === "subscriber" && r.level === "warn", "Redis lost", {
    from,
  });
  await services.redis.restart();
  await main.logs.find((r) => r.msg === "Redis subscriber reconnected", "Redis back", { from });
  await services.pg.halt();
  const response = await fetch(`${instance.http}/api/v1/streaming/user`, {
    headers: { Authorization: `Bearer ${TOKENS.header}` },
  });
  assert.equal(response.status, 500);
  await response.body?.cancel();
  await services.pg.restart();
}

/** Runs the whole exercise at `level` with the passwords given through `env`; returns every line. */
async function exercise(level: "trace" | "debug", env: (s: Services) => Record<string, string>) {
  const services = await startLockedServices();
  const instance = spawnInstance(services, { LOG_LEVEL: level, ...env(services) });
  try {
    await stopping(instance.main, async () => {
      await instance.main.listening();
      assert.deepEqual(await sseRequests(instance), [200, 200, 200, 401, 200, 401, 401, 401]);
      await webSocketRequests(instance);
      await outages(instance, services);
    });
  } finally {
    await services.close();
  }
  const { stderr } = await instance.main.exited();
  const lines = [
    ...instance.main.logs.records.map((r) => JSON.stringify(r)),
    ...instance.main.logs.other,
    ...stderr.split("\n"),
  ];
  return { lines, logs: instance.main.logs };
}

/** Asserts that the log holds no secret in any form, and is real (requests and outages logged). */
function assertNoSecret(result: Awaited<ReturnType<typeof exercise>>, level: string): void {
  const { lines, logs } = result;
  const secrets = { ...TOKENS, REDIS_PASSWORD, PG_PASSWORD };
  for (const [name, value] of Object.entries(secrets)) {
    for (const form of forms(value)) {
      const leaks = lines.filter((line) => line.includes(form));
      assert.deepEqual(leaks, [], `${name} (as ${form}) reached the log`);
    }
  }
  const requests = logs.filter((r) => r.msg === "request completed" || r.msg === "request errored");
  assert.equal(
    requests.length,
    11,
    "one record per request (8 SSE, 2 WebSocket, 1 during the outage)",
  );
  const statuses = requests.map((r) => (r.res as { statusCode: number }).statusCode);
  assert.deepEqual(statuses.sort(), [101, 200, 200, 200, 200, 401, 401, 401, 401, 401, 500]);
  const urls = requests.map((r) => (r.req as { url: string }).url);
  assert.ok(urls.includes("/api/v1/streaming/user?access%5Ftoken=[Redacted]"), urls.join("\n"));
  // Sluice has no trace records of its own: debug ones show the level let them through.
  assert.ok(logs.filter((r) => r.level === "debug").length > 0, `debug records at ${level}`);
  assert.ok(logs.filter((r) => r.redis !== undefined && r.level === "warn").length > 0);
}

Deno.test("At LOG_LEVEL=trace, with REDIS_PASSWORD and DB_PASS, no token or password reaches stdout or stderr", async () => {
  const result = await exercise("trace", (s) => ({
    REDIS_PASSWORD,
    DB_PASS: PG_PASSWORD,
    DB_USER: s.pg.user,
  }));
  assertNoSecret(result, "trace");
});

Deno.test("At LOG_LEVEL=debug, with the passwords inside REDIS_URL and DATABASE_URL, no secret reaches the log", async () => {
  const result = await exercise("debug", (s) => ({
    REDIS_URL: `redis://:${encodeURIComponent(REDIS_PASSWORD)}@127.0.0.1:${s.redis.port}`,
    DATABASE_URL: `postgres://${s.pg.user}:${
      encodeURIComponent(PG_PASSWORD)
    }@127.0.0.1:${s.pg.port}/${s.pg.database}`,
  }));
  assertNoSecret(result, "debug");
});
