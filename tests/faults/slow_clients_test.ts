/**
 * Fault: clients that never read, and a short overload with clients that
 * do. Sluice in-process against a real Redis and PostgreSQL, with real
 * sockets: raw TCP clients that send their request and never read a byte,
 * and real SSE and WebSocket readers beside them.
 */
import assert from "node:assert/strict";
import { SseReader, WsClient } from "../_support/clients.ts";
import { startServices, startSluice } from "../_support/stack.ts";

const encoder = new TextEncoder();

async function neverReadingSse(port: number): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(
    "GET /api/v1/streaming/public HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer token-alice\r\n\r\n",
  ));
  return conn;
}

async function neverReadingWs(port: number): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(encoder.encode(
    "GET /api/v1/streaming?stream=public HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer token-alice\r\n\r\n",
  ));
  return conn;
}

/** Reads until the server closes the connection (true), or until `ms` pass (false). */
async function closedByServer(conn: Deno.Conn, ms: number): Promise<boolean> {
  const buffer = new Uint8Array(1 << 16);
  const timer = setTimeout(() => conn.close(), ms);
  try {
    while (await conn.read(buffer) !== null) { /* drain what the kernel holds */ }
    return true;
  } catch {
    return false; // closed by the timer
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("Never-reading SSE and WebSocket clients are cut once their socket stops accepting; WebSocket connections are dropped; readers lose nothing", async () => {
  const services = await startServices();
  const app = await startSluice(services, {}, { stallMs: 1500, wsCloseGraceMs: 300 });
  const sse = await Promise.all([0, 1, 2].map(() => neverReadingSse(app.port)));
  const ws = await Promise.all([0, 1, 2].map(() => neverReadingWs(app.port)));
  const reader = await SseReader.open(`${app.http}/api/v1/streaming/public`, {
    Authorization: "Bearer token-bob",
  });
  const wsReader = await WsClient.open(
    `${app.ws}/api/v1/streaming?access_token=token-bob&stream=public`,
  );
  try {
    await app.listeners("timeline:public", 8);
    const { metrics } = app.sluice;
    const cut = () =>
      metrics.slowClientDisconnects.get({ type: "eventsource" }) +
      metrics.slowClientDisconnects.get({ type: "websocket" });
    const chunk = "x".repeat(16_000);
    let sent = 0;
    // 1.6 MB/s per client, well under what a reader takes: only the kernel's buffers fill.
    while (cut() < 6 && sent < 4000) {
      await services.client.publish(
        "timeline:public",
        `{"event":"delete","payload":"${chunk}${sent++}"}`,
      );
      if (sent % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(cut(), 6, `all six cut after ${sent} messages`);
    const notReading = metrics.slowClientCuts.get({ reason: "stalled" }) +
      metrics.slowClientCuts.get({ reason: "behind" });
    assert.equal(notReading, 6, "cut for not reading (nothing drained), not by the cap or budget");
    await services.client.publish("timeline:public", '{"event":"delete","payload":"last"}');
    await reader.contains("data: last\n\n");
    for (let i = 0; i <= sent; i++) await wsReader.next();
    assert.equal(reader.text.split("event: delete").length - 1, sent + 1, "SSE reader: everything");
    assert.equal(metrics.connectedClients.get({ type: "eventsource" }), 1);
    assert.equal(metrics.connectedClients.get({ type: "websocket" }), 1);
    // The WebSockets' TCP connections are dropped: reading them now reaches the end.
    for (const conn of ws) assert.ok(await closedByServer(conn, 10_000), "connection dropped");
    assert.equal(app.listenerCount("timeline:public"), 2);
  } finally {
    for (const conn of [...sse]) conn.close();
    await reader.close();
    await wsReader.close();
    await app.close();
    await services.close();
  }
});

Deno.test("A short overload does not shed clients that keep reading", async () => {
  const services = await startServices();
  // 64 KiB must drain every second; the overload queues far more than that.
  const app = await startSluice(services, { SLUICE_CLIENT_QUEUE_BYTES: "65536" });
  const readers = await Promise.all(
    Array.from(
      { length: 20 },
      () => WsClient.open(`${app.ws}/api/v1/streaming?access_token=token-bob&stream=public`),
    ),
  );
  try {
    await app.listeners("timeline:public", 20);
    const chunk = "y".repeat(8000);
    const burst = 100; // 800 KB for each reader at once
    await Promise.all(
      Array.from(
        { length: burst },
        (_, i) =>
          services.client.publish("timeline:public", `{"event":"delete","payload":"${chunk}${i}"}`),
      ),
    );
    for (const client of readers) {
      for (let i = 0; i < burst; i++) await client.next();
    }
    const { metrics } = app.sluice;
    assert.equal(metrics.slowClientDisconnects.get({ type: "websocket" }), 0, "none was cut");
    assert.equal(metrics.connectedClients.get({ type: "websocket" }), 20);
  } finally {
    await Promise.all(readers.map((client) => client.close()));
    await app.close();
    await services.close();
  }
});
