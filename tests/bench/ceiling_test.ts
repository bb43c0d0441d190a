import assert from "node:assert/strict";
import { parseCeilingArgs, startCeiling } from "../../bench/ceiling.ts";
import { parseRedisUrl } from "../../src/config.ts";
import { silentLogger } from "../../src/log.ts";
import { RedisClient } from "../../src/redis/client.ts";
import { startRedisServer } from "../../scripts/redis_server.ts";

const CHANNEL = "timeline:public";
const UPDATE = '{"id":"1","content":"<p>héllo</p>","tags":[]}';
const MESSAGES = [
  `{"event":"update","payload":${UPDATE}}`,
  '{"event":"delete","payload":"109"}',
];
const SSE_EXPECTED = `:)\nevent: update\ndata: ${UPDATE}\n\nevent: delete\ndata: 109\n\n`;
const WS_EXPECTED = [
  JSON.stringify({ stream: ["public"], event: "update", payload: UPDATE }),
  '{"stream":["public"],"event":"delete","payload":"109"}',
];

function redisClient(url: string): RedisClient {
  const config = parseRedisUrl(url);
  return new RedisClient({ config, log: silentLogger });
}

/** Reads `body` until it holds `length` bytes, then cancels it. */
async function readBytes(body: ReadableStream<Uint8Array>, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  const reader = body.getReader();
  while (filled < length) {
    const { value, done } = await reader.read();
    if (done) break;
    out.set(value.subarray(0, length - filled), filled);
    filled += value.length;
  }
  await reader.cancel();
  return out.subarray(0, Math.min(filled, length));
}

/** Opens a WebSocket and collects `count` text messages. */
async function openSocket(url: string, protocols: string[], count: number) {
  const socket = new WebSocket(url, protocols);
  const received: string[] = [];
  const all = Promise.withResolvers<string[]>();
  const closed = Promise.withResolvers<void>();
  const opened = Promise.withResolvers<void>();
  socket.onopen = () => opened.resolve();
  socket.onerror = () => opened.reject(new Error("WebSocket failed"));
  socket.onclose = () => closed.resolve();
  socket.onmessage = (e) => {
    if (received.push(e.data) === count) all.resolve(received);
  };
  await opened.promise;
  return { socket, messages: all.promise, closed: closed.promise };
}

Deno.test("ceiling relays every Redis message to every SSE and WebSocket client, encoded once", async () => {
  await using redis = await startRedisServer();
  const expectedClients = 3;
  let clients = 0;
  const connected = Promise.withResolvers<void>();
  await using ceiling = await startCeiling({
    port: 0,
    redis: redis.url,
    onClient: () => ++clients === expectedClients && connected.resolve(),
  });
  const base = `http://127.0.0.1:${ceiling.port}/api/v1/streaming`;
  const first = await fetch(`${base}/public?access_token=ignored`);
  const second = await fetch(`${base}/anything`, { headers: { Authorization: "Bearer x" } });
  const ws = await openSocket(`ws://127.0.0.1:${ceiling.port}/api/v1/streaming`, ["tok", "x"], 2);
  await connected.promise;

  assert.equal(first.status, 200);
  assert.equal(first.headers.get("content-type"), "text/event-stream");
  assert.equal(ws.socket.protocol, "tok");
  const publisher = redisClient(redis.url);
  await publisher.ready();
  for (const message of MESSAGES) assert.equal(await publisher.publish(CHANNEL, message), 1);
  await publisher.close();

  const expected = new TextEncoder().encode(SSE_EXPECTED);
  assert.deepEqual(await readBytes(first.body!, expected.length), expected);
  assert.deepEqual(await readBytes(second.body!, expected.length), expected);
  assert.deepEqual(await ws.messages, WS_EXPECTED);
  ws.socket.close();
  await ws.closed;
});

Deno.test("ceiling is subscribed to its --channel once startCeiling resolves", async () => {
  await using redis = await startRedisServer();
  await using _ceiling = await startCeiling({ port: 0, redis: redis.url, channel: "custom" });
  const client = redisClient(redis.url);
  await client.ready();
  const reply = await client.command(["PUBSUB", "NUMSUB", "custom", CHANNEL]);
  await client.close();
  assert.deepEqual(reply, ["custom", 1, CHANNEL, 0]);
});

Deno.test("ceiling answers 404 to plain HTTP outside /api/v1/streaming", async () => {
  await using redis = await startRedisServer();
  await using ceiling = await startCeiling({ port: 0, redis: redis.url });
  const response = await fetch(`http://127.0.0.1:${ceiling.port}/health`);
  await response.body?.cancel();
  assert.equal(response.status, 404);
});

Deno.test("ceiling closes open SSE streams and WebSockets when closed", async () => {
  await using redis = await startRedisServer();
  const ceiling = await startCeiling({ port: 0, redis: redis.url });
  const sse = await fetch(`http://127.0.0.1:${ceiling.port}/api/v1/streaming/public`);
  const ws = await openSocket(`ws://127.0.0.1:${ceiling.port}/`, [], 1);
  await ceiling.close();
  assert.equal(await sse.text(), ":)\n");
  await ws.closed;
});

Deno.test("ceiling command line parses flags and rejects a bad port", () => {
  assert.deepEqual(parseCeilingArgs([]), {
    port: 4100,
    hostname: "127.0.0.1",
    redis: "redis://127.0.0.1:6379",
    channel: "timeline:public",
  });
  assert.deepEqual(
    parseCeilingArgs(["--port=0", "--hostname", "::1", "--redis", "redis://h:1", "--channel", "c"]),
    { port: 0, hostname: "::1", redis: "redis://h:1", channel: "c" },
  );
  assert.throws(() => parseCeilingArgs(["--port", "http"]), RangeError);
  assert.throws(() => parseCeilingArgs(["--token", "x"]), TypeError);
});

Deno.test("ceiling CLI prints its address when ready and exits 0 on SIGTERM", async () => {
  await using redis = await startRedisServer();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "bench/ceiling.ts", "--port", "0", "--redis", redis.url],
    cwd: new URL("../..", import.meta.url),
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  assert.match(value ?? "", /^ceiling listening on http:\/\/127\.0\.0\.1:\d+\n$/);
  child.kill("SIGTERM");
  const { done } = await reader.read();
  assert.equal(done, true);
  assert.equal((await child.status).code, 0);
});
