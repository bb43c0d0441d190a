import assert from "node:assert/strict";
import { parseEvent } from "../../src/event.ts";
import { SseClient } from "../../src/sse.ts";
import { clientContext, viewer } from "../_support/fakes.ts";

const decoder = new TextDecoder();

function setup(clientQueueBytes = 1 << 20) {
  const fake = clientContext(clientQueueBytes);
  const open = new Set<SseClient>();
  const client = new SseClient(viewer(), fake.context, (c) => open.delete(c));
  open.add(client);
  return { client, open, metrics: fake.metrics, subscribed: fake.subscribed };
}

async function readAll(body: ReadableStream<Uint8Array>): Promise<string> {
  return (await Array.fromAsync(body)).map((c) => decoder.decode(c)).join("");
}

Deno.test("An SSE body starts with :) and carries shared event bytes", async () => {
  const { client } = setup();
  const event = parseEvent('{"event":"delete","payload":"1"}');
  client.transmit(event);
  client.heartbeat();
  client.end();
  assert.equal(await readAll(client.body), ":)\nevent: delete\ndata: 1\n\n:thump\n");
});

Deno.test("An SSE client that does not read is ended when its queue overflows", async () => {
  const { client, open, metrics, subscribed } = setup(100);
  const event = parseEvent(`{"event":"delete","payload":"${"x".repeat(60)}"}`);
  client.transmit(event);
  assert.equal(client.closed, false);
  client.transmit(event);
  assert.equal(client.closed, true);
  assert.equal(metrics.slowClientDisconnects.get({ type: "eventsource" }), 1);
  assert.equal(metrics.messagesSent.get({ type: "eventsource" }), 1);
  assert.equal(subscribed.size, 0, "every channel was released");
  assert.equal(open.size, 0);
  await assert.rejects(readAll(client.body));
});

Deno.test("Cancelling the body (client gone) releases the client", async () => {
  const { client, open, metrics } = setup();
  await client.body.cancel();
  assert.equal(client.closed, true);
  assert.equal(metrics.connectedClients.get({ type: "eventsource" }), 0);
  assert.equal(open.size, 0);
});
