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
  return {
    client,
    open,
    metrics: fake.metrics,
    subscribed: fake.subscribed,
    context: fake.context,
  };
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

Deno.test("An SSE client whose queue passes the hard cap (16 x SLUICE_CLIENT_QUEUE_BYTES) is ended at once", async () => {
  const { client, open, metrics, subscribed } = setup(100);
  const event = parseEvent(`{"event":"delete","payload":"${"x".repeat(500)}"}`);
  for (let i = 0; i < 3; i++) client.transmit(event); // 1,500 bytes and the opening: under 1,600
  assert.equal(client.closed, false);
  client.transmit(event);
  assert.equal(client.closed, true);
  assert.equal(metrics.slowClientDisconnects.get({ type: "eventsource" }), 1);
  assert.equal(metrics.slowClientCuts.get({ reason: "cap" }), 1);
  assert.equal(metrics.messagesSent.get({ type: "eventsource" }), 3);
  assert.equal(subscribed.size, 0, "every channel was released");
  assert.equal(open.size, 0);
  await assert.rejects(readAll(client.body));
});

Deno.test("An SSE client with bytes waiting is followed by the queue watch until they are read", async () => {
  const { client, context } = setup();
  client.transmit(parseEvent('{"event":"delete","payload":"1"}'));
  assert.ok(client.queuedBytes() > 0, "nobody read the body yet");
  assert.equal(context.queues.size, 1);
  const reader = client.body.getReader();
  while (client.queuedBytes() > 0) await reader.read();
  context.queues.tick();
  assert.equal(context.queues.size, 0, "an empty queue is no longer followed");
  assert.equal(client.closed, false);
  reader.releaseLock();
  client.end();
});

Deno.test("Cancelling the body (client gone) releases the client", async () => {
  const { client, open, metrics } = setup();
  await client.body.cancel();
  assert.equal(client.closed, true);
  assert.equal(metrics.connectedClients.get({ type: "eventsource" }), 0);
  assert.equal(open.size, 0);
});
