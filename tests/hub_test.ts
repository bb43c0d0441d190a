import assert from "node:assert/strict";
import type { StreamEvent } from "../src/event.ts";
import { Hub, type Listener } from "../src/hub.ts";
import { silentLogger } from "../src/log.ts";
import { Metrics } from "../src/metrics.ts";

function fakeRedis() {
  const calls: string[] = [];
  return {
    calls,
    subscriber: {
      subscribe: (c: string) => calls.push(`SUBSCRIBE ${c}`),
      unsubscribe: (c: string) => calls.push(`UNSUBSCRIBE ${c}`),
    },
    keys: {
      add: (c: string) => calls.push(`KEY+ ${c}`),
      remove: (c: string) => calls.push(`KEY- ${c}`),
    },
  };
}

function recorder(): Listener & { got: StreamEvent[] } {
  const got: StreamEvent[] = [];
  return { got, deliver: (event) => got.push(event) };
}

function makeHub() {
  const redis = fakeRedis();
  const metrics = new Metrics();
  const hub = new Hub({ ...redis, log: silentLogger, metrics });
  return { hub, redis, metrics };
}

Deno.test("Hub subscribes on the first listener and unsubscribes when the last leaves", () => {
  const { hub, redis } = makeHub();
  const a = recorder(), b = recorder();
  hub.attach("timeline:public", a, true);
  hub.attach("timeline:public", b, true);
  assert.deepEqual(redis.calls, ["SUBSCRIBE timeline:public", "KEY+ timeline:public"]);
  hub.detach("timeline:public", a, true);
  assert.deepEqual(redis.calls.length, 2);
  hub.detach("timeline:public", b, true);
  assert.deepEqual(redis.calls.slice(2), ["KEY- timeline:public", "UNSUBSCRIBE timeline:public"]);
  assert.deepEqual(hub.channels, []);
});

Deno.test("Hub keeps subscribed: keys only for stream subscriptions, not system ones", () => {
  const { hub, redis } = makeHub();
  const system = recorder(), stream = recorder();
  hub.attach("timeline:1", system, false);
  assert.deepEqual(redis.calls, ["SUBSCRIBE timeline:1"]);
  hub.attach("timeline:1", stream, true);
  assert.deepEqual(hub.streamChannels, ["timeline:1"]);
  hub.detach("timeline:1", stream, true);
  assert.deepEqual(hub.streamChannels, []);
  assert.deepEqual(redis.calls, ["SUBSCRIBE timeline:1", "KEY+ timeline:1", "KEY- timeline:1"]);
});

Deno.test("Hub ignores a detach of a listener it does not have", () => {
  const { hub, redis } = makeHub();
  hub.attach("c", recorder(), true);
  hub.detach("c", recorder(), true);
  hub.detach("other", recorder(), true);
  assert.deepEqual(redis.calls, ["SUBSCRIBE c", "KEY+ c"]);
});

Deno.test("Hub parses a message once and hands the same event to every listener in order", () => {
  const { hub, metrics } = makeHub();
  const a = recorder(), b = recorder();
  hub.attach("c", a, true);
  hub.attach("c", b, true);
  hub.publish("c", '{"event":"delete","payload":"1"}');
  hub.publish("c", '{"event":"delete","payload":"2"}');
  assert.equal(a.got.length, 2);
  assert.equal(a.got[0], b.got[0]);
  assert.deepEqual(a.got.map((e) => e.payload), ["1", "2"]);
  assert.equal(metrics.redisMessagesReceived.get(), 2);
});

Deno.test("Hub counts malformed messages and keeps going", () => {
  const { hub, metrics } = makeHub();
  const a = recorder();
  hub.attach("c", a, true);
  hub.publish("c", "this is not json");
  hub.publish("c", "[1]");
  hub.publish("c", '{"event":"delete","payload":"3"}');
  assert.equal(metrics.malformedMessages.get({ reason: "invalid_json" }), 1);
  assert.equal(metrics.malformedMessages.get({ reason: "not_an_object" }), 1);
  assert.deepEqual(a.got.map((e) => e.payload), ["3"]);
});

Deno.test("Hub counts stream messages without payload", () => {
  const { hub, metrics } = makeHub();
  hub.attach("c", recorder(), true);
  hub.publish("c", '{"event":"update"}');
  assert.equal(metrics.undeliverableMessages.get(), 1);
});

Deno.test("Hub drops messages for channels nobody listens to", () => {
  const { hub, metrics } = makeHub();
  hub.publish("nobody", '{"event":"delete","payload":"1"}');
  assert.equal(metrics.redisMessagesReceived.get(), 1);
});

Deno.test("A listener that throws does not stop delivery to the others", () => {
  const { hub } = makeHub();
  const a = recorder(), b = recorder();
  hub.attach("c", {
    deliver: () => {
      throw new Error("broken client");
    },
  }, true);
  hub.attach("c", a, true);
  hub.attach("c", b, true);
  hub.publish("c", '{"event":"delete","payload":"1"}');
  assert.equal(a.got.length, 1);
  assert.equal(b.got.length, 1);
});
