/**
 * GET /api/v1/streaming/health/ready over HTTP: OK while Redis and
 * PostgreSQL work, 503 with a JSON reason while either is down, OK again
 * once it is back.
 */
import assert from "node:assert/strict";
import { LogLines } from "../_support/log_lines.ts";
import { startServices, startSluice, type TestSluice } from "../_support/stack.ts";

async function ready(app: TestSluice): Promise<{ status: number; type: string; body: string }> {
  const response = await fetch(`${app.http}/api/v1/streaming/health/ready`);
  const type = response.headers.get("content-type") ?? "";
  return { status: response.status, type, body: await response.text() };
}

const OK = { status: 200, type: "text/plain", body: "OK" };

/** Asserts a 503 whose JSON reason matches `reason`. */
async function assertNotReady(app: TestSluice, reason: RegExp): Promise<void> {
  const answer = await ready(app);
  assert.equal(answer.status, 503, answer.body);
  assert.equal(answer.type, "application/json");
  assert.match(JSON.parse(answer.body).error, reason);
}

Deno.test("Readiness is 503 with a reason while Redis or PostgreSQL is down", async (t) => {
  const services = await startServices();
  const logs = new LogLines();
  const app = await startSluice(services, {}, {}, logs.logger());
  try {
    await t.step("OK while both answer", async () => assert.deepEqual(await ready(app), OK));

    await t.step("503 while Redis is down, OK once it is back", async () => {
      const from = logs.records.length;
      await services.redis.halt();
      await logs.find(
        (r) => r.redis === "subscriber" && r.level === "warn",
        "the subscriber noticed Redis is gone",
        { from },
      );
      await assertNotReady(app, /Redis/);
      await services.redis.restart();
      await app.settled(); // the subscriber is connected again
      assert.deepEqual(await ready(app), OK);
    });

    await t.step("503 while PostgreSQL is down, OK once it is back", async () => {
      await services.pg.halt();
      await assertNotReady(app, /PostgreSQL/);
      await services.pg.restart();
      assert.deepEqual(await ready(app), OK);
    });
  } finally {
    await app.close();
    await services.close();
  }
});
