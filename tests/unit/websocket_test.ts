import assert from "node:assert/strict";
import type { Viewer } from "../../src/auth.ts";
import {
  BINARY_REASON,
  MAX_PENDING_MESSAGES,
  MESSAGE_TOO_BIG,
  OVERLOADED,
  POLICY_VIOLATION,
  queryParams,
  WebSocketSession,
} from "../../src/websocket.ts";
import { type AccessDb, accessDb, FakePort, sessionContext, viewer } from "../_support/fakes.ts";

const alice: Viewer = viewer();

function setup(
  who: Viewer = alice,
  clientQueueBytes = 1 << 20,
  ownsList?: AccessDb["ownsList"],
) {
  const fake = sessionContext(clientQueueBytes, accessDb(ownsList ? { ownsList } : {}));
  const port = new FakePort();
  const session = new WebSocketSession(who, fake.context, port);
  return {
    session,
    port,
    hub: fake.hub,
    subscribed: fake.subscribed,
    metrics: fake.metrics,
    context: fake.context,
  };
}

const msg = (o: unknown) => JSON.stringify(o);

Deno.test("WebSocket session listens to both system channels from the start", () => {
  const { subscribed, metrics } = setup();
  assert.deepEqual([...subscribed], ["timeline:access_token:1", "timeline:system:1"]);
  assert.equal(metrics.connectedChannels.get({ type: "websocket", channel: "system" }), 2);
});

Deno.test("WebSocket session subscribes ?stream= on connect with the query as params", async () => {
  const { session, subscribed, port } = setup();
  await session.start(new URLSearchParams("stream=hashtag&tag=Foo&access_token=x"));
  assert.ok(subscribed.has("timeline:hashtag:foo"));
  assert.deepEqual(port.sent, []);
});

Deno.test("WebSocket session delivers events with its own stream label", async () => {
  const { session, hub, port } = setup();
  await session.handleMessage(msg({ type: "subscribe", stream: "hashtag", tag: "Mastodon" }));
  hub.publish("timeline:hashtag:mastodon", '{"event":"delete","payload":"9"}');
  assert.deepEqual(port.sent, ['{"stream":["hashtag","Mastodon"],"event":"delete","payload":"9"}']);
});

Deno.test("A duplicate subscribe is silent and keeps the first label", async () => {
  const { session, hub, port } = setup();
  await session.handleMessage(msg({ type: "subscribe", stream: "hashtag", tag: "foo" }));
  await session.handleMessage(msg({ type: "subscribe", stream: "hashtag", tag: "Foo" }));
  hub.publish("timeline:hashtag:foo", '{"event":"delete","payload":"1"}');
  assert.deepEqual(port.sent, ['{"stream":["hashtag","foo"],"event":"delete","payload":"1"}']);
});

Deno.test("user and user:notification each deliver a notification once", async () => {
  const { session, hub, port } = setup();
  await session.handleMessage(msg({ type: "subscribe", stream: "user" }));
  await session.handleMessage(msg({ type: "subscribe", stream: "user:notification" }));
  hub.publish("timeline:1:notifications", '{"event":"notification","payload":{"id":"5"}}');
  assert.deepEqual(port.sent.map((t) => JSON.parse(t).stream), [["user"], ["user:notification"]]);
});

Deno.test("Subscription errors are frames with error and status; the socket stays open", async () => {
  const { session, port } = setup({ ...alice, scopes: ["read:notifications"] });
  await session.handleMessage(msg({ type: "subscribe", stream: "bogus" }));
  await session.handleMessage(msg({ type: "subscribe", stream: "user:notification" }));
  const full = setup();
  await full.session.handleMessage(msg({ type: "subscribe", stream: "bogus" }));
  await full.session.handleMessage(msg({ type: "subscribe", stream: "hashtag" }));
  await full.session.handleMessage(msg({ type: "subscribe", stream: "list" }));
  await full.session.handleMessage(msg({ type: "subscribe", stream: "list", list: "2" }));
  assert.deepEqual(port.sent, [
    '{"error":"Access token does not have the required scopes","status":401}',
  ]);
  assert.deepEqual(full.port.sent, [
    '{"error":"Unknown stream type","status":400}',
    '{"error":"Missing tag name parameter","status":400}',
    '{"error":"Missing list name parameter","status":400}',
    '{"error":"Not authorized to stream this list","status":401}',
  ]);
  assert.equal(full.port.closed, undefined);
});

Deno.test("Unsubscribe stops delivery; unknown ones are silent; bad ones answer an error", async () => {
  const { session, hub, port, subscribed } = setup();
  await session.handleMessage(msg({ type: "subscribe", stream: "public" }));
  await session.handleMessage(msg({ type: "unsubscribe", stream: "public:local" }));
  await session.handleMessage(msg({ type: "unsubscribe", stream: "public" }));
  assert.equal(subscribed.has("timeline:public"), false);
  hub.publish("timeline:public", '{"event":"delete","payload":"1"}');
  await session.handleMessage(msg({ type: "unsubscribe", stream: "hashtag" }));
  assert.deepEqual(port.sent, ['{"error":"Error unsubscribing from channel"}']);
});

Deno.test("Invalid JSON, scalars and unknown types are ignored", async () => {
  const { session, port } = setup();
  for (const text of ["{", "null", "42", "[]", msg({ type: "ping" }), msg({ stream: "user" })]) {
    await session.handleMessage(text);
  }
  assert.deepEqual(port.sent, []);
  assert.equal(port.closed, undefined);
});

Deno.test("A binary frame closes with 1003 and Mastodon's reason", async () => {
  const { session, port, subscribed } = setup();
  await session.handleMessage(new ArrayBuffer(3));
  assert.deepEqual(port.closed, { code: 1003, reason: BINARY_REASON });
  assert.equal(subscribed.size, 0);
});

Deno.test("kill closes without a status code and releases every channel", async () => {
  const { session, hub, port, subscribed, metrics } = setup();
  await session.handleMessage(msg({ type: "subscribe", stream: "user" }));
  hub.publish("timeline:access_token:1", '{"event":"kill"}');
  assert.deepEqual(port.closed, { code: undefined, reason: undefined });
  assert.equal(subscribed.size, 0);
  assert.equal(metrics.connectedClients.get({ type: "websocket" }), 0);
});

Deno.test("filters_changed on the system channel calls the connection's hook", () => {
  const { session, hub } = setup();
  let called = 0;
  session.onFiltersChanged = () => called++;
  hub.publish("timeline:system:1", '{"event":"filters_changed"}');
  assert.equal(called, 1);
});

Deno.test("A client whose send buffer passes the hard cap is closed with 1013 and counted", async () => {
  const { session, hub, port, metrics } = setup(alice, 100);
  await session.handleMessage(msg({ type: "subscribe", stream: "public" }));
  hub.publish("timeline:public", '{"event":"delete","payload":"1"}');
  port.bufferedAmount = 1600; // 16 x SLUICE_CLIENT_QUEUE_BYTES: followed, not cut
  hub.publish("timeline:public", '{"event":"delete","payload":"2"}');
  assert.equal(session.closed, false);
  port.bufferedAmount = 1601;
  hub.publish("timeline:public", '{"event":"delete","payload":"3"}');
  assert.equal(port.sent.length, 2);
  assert.equal(port.closed?.code, OVERLOADED);
  assert.equal(metrics.slowClientDisconnects.get({ type: "websocket" }), 1);
  assert.equal(metrics.slowClientCuts.get({ reason: "cap" }), 1);
  assert.ok(session.closed);
});

Deno.test("A WebSocket behind and not draining is cut by the queue watch with 1013", async () => {
  const { session, hub, port, metrics, context } = setup(alice, 100);
  await session.handleMessage(msg({ type: "subscribe", stream: "public" }));
  hub.publish("timeline:public", '{"event":"delete","payload":"1"}');
  port.bufferedAmount = 500;
  hub.publish("timeline:public", '{"event":"delete","payload":"2"}');
  assert.equal(context.queues.size, 1);
  context.queues.tick(); // the first look: bytes were added since, that is progress
  assert.equal(session.closed, false);
  context.queues.tick(); // nothing drained and 500 > 100 waiting
  assert.equal(port.closed?.code, OVERLOADED);
  assert.equal(metrics.slowClientCuts.get({ reason: "behind" }), 1);
});

Deno.test("queryParams turns repeated keys into arrays", () => {
  assert.deepEqual(queryParams(new URLSearchParams("a=1&b=2&a=3")), { a: ["1", "3"], b: "2" });
});

Deno.test("Frames are handled in arrival order: an unsubscribe waits for the slow subscribe", async () => {
  const ownership = Promise.withResolvers<boolean>();
  const { session, subscribed } = setup(alice, 1 << 20, () => ownership.promise);
  const subscribing = session.receive(msg({ type: "subscribe", stream: "list", list: "1" }));
  const unsubscribing = session.receive(msg({ type: "unsubscribe", stream: "list", list: "1" }));
  await Promise.resolve();
  assert.ok(!subscribed.has("timeline:list:1"), "nothing subscribed before the database answers");
  ownership.resolve(true);
  await subscribing;
  assert.ok(session.isSubscribed("timeline:list:1"), "the subscribe went first");
  await unsubscribing;
  assert.ok(!session.isSubscribed("timeline:list:1"));
  assert.ok(!subscribed.has("timeline:list:1"));
});

Deno.test("?stream= on connect is handled before the first frame", async () => {
  const ownership = Promise.withResolvers<boolean>();
  const { session } = setup(alice, 1 << 20, () => ownership.promise);
  const started = session.start(new URLSearchParams("stream=list&list=1"));
  const unsubscribing = session.receive(msg({ type: "unsubscribe", stream: "list", list: "1" }));
  ownership.resolve(true);
  await started;
  assert.ok(session.isSubscribed("timeline:list:1"));
  await unsubscribing;
  assert.ok(!session.isSubscribed("timeline:list:1"));
});

Deno.test("A client flooding frames faster than they are handled is closed with 1008", () => {
  const never = new Promise<boolean>(() => {});
  const { session, port } = setup(alice, 1 << 20, () => never);
  for (let i = 0; i < MAX_PENDING_MESSAGES; i++) {
    session.receive(msg({ type: "subscribe", stream: "list", list: String(i + 1) }));
  }
  assert.ok(!session.closed, "up to the limit the frames wait");
  session.receive(msg({ type: "subscribe", stream: "list", list: "x" }));
  assert.equal(port.closed?.code, POLICY_VIOLATION);
  assert.ok(session.closed);
});

Deno.test("A subscribe beyond the limit gets a 429 error frame; the socket stays", async () => {
  const fake = sessionContext(1 << 20, accessDb(), { subscriptionsPerWebSocket: 2 });
  const port = new FakePort();
  const session = new WebSocketSession(alice, fake.context, port);
  for (const tag of ["a", "b", "c"]) {
    await session.handleMessage(msg({ type: "subscribe", stream: "hashtag", tag }));
  }
  assert.deepEqual(port.sent, [msg({ error: "Too many subscriptions", status: 429 })]);
  assert.equal(session.subscriptionCount, 2);
  assert.ok(!fake.subscribed.has("timeline:hashtag:c"), "not added");
  assert.equal(port.closed, undefined, "the connection stays");
  assert.equal(fake.metrics.limitRefusals.get({ limit: "subscriptions_per_websocket" }), 1);
  await session.handleMessage(msg({ type: "unsubscribe", stream: "hashtag", tag: "a" }));
  await session.handleMessage(msg({ type: "subscribe", stream: "hashtag", tag: "c" }));
  assert.ok(fake.subscribed.has("timeline:hashtag:c"), "room again after an unsubscribe");
});

Deno.test("10,000 hashtag subscribes on one socket hold at most the default 1,000", async () => {
  const { session, port, subscribed, metrics } = setup();
  for (let i = 0; i < 10_000; i++) {
    await session.requestSubscribe("hashtag", { tag: `tag${i}` });
  }
  assert.equal(session.subscriptionCount, 1_000);
  assert.equal([...subscribed].filter((c) => c.startsWith("timeline:hashtag:")).length, 1_000);
  assert.equal(port.sent.length, 9_000);
  assert.equal(metrics.limitRefusals.get({ limit: "subscriptions_per_websocket" }), 9_000);
});

Deno.test("A text message over the size limit closes the socket with 1009", async (t) => {
  for (
    const [what, text, closes] of [
      ["at the limit", "x".repeat(64), false],
      ["one byte over", "x".repeat(65), true],
      ["over in UTF-8 only", "é".repeat(33), true], // 33 characters, 66 bytes
      ["multi-byte within the limit", "é".repeat(32), false],
    ] as const
  ) {
    await t.step(what, async () => {
      const fake = sessionContext(1 << 20, accessDb(), { webSocketMessageBytes: 64 });
      const port = new FakePort();
      const session = new WebSocketSession(alice, fake.context, port);
      await session.receive(text);
      assert.deepEqual(
        port.closed,
        closes ? { code: MESSAGE_TOO_BIG, reason: "Message too big" } : undefined,
      );
      assert.equal(session.closed, closes);
      const refusals = fake.metrics.limitRefusals.get({ limit: "websocket_message_bytes" });
      assert.equal(refusals, closes ? 1 : 0);
    });
  }
});

Deno.test("A WebSocket that Deno is closing (an unanswered ping) is released at the next event, and its close armed", async () => {
  const { session, hub, port, metrics } = setup();
  await session.handleMessage(msg({ type: "subscribe", stream: "public" }));
  port.open = false; // Deno started closing it; what is sent now is discarded
  hub.publish("timeline:public", '{"event":"delete","payload":"1"}');
  assert.deepEqual(port.sent, []);
  assert.ok(port.closed, "closed by Sluice too: the stalled close is dropped after the grace");
  assert.ok(session.closed);
  assert.equal(metrics.connectedClients.get({ type: "websocket" }), 0);
  assert.equal(metrics.messagesSent.get({ type: "websocket" }), 0, "nothing counted as sent");
});
