import assert from "node:assert/strict";
import type { StreamEvent } from "../../src/event.ts";
import { EventFacts, FilterCache, type FilterViewer, type StatusFacts } from "../../src/filter.ts";
import { FACTS_IN_FLIGHT, type FactsSource, type Listener, MAX_BACKLOG } from "../../src/hub.ts";
import { fakeHub } from "../_support/fakes.ts";

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function recorder(): Listener & { got: StreamEvent[] } {
  const got: StreamEvent[] = [];
  return { got, deliver: (event) => got.push(event) };
}

function makeHub() {
  const { hub, metrics, calls } = fakeHub();
  return { hub, redis: { calls }, metrics };
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
});

Deno.test("Hub keeps subscribed: keys only for stream subscriptions, not system ones", () => {
  const { hub, redis } = makeHub();
  const system = recorder(), stream = recorder();
  hub.attach("timeline:1", system, false);
  assert.deepEqual(redis.calls, ["SUBSCRIBE timeline:1"]);
  hub.attach("timeline:1", stream, true);
  hub.detach("timeline:1", stream, true);
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

Deno.test("Hub counts and drops messages for channels nobody listens to", () => {
  const { hub, metrics } = makeHub();
  const listener = recorder();
  hub.attach("somebody", listener, true);
  hub.publish("nobody", '{"event":"delete","payload":"1"}');
  hub.publish("nobody", "not even JSON");
  assert.equal(metrics.redisMessagesReceived.get(), 2);
  assert.equal(metrics.unlistenedMessages.get(), 2);
  assert.equal(metrics.malformedMessages.get({ reason: "invalid_json" }), 0, "never parsed");
  assert.deepEqual(listener.got, []);
  hub.publish("somebody", '{"event":"delete","payload":"2"}');
  assert.equal(metrics.unlistenedMessages.get(), 2);
  assert.equal(listener.got.length, 1);
});

Deno.test("Hub tells its observers each channel's listener count after every change", () => {
  const { hub } = makeHub();
  const seen: string[] = [];
  const stop = hub.observe((channel, count) => seen.push(`${channel}=${count}`));
  const a = recorder(), b = recorder();
  hub.attach("c", a, true);
  hub.attach("c", b, false);
  hub.attach("c", b, false); // already attached: no change
  hub.detach("c", a, true);
  hub.detach("d", a, true); // not attached: no change
  stop();
  hub.detach("c", b, false);
  assert.deepEqual(seen, ["c=1", "c=2", "c=1"]);
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

const STATUS: StatusFacts = {
  local: true,
  language: null,
  authorId: "2",
  targetIds: [],
  domain: null,
  hasFiltered: false,
};

/** A filter whose facts arrive when the test says, for one viewer "1". */
function slowFacts() {
  const pending: Array<{ event: StreamEvent; resolve: () => void }> = [];
  const filter: FactsSource = {
    applies: () => true,
    prepare: (event) => {
      const { promise, resolve } = Promise.withResolvers<EventFacts>();
      pending.push({
        event,
        resolve: () => resolve(new EventFacts(event, STATUS, new Set(), new Set())),
      });
      return promise;
    },
  };
  return { filter, pending };
}

function filteredListener(): Listener & { got: string[] } {
  const got: string[] = [];
  const viewer: FilterViewer = {
    accountId: "1",
    chosenLanguages: null,
    access: { localDisabled: false, remoteDisabled: false },
    filters: new FilterCache(),
  };
  return { got, viewer, deliver: (event) => got.push(event.payload as string) };
}

const deleteOf = (id: number) => JSON.stringify({ event: "delete", payload: String(id) });

Deno.test("Filtered events fetch their facts concurrently and are delivered in Redis order", async () => {
  const { filter, pending } = slowFacts();
  const { hub } = fakeHub({ filter });
  const listener = filteredListener();
  hub.attach("timeline:public", listener, true);
  for (let i = 1; i <= FACTS_IN_FLIGHT + 2; i++) hub.publish("timeline:public", deleteOf(i));
  assert.equal(pending.length, FACTS_IN_FLIGHT, "a window of fetches, not one at a time");
  for (const p of pending.slice(1).reverse()) p.resolve(); // later facts first
  await delay(0);
  assert.deepEqual(listener.got, [], "nothing overtakes the first event");
  pending[0].resolve();
  await delay(0);
  assert.deepEqual(listener.got, ["1", "2", "3", "4", "5", "6", "7", "8"]);
  assert.equal(pending.length, FACTS_IN_FLIGHT + 2, "the window moved on");
  for (const p of pending.slice(FACTS_IN_FLIGHT)) p.resolve();
  await delay(0);
  assert.deepEqual(listener.got.slice(-2), ["9", "10"]);
});

Deno.test("A channel whose filtering backlog is full drops new events and counts them", () => {
  const { filter } = slowFacts();
  const { hub, metrics } = fakeHub({ filter });
  hub.attach("timeline:public", filteredListener(), true);
  hub.attach("timeline:public", filteredListener(), true);
  for (let i = 0; i < MAX_BACKLOG; i++) hub.publish("timeline:public", deleteOf(i));
  assert.equal(metrics.backlogDrops.get(), 0);
  hub.publish("timeline:public", deleteOf(-1));
  assert.equal(metrics.backlogDrops.get(), 2, "one per listener of the dropped event");
});
