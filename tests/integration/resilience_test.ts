/**
 * Outages, slow clients and timers against real services: Redis restarts,
 * queue overflow, SSE heartbeats, WebSocket pings.
 */
import assert from "node:assert/strict";
import { SseReader, WsClient } from "../_support/clients.ts";
import { startServices, startSluice } from "../_support/stack.ts";

/** Retries `check` until it holds or about two seconds have passed. */
async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`never happened: ${what}`);
}

Deno.test("Clients keep receiving after Redis restarts; keys are rewritten", async () => {
  const services = await startServices();
  const app = await startSluice(services);
  const sse = await SseReader.open(`${app.http}/api/v1/streaming/user?access_token=token-alice`);
  const ws = await WsClient.open(`${app.ws}/api/v1/streaming?access_token=token-alice&stream=user`);
  await app.listeners("timeline:1", 2);

  await services.redis.restart();
  await app.settled(); // the subscriber is connected again and has resubscribed
  assert.equal(app.sluice.metrics.redisConnected.get(), 1);
  assert.ok(app.sluice.subscriber.reconnects >= 1);
  await services.client.ready();
  await eventually(
    async () => await services.client.command(["EXISTS", "subscribed:timeline:1"]) === 1,
    "subscribed:timeline:1 rewritten",
  );
  await services.client.publish("timeline:1", '{"event":"delete","payload":"after"}');
  await sse.contains("data: after\n\n");
  assert.equal(await ws.next(), '{"stream":["user"],"event":"delete","payload":"after"}');
  await sse.close();
  await ws.close();
  await app.close();
  await services.close();
});

Deno.test("A client that stops reading is cut off alone; others keep their events", async () => {
  const services = await startServices();
  const app = await startSluice(services, { SLUICE_CLIENT_QUEUE_BYTES: "131072" });
  const stalled = await Deno.connect({ hostname: "127.0.0.1", port: app.port });
  await stalled.write(new TextEncoder().encode(
    "GET /api/v1/streaming/public HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token-alice\r\n\r\n",
  ));
  const healthy = await SseReader.open(
    `${app.http}/api/v1/streaming/public?access_token=token-bob`,
  );
  await app.listeners("timeline:public", 2);
  const big = "x".repeat(20_000);
  const metrics = app.sluice.metrics;
  let sent = 0;
  while (metrics.slowClientDisconnects.get({ type: "eventsource" }) === 0 && sent < 3000) {
    await services.client.publish(
      "timeline:public",
      `{"event":"delete","payload":"${big}${sent++}"}`,
    );
  }
  assert.equal(metrics.slowClientDisconnects.get({ type: "eventsource" }), 1);
  await services.client.publish("timeline:public", '{"event":"delete","payload":"last"}');
  await healthy.contains("data: last\n\n");
  assert.equal(healthy.text.split("event: delete").length - 1, sent + 1);
  assert.equal(app.listenerCount("timeline:public"), 1);
  stalled.close();
  await healthy.close();
  await app.close();
  await services.close();
});

Deno.test("A WebSocket that stops reading is closed 1013, its stalled close aborted, and the connection ends once it reads", async () => {
  const services = await startServices();
  const app = await startSluice(services, { SLUICE_CLIENT_QUEUE_BYTES: "131072" }, {
    wsCloseGraceMs: 300,
  });
  const stalled = await Deno.connect({ hostname: "127.0.0.1", port: app.port });
  await stalled.write(new TextEncoder().encode(
    "GET /api/v1/streaming?stream=public HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer token-alice\r\n\r\n",
  ));
  const healthy = await WsClient.open(
    `${app.ws}/api/v1/streaming?access_token=token-bob&stream=public`,
  );
  await app.listeners("timeline:public", 2);
  const big = "x".repeat(20_000);
  const metrics = app.sluice.metrics;
  let sent = 0;
  while (metrics.slowClientDisconnects.get({ type: "websocket" }) === 0 && sent < 5000) {
    await services.client.publish(
      "timeline:public",
      `{"event":"delete","payload":"${big}${sent++}"}`,
    );
  }
  assert.equal(metrics.slowClientDisconnects.get({ type: "websocket" }), 1);
  // The stalled client never answers the close frame: after the grace period
  // Sluice aborts the socket (counted); once the client reads what the kernel
  // holds, the connection ends (docs/compatibility.md §4.4: not before).
  await readUntilClosed(stalled, { timeoutMs: 15_000, maxBytes: 64 << 20 });
  assert.equal(metrics.websocketAborts.get(), 1);
  await services.client.publish("timeline:public", '{"event":"delete","payload":"last"}');
  for (let i = 0; i < sent; i++) await healthy.next();
  assert.equal(await healthy.next(), '{"stream":["public"],"event":"delete","payload":"last"}');
  stalled.close();
  await healthy.close();
  await app.close();
  await services.close();
});

/**
 * Reads until the server closes or resets the connection and returns what
 * arrived; fails (closing the connection) if it is still open after
 * `timeoutMs`, or once more than `maxBytes` arrived.
 */
async function readUntilClosed(
  conn: Deno.Conn,
  limits: { timeoutMs: number; maxBytes: number },
): Promise<Uint8Array> {
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  let size = 0;
  const buffer = new Uint8Array(1 << 16);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), limits.timeoutMs);
  });
  try {
    for (;;) {
      const n = await Promise.race([conn.read(buffer).catch(() => null), timeout]);
      if (n === null) return new Uint8Array(await new Blob(chunks).arrayBuffer()); // EOF or reset
      if (n === "timeout") throw new Error(`still open after ${limits.timeoutMs} ms`);
      chunks.push(buffer.slice(0, n));
      size += n;
      if (size > limits.maxBytes) throw new Error(`still sending after ${size} bytes`);
    }
  } catch (error) {
    try {
      conn.close();
    } catch {
      // already closed
    }
    throw new Error(`the server did not close the connection: ${(error as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("SSE heartbeats are :thump\\n comments, each stream's first one a period after it opened", async () => {
  const services = await startServices();
  const heartbeatMs = 1_000;
  const app = await startSluice(services, {}, { heartbeatMs });
  const url = `${app.http}/api/v1/streaming/public?access_token=token-alice`;
  const a = await SseReader.open(url);
  await a.contains(":)\n:thump\n"); // a's phase is set; b opens at another one
  const opened = performance.now();
  const b = await SseReader.open(`${app.http}/api/v1/streaming/user?access_token=token-alice`);
  await b.contains(":)\n:thump\n");
  assert.ok(performance.now() - opened >= heartbeatMs, "not before a period after opening");
  await a.contains(":thump\n:thump\n");
  assert.ok(!a.text.includes("\n\n") && !b.text.includes("\n\n"), "no blank line ever");
  await a.close();
  await b.close();
  await app.close();
  await services.close();
});

Deno.test("WebSocket clients are pinged and cut when they never answer", async () => {
  const services = await startServices();
  const app = await startSluice(services, {}, { wsIdleTimeoutSeconds: 1 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: app.port });
  await conn.write(new TextEncoder().encode(
    "GET /api/v1/streaming?access_token=token-alice HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "Sec-WebSocket-Version: 13\r\n\r\n",
  ));
  // Answer nothing: read until the server gives up on us (a ping, then the cut).
  const received = await readUntilClosed(conn, { timeoutMs: 15_000, maxBytes: 4096 });
  conn.close();
  const text = new TextDecoder().decode(received);
  const body = received.slice(text.indexOf("\r\n\r\n") + 4);
  assert.equal(body[0], 0x89, "the first frame after the handshake is a ping");
  assert.equal(app.sluice.metrics.connectedClients.get({ type: "websocket" }), 0);

  // A client that answers pings (the built-in WebSocket does) stays connected.
  const ws = await WsClient.open(`${app.ws}/api/v1/streaming?access_token=token-alice&stream=user`);
  await app.listening("timeline:1");
  await new Promise((r) => setTimeout(r, 2500));
  await services.client.publish("timeline:1", '{"event":"delete","payload":"still"}');
  assert.equal(JSON.parse(await ws.next()).payload, "still");
  await ws.close();
  await app.close();
  await services.close();
});
