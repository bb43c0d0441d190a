import assert from "node:assert/strict";
import { Access, type ResolvedStream } from "../../src/access.ts";
import { Clients } from "../../src/clients.ts";
import { silentLogger } from "../../src/log.ts";
import { accessDb, fakeHub, viewer } from "../_support/fakes.ts";

const decoder = new TextDecoder();

function setup(heartbeatMs = 60_000) {
  const fake = fakeHub();
  const clients = new Clients({
    hub: fake.hub,
    metrics: fake.metrics,
    access: new Access({ db: accessDb() }),
    log: silentLogger,
    clientQueueBytes: 1 << 20,
    queueBudgetBytes: 1 << 30,
    heartbeatMs,
  });
  return { ...fake, clients, [Symbol.dispose]: () => clients.close() };
}

async function resolve(stream: string): Promise<ResolvedStream> {
  return await new Access({ db: accessDb() }).resolve(viewer(), stream, {});
}

Deno.test("Clients opens an SSE stream subscribed to its channels and counts it", async () => {
  using open = setup();
  const body = open.clients.openStream(viewer(), await resolve("public"));
  assert.equal(open.clients.size, 1);
  assert.ok(open.subscribed.has("timeline:public"));
  assert.equal(open.metrics.connectedClients.get({ type: "eventsource" }), 1);
  open.hub.publish("timeline:public", '{"event":"delete","payload":"7"}');
  const reader = body.getReader();
  assert.equal(decoder.decode((await reader.read()).value), ":)\n");
  assert.equal(decoder.decode((await reader.read()).value), "event: delete\ndata: 7\n\n");
  await reader.cancel();
  assert.equal(open.clients.size, 0, "a cancelled body leaves the set");
  assert.equal(open.subscribed.size, 0);
});

Deno.test("Each SSE stream gets :thump\\n one period after it opened, on its own phase", async () => {
  const heartbeatMs = 400;
  using open = setup(heartbeatMs);
  const stream = await resolve("public");
  const first = async () => {
    const opened = performance.now();
    const reader = open.clients.openStream(viewer(), stream).getReader();
    assert.equal(decoder.decode((await reader.read()).value), ":)\n");
    const { value } = await reader.read();
    return { reader, opened, at: performance.now(), bytes: decoder.decode(value) };
  };
  const a = first();
  await new Promise((r) => setTimeout(r, heartbeatMs / 2)); // the second opens half a period later
  const b = await first();
  for (const { reader, opened, at, bytes } of [await a, b]) {
    assert.equal(bytes, ":thump\n", "one LF, no blank line");
    assert.ok(at - opened >= heartbeatMs - 1, `not before a period: ${at - opened} ms`);
    await reader.cancel();
  }
  assert.equal(open.clients.streams, 0, "a closed stream leaves the heartbeat wheel");
});

Deno.test("A stream that closed leaves the heartbeat wheel, which then runs no timer", async () => {
  const open = setup(20); // not closed: Deno's timer sanitizer fails the test if a timer is left
  const body = open.clients.openStream(viewer(), await resolve("public"));
  const reader = body.getReader();
  assert.equal(decoder.decode((await reader.read()).value), ":)\n");
  await reader.cancel();
  assert.equal(open.clients.streams, 0);
});

Deno.test("goAway ends every SSE stream cleanly and releases its channels", async () => {
  using open = setup();
  const stream = await resolve("public:local");
  const bodies = [1, 2, 3].map(() => open.clients.openStream(viewer(), stream));
  open.clients.goAway();
  for (const body of bodies) {
    assert.equal((await Array.fromAsync(body)).map((c) => decoder.decode(c)).join(""), ":)\n");
  }
  assert.equal(open.clients.size, 0);
  assert.deepEqual([...open.subscribed], []);
  assert.equal(open.metrics.connectedClients.get({ type: "eventsource" }), 0);
});
