import assert from "node:assert/strict";
import { Access, type ResolvedStream } from "../../src/access.ts";
import { Client, Subscription } from "../../src/client.ts";
import { parseEvent, type StreamEvent } from "../../src/event.ts";
import { EventFacts, type StatusFacts } from "../../src/filter.ts";
import { accessDb, clientContext, viewer } from "../_support/fakes.ts";

/** A client that records what it transmits and whether it was killed. */
class Recording extends Client {
  sent: string[] = [];
  killed = 0;
  transmit(event: StreamEvent, label: string): void {
    this.sent.push(`${label} ${event.event}`);
    this.counted(event);
  }
  protected kill(): void {
    this.killed++;
    this.dispose();
  }
  queuedBytes(): number {
    return 0;
  }
  protected dropSlow(): void {
    this.dispose();
  }
}

function setup(accountId = "1") {
  const fake = clientContext();
  const client = new Recording(
    viewer({ accountId, accessTokenId: "9" }),
    "websocket",
    fake.context,
  );
  return { ...fake, client };
}

const resolve = (stream: string, params: Record<string, unknown> = {}): Promise<ResolvedStream> =>
  new Access({ db: accessDb() }).resolve(viewer(), stream, params);

Deno.test("A client listens to its token's and account's system channels from the start", () => {
  const { calls, metrics } = setup();
  assert.deepEqual(calls, ["SUBSCRIBE timeline:access_token:9", "SUBSCRIBE timeline:system:1"]);
  assert.equal(metrics.connectedClients.get({ type: "websocket" }), 1);
  assert.equal(metrics.connectedChannels.get({ type: "websocket", channel: "system" }), 2);
});

Deno.test("Subscriptions attach to every channel of the stream; a duplicate key is ignored", async () => {
  const { client, calls, metrics } = setup();
  const user = await resolve("user");
  assert.equal(client.subscribe(user), true);
  assert.equal(client.subscribe(user), false);
  assert.ok(client.isSubscribed(user.key));
  assert.deepEqual(calls.slice(2), [
    "SUBSCRIBE timeline:1",
    "KEY+ timeline:1",
    "SUBSCRIBE timeline:1:notifications",
    "KEY+ timeline:1:notifications",
  ]);
  assert.equal(metrics.connectedChannels.get({ type: "websocket", channel: "user" }), 1);
  client.unsubscribe(user.key);
  assert.equal(client.isSubscribed(user.key), false);
  assert.equal(metrics.connectedChannels.get({ type: "websocket", channel: "user" }), 0);
});

Deno.test("Events are transmitted with the subscription's label and counted", async () => {
  const { client, hub, metrics } = setup();
  client.subscribe(await resolve("hashtag", { tag: "Foo" }));
  hub.publish("timeline:hashtag:foo", '{"event":"delete","payload":"1"}');
  hub.publish("timeline:hashtag:foo", '{"event":"update"}'); // no payload: not deliverable
  assert.deepEqual(client.sent, ['["hashtag","Foo"] delete']);
  assert.equal(metrics.messagesSent.get({ type: "websocket" }), 1);
  assert.equal(metrics.deliveries.get(), 1);
});

Deno.test("kill on a system channel ends the client; filters_changed resets its filters", async () => {
  const { client, hub, subscribed, metrics } = setup();
  let changed = 0;
  client.onFiltersChanged = () => changed++;
  const filters = new Subscription(client, await resolve("public")).viewer!.filters;
  filters.compiled = [];
  hub.publish("timeline:system:1", '{"event":"filters_changed"}');
  assert.equal(changed, 1);
  assert.equal(filters.compiled, undefined);
  hub.publish("timeline:access_token:9", '{"event":"kill"}');
  assert.equal(client.killed, 1);
  assert.equal(client.closed, true);
  assert.equal(subscribed.size, 0, "dispose released every channel");
  assert.equal(metrics.connectedClients.get({ type: "websocket" }), 0);
});

Deno.test("dispose is idempotent and later subscriptions are refused", async () => {
  const { client, metrics } = setup();
  client.dispose();
  client.dispose();
  assert.equal(metrics.connectedClients.get({ type: "websocket" }), 0);
  assert.equal(metrics.connectedChannels.get({ type: "websocket", channel: "system" }), 0);
  assert.equal(client.subscribe(await resolve("public")), false);
});

Deno.test("A filtered subscription decides per viewer and counts drops where they happen", async () => {
  const { client, metrics } = setup();
  const stream = await resolve("public:local");
  const closed = { ...stream, filter: { access: { localDisabled: true, remoteDisabled: false } } };
  const subscription = new Subscription(client, closed);
  assert.equal(subscription.viewer?.accountId, "1");
  const event = parseEvent('{"event":"update","payload":{"id":"1","account":{"id":"2"}}}');
  const local: StatusFacts = {
    local: true,
    language: null,
    authorId: "2",
    targetIds: ["2"],
    domain: null,
    hasFiltered: false,
  };
  subscription.deliver(event, new EventFacts(event, local, new Set(), new Set()));
  assert.deepEqual(client.sent, []);
  assert.equal(metrics.filterDrops.get({ reason: "feed_access" }), 1);
  subscription.deliver(
    event,
    new EventFacts(event, { ...local, local: false }, new Set(["1"]), new Set()),
  );
  assert.equal(metrics.filterDrops.get({ reason: "relationship" }), 1);
  subscription.deliver(
    event,
    new EventFacts(event, { ...local, local: false }, new Set(), new Set()),
  );
  assert.deepEqual(client.sent, ['["public:local"] update']);
});

Deno.test("Connections of one token on one stream share a filtering viewer, its filters and one decision per event", async () => {
  const fake = clientContext();
  const token = viewer({ accountId: "1", accessTokenId: "9" }); // interned: one object per token row
  const clients = [0, 1, 2].map(() => new Recording(token, "websocket", fake.context));
  const other = new Recording(
    viewer({ accountId: "1", accessTokenId: "10" }),
    "websocket",
    fake.context,
  );
  const stream = await resolve("public");
  const [a, b, c] = clients.map((client) => new Subscription(client, stream));
  assert.equal(a.viewer, b.viewer);
  assert.equal(a.viewer, c.viewer);
  assert.notEqual(new Subscription(other, stream).viewer, a.viewer, "another token, its own");
  const local = await resolve("public:local");
  assert.notEqual(new Subscription(clients[0], local).viewer, a.viewer, "another stream filter");
  assert.equal(new Subscription(clients[0], local).viewer!.filters, a.viewer!.filters);

  const event = parseEvent('{"event":"update","payload":{"id":"1","account":{"id":"2"}}}');
  const facts = new EventFacts(
    event,
    {
      local: false,
      language: null,
      authorId: "2",
      targetIds: ["2"],
      domain: null,
      hasFiltered: false,
    },
    new Set(),
    new Set(),
  );
  a.viewer!.filters.compiled = [];
  const first = facts.decision(a.viewer!);
  a.viewer!.filters.compiled = undefined; // a second decision would now differ
  assert.equal(facts.decision(b.viewer!), first, "decided once for every sharing subscription");
  for (const subscription of [a, b, c]) subscription.deliver(event, facts);
  assert.deepEqual(clients.map((client) => client.sent), [
    ['["public"] update'],
    ['["public"] update'],
    ['["public"] update'],
  ]);

  a.viewer!.filters.compiled = [];
  fake.hub.publish("timeline:system:1", '{"event":"filters_changed"}');
  assert.equal(b.viewer!.filters.compiled, undefined, "filters_changed resets the shared cache");
});
