/**
 * SSE against a real redis-server, PostgreSQL and HTTP client (docs/protocol.md §5).
 */
import assert from "node:assert/strict";
import { rawExchange, SseReader } from "../_support/clients.ts";
import { startServices, startSluice } from "../_support/stack.ts";

const ALICE = { Authorization: "Bearer token-alice" };

Deno.test("SSE streams behave like Mastodon's", async (t) => {
  const services = await startServices();
  const app = await startSluice(services);
  const get = (path: string, headers: Record<string, string> = {}) =>
    fetch(app.http + path, { headers });
  const open = async (path: string, headers: Record<string, string> = ALICE) => {
    const reader = await SseReader.open(app.http + path, headers);
    await reader.contains(":)\n");
    await app.settled();
    return reader;
  };
  const publish = (channel: string, message: string) => services.client.publish(channel, message);

  await t.step("health answers OK with no-store", async () => {
    const res = await get("/api/v1/streaming/health");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/plain");
    assert.equal(res.headers.get("cache-control"), "private, no-store");
    assert.equal(res.headers.get("access-control-allow-origin"), "*");
    assert.equal(await res.text(), "OK");
  });

  await t.step("errors carry Mastodon's statuses and messages", async () => {
    const cases: Array<[string, Record<string, string>, number, string]> = [
      ["/api/v1/streaming/public", {}, 401, "Missing access token"],
      ["/api/v1/streaming/nope", ALICE, 400, "Unknown channel requested"],
      ["/api/v1/streaming/nope", {}, 400, "Unknown channel requested"],
      ["/api/v1/streaming/public", { Authorization: "Bearer nope" }, 401, "Invalid access token"],
      [
        "/api/v1/streaming/user",
        { Authorization: "Bearer token-revoked" },
        401,
        "Invalid access token",
      ],
      [
        "/api/v1/streaming/user",
        { Authorization: "Bearer token-suspended" },
        401,
        "Invalid access token",
      ],
      [
        "/api/v1/streaming/user",
        { Authorization: "Bearer token-disabled" },
        401,
        "Invalid access token",
      ],
      [
        "/api/v1/streaming/user",
        { Authorization: "Bearer token-alice-notifications" },
        401,
        "Access token does not have the required scopes",
      ],
      ["/api/v1/streaming/list?list=2", ALICE, 401, "Not authorized to stream this list"],
      ["/api/v1/streaming/list?list=abc", ALICE, 401, "Not authorized to stream this list"],
      ["/api/v1/streaming/list", ALICE, 400, "Missing list name parameter"],
      ["/api/v1/streaming/hashtag", ALICE, 400, "Missing tag name parameter"],
    ];
    for (const [path, headers, status, message] of cases) {
      const res = await get(path, headers);
      assert.equal(res.status, status, path);
      assert.equal(res.headers.get("content-type"), "application/json");
      assert.deepEqual(await res.json(), { error: message }, path);
    }
  });

  await t.step("a stream opens with :) and carries events as event/data lines", async () => {
    await using reader = await open("/api/v1/streaming/public");
    assert.equal(reader.response.headers.get("content-type"), "text/event-stream");
    assert.equal(reader.response.headers.get("cache-control"), "private, no-store");
    await publish("timeline:public", '{"event":"delete","payload":"1"}');
    await reader.contains("event: delete\ndata: 1\n\n");
    assert.equal(reader.text, ":)\nevent: delete\ndata: 1\n\n");
  });

  await t.step("the token may come from the query string", async () => {
    await using reader = await open("/api/v1/streaming/user?access_token=token-alice", {});
    await publish("timeline:1", '{"event":"delete","payload":"7"}');
    await reader.contains("data: 7\n\n");
  });

  await t.step("user includes notifications only with a notifications scope", async () => {
    await using alice = await open("/api/v1/streaming/user");
    await using bob = await open("/api/v1/streaming/user", { Authorization: "Bearer token-bob" });
    const note = '{"event":"notification","payload":{"id":"1"}}';
    assert.equal(await publish("timeline:2:notifications", note), 0);
    assert.equal(await publish("timeline:1:notifications", note), 1);
    await publish("timeline:2", '{"event":"delete","payload":"2"}');
    await alice.contains('data: {"id":"1"}');
    await bob.contains("data: 2\n\n");
    assert.equal(bob.text.includes("notification"), false);
  });

  await t.step("hashtag channels are normalised; list streams need ownership", async () => {
    await using tag = await open("/api/v1/streaming/hashtag?tag=Caf%C3%A9");
    await using list = await open("/api/v1/streaming/list?list=1");
    await publish("timeline:hashtag:cafe", '{"event":"delete","payload":"3"}');
    await publish("timeline:list:1", '{"event":"delete","payload":"4"}');
    await tag.contains("data: 3\n\n");
    await list.contains("data: 4\n\n");
  });

  await t.step("kill on the access-token channel ends the response", async () => {
    const reader = await open("/api/v1/streaming/public");
    await publish("timeline:access_token:1", '{"event":"kill"}');
    await reader.end();
    assert.equal(reader.error, undefined, "the response was ended, not cut");
    assert.equal(reader.text, ":)\n");
    await reader.close();
  });

  await t.step("kill on the system channel ends every stream of the account", async () => {
    const a = await open("/api/v1/streaming/public");
    const b = await open("/api/v1/streaming/user");
    await publish("timeline:system:1", '{"event":"kill"}');
    await Promise.all([a.end(), b.end()]);
    assert.ok(a.endedCleanly && b.endedCleanly, `cut, not ended: ${a.error ?? b.error}`);
    await a.close();
    await b.close();
  });

  await t.step("subscribed: keys are set for stream channels with a TTL of 1080 s", async () => {
    await using _reader = await open("/api/v1/streaming/user");
    for (const key of ["subscribed:timeline:1", "subscribed:timeline:1:notifications"]) {
      const ttl = Number(await services.client.command(["TTL", key]));
      assert.ok(ttl > 1000 && ttl <= 1080, `${key} TTL ${ttl}`);
    }
    assert.equal(
      await services.client.command(["EXISTS", "subscribed:timeline:access_token:1"]),
      0,
    );
    assert.equal(await services.client.command(["EXISTS", "subscribed:timeline:system:1"]), 0);
  });

  await t.step("OPTIONS is answered without a token", async () => {
    const res = await fetch(app.http + "/api/v1/streaming/public", {
      method: "OPTIONS",
      headers: { "Access-Control-Request-Headers": "authorization" },
    });
    assert.equal(res.status, 204);
    assert.equal(res.headers.get("access-control-allow-headers"), "authorization");
    assert.equal(res.headers.get("access-control-allow-methods"), "GET,HEAD,PUT,PATCH,POST,DELETE");
    await res.body?.cancel();
  });

  await t.step("a POST to a stream path is authenticated, then 404", async () => {
    const res = await fetch(app.http + "/api/v1/streaming/user", {
      method: "POST",
      headers: ALICE,
    });
    assert.equal(res.status, 404);
    assert.deepEqual(await res.json(), { error: "Not found" });
    const anon = await fetch(app.http + "/api/v1/streaming/user", { method: "POST" });
    assert.equal(anon.status, 401);
    await anon.body?.cancel();
  });

  await t.step("the raw response starts with Mastodon's status line and :)", async () => {
    const text = await rawExchange(
      app.port,
      "GET /api/v1/streaming/public HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token-alice\r\n\r\n",
      (got) => got.includes(":)\n"),
    );
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\ntransfer-encoding: chunked\r\n/i);
  });

  await app.close();
  await services.close();
});
