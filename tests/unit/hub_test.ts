import assert from "node:assert/strict";
import type { StreamEvent } from "../../src/event.ts";
import { EventFacts, FilterCache, type FilterViewer, type StatusFacts } from "../../src/filter.ts";
import {
  BATCHES_IN_FLIGHT,
  type FactsSource,
  type Listener,
  MAX_BACKLOG,
  MAX_BATCH,
} from "../../src/hub.ts";
import { fakeHub } from "../_support/fakes.ts";

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

/** One fact query of the fake filter: its events, answered when the test says. */
interface Batch {
  payloads: string[];
  /** How many viewers each event of the batch is filtered for. */
  viewers: number[];
  resolve(): void;
  reject(err: Error): void;
}

/** A filter whose facts arrive when the test says; `started(n)` waits for the n-th query. */
function slowFacts() {
  const batches: Batch[] = [];
  const waits: Array<{ n: number; resolve: () => void }> = [];
  const filter: FactsSource = {
    applies: () => true,
    prepareMany: (items) => {
      const { promise, resolve, reject } = Promise.withResolvers<EventFacts[]>();
      const facts = items.map(({ event }) => new EventFacts(event, STATUS, new Set(), new Set()));
      batches.push({
        payloads: items.map(({ event }) => event.payload as string),
        viewers: items.map((item) => item.viewers.length),
        resolve: () => resolve(facts),
        reject,
      });
      for (const w of waits) if (batches.length >= w.n) w.resolve();
      return promise;
    },
  };
  const started = (n: number) => {
    const { promise, resolve } = Promise.withResolvers<void>();
    if (batches.length >= n) resolve();
    else waits.push({ n, resolve });
    return promise;
  };
  return { filter, batches, started };
}

/** A filtered listener; `received(n)` resolves once it has n events. */
function filteredListener(): Listener & {
  got: string[];
  facts: Array<EventFacts | undefined>;
  received(n: number): Promise<void>;
} {
  const got: string[] = [];
  const facts: Array<EventFacts | undefined> = [];
  const waits: Array<{ n: number; resolve: () => void }> = [];
  const viewer: FilterViewer = {
    accountId: "1",
    chosenLanguages: null,
    access: { localDisabled: false, remoteDisabled: false },
    filters: new FilterCache(),
  };
  return {
    got,
    facts,
    viewer,
    deliver: (event, known) => {
      got.push(event.payload as string);
      facts.push(known);
      for (const w of waits) if (got.length >= w.n) w.resolve();
    },
    received: (n) => {
      const { promise, resolve } = Promise.withResolvers<void>();
      if (got.length >= n) resolve();
      else waits.push({ n, resolve });
      return promise;
    },
  };
}

const deleteOf = (id: number) => JSON.stringify({ event: "delete", payload: String(id) });
const range = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => String(from + i));

Deno.test("Events queued behind slow facts gather into one query and keep Redis order", async () => {
  const { filter, batches, started } = slowFacts();
  const { hub } = fakeHub({ filter });
  const listener = filteredListener();
  hub.attach("timeline:public", listener, true);
  for (let i = 1; i <= 10; i++) hub.publish("timeline:public", deleteOf(i));
  assert.equal(batches.length, BATCHES_IN_FLIGHT, "a bounded number of queries per channel");
  assert.deepEqual(batches.map((b) => b.payloads), [["1"], ["2"]]);
  batches[1].resolve(); // later facts first
  await started(3);
  assert.deepEqual(batches[2].payloads, range(3, 10), "the backlog in one query");
  batches[2].resolve();
  assert.equal(batches.length, 3);
  batches[0].resolve();
  await listener.received(10);
  assert.deepEqual(listener.got, range(1, 10), "nothing overtook the first event");
});

Deno.test("The batch grows with the backlog up to MAX_BATCH, one query per batch", async () => {
  const { filter, batches, started } = slowFacts();
  const { hub, metrics } = fakeHub({ filter });
  const listener = filteredListener();
  hub.attach("timeline:public", listener, true);
  const total = 2 + MAX_BATCH + 5;
  for (let i = 1; i <= total; i++) hub.publish("timeline:public", deleteOf(i));
  batches[0].resolve();
  await started(3);
  assert.equal(batches.length, 3, "still no more than BATCHES_IN_FLIGHT out");
  assert.deepEqual(batches[2].payloads, range(3, 2 + MAX_BATCH));
  batches[1].resolve();
  await started(4);
  assert.deepEqual(batches[3].payloads, range(3 + MAX_BATCH, total));
  batches[2].resolve();
  batches[3].resolve();
  await listener.received(total);
  assert.deepEqual(listener.got, range(1, total));
  assert.equal(batches.length, 4);
  assert.equal(metrics.backlogDrops.get(), 0);
});

Deno.test("Listeners that leave are skipped; later ones never get events older than them", async () => {
  const { filter, batches } = slowFacts();
  const { hub } = fakeHub({ filter });
  const early = filteredListener(), late = filteredListener(), stays = filteredListener();
  hub.attach("timeline:public", early, true);
  hub.attach("timeline:public", stays, true);
  hub.publish("timeline:public", deleteOf(1));
  hub.attach("timeline:public", late, true);
  hub.detach("timeline:public", early, true);
  hub.publish("timeline:public", deleteOf(2));
  for (const batch of batches) batch.resolve();
  await stays.received(2);
  await late.received(1);
  assert.deepEqual(stays.got, ["1", "2"]);
  assert.deepEqual(late.got, ["2"]);
  assert.deepEqual(early.got, []);
});

Deno.test("Facts are not fetched for viewers that left while their event was queued", async () => {
  const { filter, batches, started } = slowFacts();
  const { hub } = fakeHub({ filter });
  const leaves = filteredListener(), stays = filteredListener();
  hub.attach("timeline:public", leaves, true);
  hub.attach("timeline:public", stays, true);
  for (let i = 1; i <= 3; i++) hub.publish("timeline:public", deleteOf(i));
  hub.detach("timeline:public", leaves, true);
  batches[0].resolve();
  await started(3);
  assert.deepEqual(batches.map((b) => b.viewers), [[2], [2], [1]]);
  batches[1].resolve();
  batches[2].resolve();
  await stays.received(3);
  assert.deepEqual(leaves.got, []);
});

Deno.test("A failed fact query drops its events for filtered viewers and the channel goes on", async () => {
  const { filter, batches } = slowFacts();
  const { hub } = fakeHub({ filter });
  const listener = filteredListener();
  hub.attach("timeline:public", listener, true);
  hub.publish("timeline:public", deleteOf(1));
  hub.publish("timeline:public", deleteOf(2));
  batches[0].reject(new Error("broken"));
  batches[1].resolve();
  await listener.received(2);
  assert.deepEqual(listener.got, ["1", "2"]);
  assert.equal(listener.facts[0]?.excluded, null, "facts that make decide drop it");
  assert.notEqual(listener.facts[1]?.excluded, null);
});

Deno.test("A channel whose filtering backlog is full drops new events and counts them", () => {
  const { filter, batches } = slowFacts();
  const { hub, metrics } = fakeHub({ filter });
  hub.attach("timeline:public", filteredListener(), true);
  hub.attach("timeline:public", filteredListener(), true);
  for (let i = 0; i < MAX_BACKLOG; i++) hub.publish("timeline:public", deleteOf(i));
  assert.equal(metrics.backlogDrops.get(), 0);
  hub.publish("timeline:public", deleteOf(-1));
  assert.equal(metrics.backlogDrops.get(), 2, "one per listener of the dropped event");
  assert.equal(batches.length, BATCHES_IN_FLIGHT, "a full backlog does not flood the pool");
});
