import assert from "node:assert/strict";
import type { Viewer } from "../../src/auth.ts";
import { parseEvent } from "../../src/event.ts";
import { Hub } from "../../src/hub.ts";
import { silentLogger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics.ts";
import { SseClient, SseRegistry } from "../../src/sse.ts";

const alice: Viewer = {
  accessTokenId: "1",
  accountId: "1",
  scopes: ["read"],
  chosenLanguages: null,
  permissions: 0,
};
const decoder = new TextDecoder();

function setup(queueLimit = 1 << 20) {
  const subscribed = new Set<string>();
  const metrics = new Metrics();
  const hub = new Hub({
    subscriber: { subscribe: (c) => subscribed.add(c), unsubscribe: (c) => subscribed.delete(c) },
    keys: { add() {}, remove() {} },
    log: silentLogger,
    metrics,
  });
  const registry = new SseRegistry({ heartbeatMs: 60_000 });
  const client = new SseClient(alice, { hub, metrics, queueLimit }, registry);
  return { client, registry, metrics, subscribed };
}

async function readAll(body: ReadableStream<Uint8Array>): Promise<string> {
  return (await Array.fromAsync(body)).map((c) => decoder.decode(c)).join("");
}

Deno.test("An SSE body starts with :) and carries shared event bytes", async () => {
  const { client, registry } = setup();
  const event = parseEvent('{"event":"delete","payload":"1"}');
  client.transmit(event);
  client.heartbeat();
  client.end();
  assert.equal(await readAll(client.body), ":)\nevent: delete\ndata: 1\n\n:thump\n\n");
  registry.close();
});

Deno.test("An SSE client that does not read is ended when its queue overflows", async () => {
  const { client, registry, metrics, subscribed } = setup(100);
  const event = parseEvent(`{"event":"delete","payload":"${"x".repeat(60)}"}`);
  client.transmit(event);
  assert.equal(client.closed, false);
  client.transmit(event);
  assert.equal(client.closed, true);
  assert.equal(metrics.slowClientDisconnects.get({ type: "eventsource" }), 1);
  assert.equal(metrics.messagesSent.get({ type: "eventsource" }), 1);
  assert.equal(subscribed.size, 0, "every channel was released");
  assert.equal(registry.clients.size, 0);
  await assert.rejects(readAll(client.body));
  registry.close();
});

Deno.test("Cancelling the body (client gone) releases the client", async () => {
  const { client, registry, metrics } = setup();
  await client.body.cancel();
  assert.equal(client.closed, true);
  assert.equal(metrics.connectedClients.get({ type: "eventsource" }), 0);
  assert.equal(registry.clients.size, 0);
  registry.close();
});

Deno.test("The registry's one timer writes heartbeats to every open stream", async () => {
  const registry = new SseRegistry({ heartbeatMs: 10 });
  const { client, registry: own } = setup();
  own.close();
  registry.clients.add(client);
  const reader = client.body.getReader();
  assert.equal(decoder.decode((await reader.read()).value), ":)\n");
  assert.equal(decoder.decode((await reader.read()).value), ":thump\n\n");
  await reader.cancel();
  registry.close();
});
