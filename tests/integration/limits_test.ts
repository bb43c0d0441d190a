/**
 * The SLUICE_MAX_* limits against a real Sluice, redis-server and PostgreSQL,
 * with real WebSocket and HTTP clients: each refusal answered as Mastodon
 * answers errors, and counted in /metrics.
 */
import assert from "node:assert/strict";
import { rawExchange, SseReader, WsClient } from "../_support/clients.ts";
import { startServices, startSluice, type TestSluice } from "../_support/stack.ts";

const handshake = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;

/** The value of sluice_limit_refusals_total{limit} in /metrics. */
async function refusals(app: TestSluice, limit: string): Promise<number> {
  const text = await (await fetch(`${app.http}/metrics`)).text();
  const line = text.split("\n").find((l) =>
    l.startsWith(`sluice_limit_refusals_total{limit="${limit}"} `)
  );
  assert.ok(line, `sluice_limit_refusals_total{limit="${limit}"} is exposed`);
  return Number(line.split(" ")[1]);
}

const subscribe = (tag: string) => JSON.stringify({ type: "subscribe", stream: "hashtag", tag });

Deno.test("A WebSocket at SLUICE_MAX_SUBSCRIPTIONS_PER_WEBSOCKET gets a 429 error frame and stays", async () => {
  const services = await startServices();
  const app = await startSluice(services, { SLUICE_MAX_SUBSCRIPTIONS_PER_WEBSOCKET: "3" });
  await using ws = await WsClient.open(`${app.ws}/api/v1/streaming?access_token=token-alice`);
  for (const tag of ["a", "b", "c", "d"]) ws.send(subscribe(tag));
  assert.deepEqual(JSON.parse(await ws.next()), { error: "Too many subscriptions", status: 429 });
  await app.listening("timeline:hashtag:a", "timeline:hashtag:b", "timeline:hashtag:c");
  assert.equal(app.listenerCount("timeline:hashtag:d"), 0, "the fourth was not added");
  await services.client.publish("timeline:hashtag:c", '{"event":"delete","payload":"7"}');
  assert.equal(JSON.parse(await ws.next()).payload, "7", "the socket still delivers");
  assert.equal(await refusals(app, "subscriptions_per_websocket"), 1);
  await ws.close();
  await app.close();
  await services.close();
});

Deno.test("A 10 MB text frame closes the WebSocket with 1009 (default 64 KiB limit)", async () => {
  const services = await startServices();
  const app = await startSluice(services);
  const ws = await WsClient.open(`${app.ws}/api/v1/streaming?access_token=token-alice`);
  ws.send(subscribe("x".repeat(10 * 1024 * 1024)));
  assert.equal((await ws.closed()).code, 1009);
  assert.equal(await refusals(app, "websocket_message_bytes"), 1);

  // A message at the limit is handled as usual.
  await using ok = await WsClient.open(`${app.ws}/api/v1/streaming?access_token=token-alice`);
  const padded = JSON.stringify({ type: "subscribe", stream: "hashtag", tag: "fits", pad: "" });
  ok.send(padded.replace('"pad":""', `"pad":"${"p".repeat(65536 - padded.length)}"`));
  await app.listening("timeline:hashtag:fits");
  await ok.close();
  await app.close();
  await services.close();
});

Deno.test("SLUICE_MAX_CONNECTIONS_PER_IP refuses one too many with 429, by client address", async () => {
  const services = await startServices();
  const app = await startSluice(services, { SLUICE_MAX_CONNECTIONS_PER_IP: "2" });
  const from = (ip: string) => ({ "X-Forwarded-For": ip, Authorization: "Bearer token-alice" });
  const stream = (path: string) => `${app.http}/api/v1/streaming/${path}`;

  // Behind a trusted proxy (loopback), the forwarded address counts.
  const first = await SseReader.open(stream("public"), from("203.0.113.7"));
  const second = await SseReader.open(stream("public/local"), from("203.0.113.7"));
  await app.listening("timeline:public", "timeline:public:local");
  const refused = await fetch(stream("public"), { headers: from("203.0.113.7") });
  assert.equal(refused.status, 429);
  assert.deepEqual(await refused.json(), { error: "Too many connections from this address" });

  // SSE streams and WebSockets share one count: here the peer's own address.
  const ws = await WsClient.open(`${app.ws}/api/v1/streaming?access_token=token-alice&stream=user`);
  const sse = await SseReader.open(stream("user?access_token=token-alice"));
  await app.listeners("timeline:1", 2);
  const upgrade = await rawExchange(
    app.port,
    handshake("/api/v1/streaming?access_token=token-alice"),
    (got) => got.includes("\r\n\r\n"),
  );
  assert.match(upgrade, /^HTTP\/1\.1 429 Too Many Requests\r\n/);
  assert.match(upgrade, /\r\nx-error-message: Too many connections from this address\r\n/i);
  assert.equal(await refusals(app, "connections_per_ip"), 2);

  // Another client behind the same proxy has its own count.
  const other = await fetch(stream("hashtag?tag=other"), { headers: from("203.0.113.8") });
  assert.equal(other.status, 200);
  await other.body!.cancel();

  // A closed stream makes room again.
  await first.close();
  await app.unlistened("timeline:public");
  const again = await fetch(stream("public"), { headers: from("203.0.113.7") });
  assert.equal(again.status, 200);
  await again.body!.cancel();
  await Promise.all([second.close(), ws.close(), sse.close()]);
  await app.close();
  await services.close();
});
