import assert from "node:assert/strict";
import { startCeiling } from "../../bench/ceiling.ts";
import { DEFAULT_OPTIONS, parseArgs, runLoad } from "../../bench/loadgen.ts";
import {
  defaultChannel,
  type LoadOptions,
  parseTokens,
  streamPath,
} from "../../bench/loadgen/args.ts";
import { type ClientSpec, LoadStats, StreamClient } from "../../bench/loadgen/client.ts";
import { clientSpecs, parseTarget } from "../../bench/loadgen/pool.ts";
import { Histogram, percentileOf } from "../../bench/loadgen/histogram.ts";
import { parseStatTicks, parseStatusRss } from "../../bench/loadgen/proc.ts";
import { ChunkedDecoder, HttpResponseReader, MarkerScanner } from "../../bench/loadgen/scan.ts";
import { encodeClientFrame, Opcode, WsFrameParser } from "../../bench/loadgen/ws.ts";
import { createMessageFactory, formatMarker } from "../../bench/messages.ts";
import { startRedisServer } from "../../scripts/redis_server.ts";
import { STREAM_NAMES } from "../../src/timeline.ts";

const encoder = new TextEncoder();
const bytes = (text: string) => encoder.encode(text);
const M1 = 1_700_000_000_123_456;
const M2 = 1_700_000_000_654_321;

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) out.set(part, (at += part.length) - part.length);
  return out;
}

/** An unmasked server frame (final unless `fin` is false). */
function serverFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const n = payload.length;
  const extended = n <= 125 ? 0 : n <= 0xffff ? 2 : 8;
  const head = new Uint8Array(2 + extended);
  const view = new DataView(head.buffer);
  head[0] = (fin ? 0x80 : 0) | opcode;
  head[1] = extended === 0 ? n : extended === 2 ? 126 : 127;
  if (extended === 2) view.setUint16(2, n);
  if (extended === 8) view.setBigUint64(2, BigInt(n));
  return concat(head, payload);
}

/** Feeds `input` to `push` in two pieces split at `at` (a copy, as parsers may unmask in place). */
function feedSplit(
  push: (b: Uint8Array, s: number, e: number) => void,
  input: Uint8Array,
  at: number,
) {
  const copy = input.slice();
  push(copy, 0, at);
  push(copy, at, copy.length);
}

/** Unmasks a client frame with a 7-bit length. */
function unmaskClientFrame(
  frame: Uint8Array,
): { opcode: number; masked: boolean; payload: Uint8Array } {
  const length = frame[1] & 0x7f;
  const mask = frame.subarray(2, 6);
  const payload = frame.slice(6, 6 + length).map((b, i) => b ^ mask[i & 3]);
  return { opcode: frame[0] & 0x0f, masked: (frame[1] & 0x80) !== 0, payload };
}

function wsCollector() {
  const markers: number[] = [];
  const pings: string[] = [];
  const closes: number[] = [];
  let messages = 0;
  const scanner = new MarkerScanner((m) => markers.push(m));
  const parser = new WsFrameParser({
    data: (buf, start, end) => scanner.scan(buf, start, end),
    ping: (payload) => pings.push(new TextDecoder().decode(payload)),
    close: (code) => closes.push(code),
    message: () => messages++,
  });
  return { parser, markers, pings, closes, messages: () => messages };
}

Deno.test("WsFrameParser finds a marker in a text frame split at every byte boundary", () => {
  const frame = serverFrame(
    Opcode.Text,
    bytes(`{"payload":"{\\"content\\":\\"${formatMarker(M1)}\\"}"}`),
  );
  for (let at = 0; at <= frame.length; at++) {
    const c = wsCollector();
    feedSplit((b, s, e) => c.parser.push(b, s, e), frame, at);
    assert.deepEqual(c.markers, [M1], `split at ${at}`);
    assert.equal(c.messages(), 1);
  }
});

Deno.test("WsFrameParser reads 16-bit and 64-bit lengths and fragmented messages", () => {
  const medium = serverFrame(Opcode.Text, bytes("x".repeat(300) + formatMarker(M1)));
  const large = serverFrame(Opcode.Text, bytes("y".repeat(70_000) + formatMarker(M2)));
  const marker = formatMarker(M1);
  const first = serverFrame(Opcode.Text, bytes(`start ${marker.slice(0, 10)}`), false);
  const ping = serverFrame(Opcode.Ping, bytes("mid"));
  const last = serverFrame(Opcode.Continuation, bytes(`${marker.slice(10)} end`));
  const stream = concat(medium, large, first, ping, last);
  for (const at of [1, 3, 4, 309, 312, 70_300, stream.length - 5]) {
    const c = wsCollector();
    feedSplit((b, s, e) => c.parser.push(b, s, e), stream, at);
    assert.deepEqual(c.markers, [M1, M2, M1], `split at ${at}`);
    assert.deepEqual(c.pings, ["mid"]);
    assert.equal(c.messages(), 3);
  }
});

Deno.test("WsFrameParser unmasks masked frames and reports close codes", () => {
  const masked = encodeClientFrame(
    Opcode.Text,
    bytes(formatMarker(M2)),
    new Uint8Array([1, 2, 3, 4]),
  );
  const close = serverFrame(Opcode.Close, new Uint8Array([0x03, 0xe9]));
  const c = wsCollector();
  c.parser.push(
    concat(masked, close, serverFrame(Opcode.Close, new Uint8Array(0))),
    0,
    masked.length + 6,
  );
  assert.deepEqual(c.markers, [M2]);
  assert.deepEqual(c.closes, [1001, 1005]);
});

Deno.test("a ping split at every byte boundary is answered by a masked pong with its payload", () => {
  const ping = serverFrame(Opcode.Ping, bytes("are you there"));
  for (let at = 0; at <= ping.length; at++) {
    const pongs: Uint8Array[] = [];
    const parser = new WsFrameParser({
      data: () => assert.fail("no data expected"),
      ping: (payload) => pongs.push(encodeClientFrame(Opcode.Pong, payload)),
      close: () => assert.fail("no close expected"),
    });
    feedSplit((b, s, e) => parser.push(b, s, e), ping, at);
    assert.equal(pongs.length, 1);
    const pong = unmaskClientFrame(pongs[0]);
    assert.equal(pong.opcode, Opcode.Pong);
    assert.equal(pong.masked, true);
    assert.equal(new TextDecoder().decode(pong.payload), "are you there");
  }
});

Deno.test("encodeClientFrame masks payloads with 16-bit and 64-bit lengths", () => {
  const mask = new Uint8Array([9, 8, 7, 6]);
  const medium = encodeClientFrame(Opcode.Text, new Uint8Array(300).fill(65), mask);
  assert.deepEqual([...medium.subarray(0, 8)], [0x81, 0x80 | 126, 1, 44, 9, 8, 7, 6]);
  assert.equal(medium[8], 65 ^ 9);
  const large = encodeClientFrame(Opcode.Binary, new Uint8Array(70_000), mask);
  assert.equal(large[1], 0x80 | 127);
  assert.equal(new DataView(large.buffer).getBigUint64(2), 70_000n);
  assert.equal(large.length, 2 + 8 + 4 + 70_000);
});

/** A chunked SSE response whose second event's marker is cut by a chunk boundary. */
function chunkedSse(): Uint8Array {
  const chunk = (text: string) => `${bytes(text).length.toString(16)}\r\n${text}\r\n`;
  const marker = formatMarker(M2);
  return bytes(
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" +
      chunk(":)\n") +
      chunk(`event: update\ndata: {"content":"<p>${formatMarker(M1)}</p>"}\n\n`) +
      chunk(`event: update\ndata: {"content":"<p>${marker.slice(0, 5)}`) +
      `A;ext=1\r\n${marker.slice(5, 15)}\r\n` +
      chunk(`${marker.slice(15)}</p>"}\n\n`) + chunk(":thump\n") + "0\r\n\r\n",
  );
}

Deno.test("HttpResponseReader de-chunks SSE and finds markers cut by chunks, at every split", () => {
  const response = chunkedSse();
  for (let at = 0; at <= response.length; at++) {
    const markers: number[] = [];
    const statuses: number[] = [];
    const scanner = new MarkerScanner((m) => markers.push(m));
    let body = "";
    const reader = new HttpResponseReader((head) => statuses.push(head.status), (b, s, e) => {
      body += new TextDecoder().decode(b.subarray(s, e));
      scanner.scan(b, s, e);
    });
    feedSplit((b, s, e) => reader.push(b, s, e), response, at);
    assert.deepEqual(statuses, [200], `split at ${at}`);
    assert.deepEqual(markers, [M1, M2], `split at ${at}`);
    assert.ok(body.startsWith(":)\nevent: update\n") && body.endsWith(":thump\n"));
    assert.ok(!body.includes("\r\n"));
  }
});

Deno.test("HttpResponseReader passes a non-chunked body through and parses the status", () => {
  let body = "";
  let status = 0;
  const reader = new HttpResponseReader((head) => status = head.status, (b, s, e) => {
    body += new TextDecoder().decode(b.subarray(s, e));
  });
  const response = bytes("HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nnope!");
  reader.push(response, 0, response.length);
  assert.equal(status, 401);
  assert.equal(body, "nope!");
  assert.throws(
    () => new HttpResponseReader(() => {}, () => {}).push(bytes("SSH-2.0\r\n\r\n"), 0, 11),
    SyntaxError,
  );
});

Deno.test("ChunkedDecoder stops at the last chunk and ignores trailers", () => {
  const parts: string[] = [];
  const decoder = new ChunkedDecoder((b, s, e) =>
    parts.push(new TextDecoder().decode(b.subarray(s, e)))
  );
  const input = bytes("3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n");
  decoder.push(input, 0, input.length);
  assert.deepEqual(parts, ["abc"]);
  assert.equal(decoder.done, true);
});

Deno.test("MarkerScanner ignores near misses and restarts on a B inside a failed match", () => {
  const markers: number[] = [];
  const scanner = new MarkerScanner((m) => markers.push(m));
  const text = `Bob BENCH BENCHTS123x BBENCHTS${"1".repeat(16)} BENCHTS${formatMarker(M1)}`;
  const input = bytes(text);
  for (let i = 0; i < input.length; i++) scanner.scan(input, i, i + 1);
  assert.deepEqual(markers, [1111111111111111, M1]);
});

Deno.test("Histogram percentiles stay within 1.6% of the exact values; small values are exact", () => {
  const histogram = new Histogram();
  for (let v = 1; v <= 100_000; v++) histogram.record(v);
  for (const q of [0.5, 0.9, 0.99]) {
    const exact = q * 100_000;
    const got = histogram.percentile(q)!;
    assert.ok(Math.abs(got - exact) / exact < 0.016, `p${q * 100}: ${got} vs ${exact}`);
  }
  assert.equal(histogram.percentile(1), 100_000);
  assert.equal(histogram.count, 100_000);
  const small = new Histogram();
  for (const v of [3, 7, 7, 100, -5]) small.record(v);
  assert.equal(small.percentile(0.5), 7);
  assert.equal(small.min, 0);
  assert.equal(small.max, 100);
});

Deno.test("Histogram of nothing has no percentiles, and merging adds samples", () => {
  const a = new Histogram();
  assert.equal(a.percentile(0.5), undefined);
  const b = new Histogram();
  b.record(10);
  b.record(2 ** 40);
  a.merge(b);
  assert.equal(a.count, 2);
  assert.equal(a.max, 2 ** 32 - 1);
  assert.equal(percentileOf([], 0.5), undefined);
  assert.equal(percentileOf([5, 1, 3, 2, 4], 0.5), 3);
  assert.equal(percentileOf([5, 1, 3, 2, 4], 0.99), 5);
});

Deno.test("parseArgs applies defaults and reads every flag, in both spellings", () => {
  assert.deepEqual(parseArgs([]), { options: { ...DEFAULT_OPTIONS }, quiet: false });
  const parsed = parseArgs([
    ..."--url http://h:1 --transport=mix --stream hashtag --tag Cats --clients 5".split(" "),
    ..."--ramp-ms 100 --token a --token=b --rate 2.5 --payload-bytes 900 --duration 3".split(" "),
    ..."--warmup 0 --redis redis://r:1/2 --channel c --server-pid 42 --slow 3".split(" "),
    ..."--json out.json --idle --quiet --author remote --read-buffer 4096".split(" "),
    ..."--account 109876543210987654".split(" "),
  ]);
  assert.notEqual(parsed, "help");
  if (parsed === "help") return;
  const { options } = parsed;
  assert.equal(parsed.quiet, true);
  assert.deepEqual(options.tokens, ["a", "b"]);
  assert.deepEqual(
    [options.url, options.transport, options.stream, options.tag, options.clients, options.rampMs],
    ["http://h:1", "mix", "hashtag", "Cats", 5, 100],
  );
  assert.deepEqual(
    [options.rate, options.payloadBytes, options.duration, options.warmup, options.redis],
    [2.5, 900, 3, 0, "redis://r:1/2"],
  );
  assert.deepEqual(
    [options.channel, options.serverPid, options.slow, options.json, options.idle, options.author],
    ["c", 42, 3, "out.json", true, "remote"],
  );
  assert.equal(options.readBufferBytes, 4096);
  assert.equal(options.account, "109876543210987654", "kept as text: ids exceed 2^53");
  assert.equal(parseArgs(["--help"]), "help");
});

Deno.test("parseArgs rejects unknown flags, missing values and bad values by name", () => {
  const cases: [string[], RegExp][] = [
    [["--bogus"], /Unknown option --bogus/],
    [["--clients"], /--clients needs a value/],
    [["--clients", "-3"], /--clients: expected an integer/],
    [["--transport", "tcp"], /--transport: expected one of sse, ws, mix, got "tcp"/],
    [["--rate", "0"], /--rate: expected a number > 0/],
    [["--stream", "hashtag"], /needs --tag/],
    [["--stream", "list"], /needs --list/],
    [["--stream", "public:media:local"], /--stream: Unknown stream type "public:media:local"/],
    [["--stream", "user", "--token", "t"], /give --account ID or --channel NAME/],
    [["--stream", "direct", "--tokens-file", "f"], /give --account ID or --channel NAME/],
    [["--account", "1e3"], /--account: expected an account id/],
    [["--idle=yes"], /--idle takes no value/],
  ];
  for (const [args, message] of cases) {
    assert.throws(() => parseArgs(args), { name: "RangeError", message });
  }
});

Deno.test("every stream's SSE path, WebSocket query and channel come from src/timeline.ts", () => {
  const tag = "Ünïcode_Café";
  const encodedTag = encodeURIComponent(tag);
  const rows: [Partial<LoadOptions> & { stream: string }, string, string, string][] = [
    [{ stream: "user" }, "/api/v1/streaming/user", "stream=user", "timeline:1"],
    [
      { stream: "user:notification" },
      "/api/v1/streaming/user/notification",
      "stream=user%3Anotification",
      "timeline:1:notifications",
    ],
    [{ stream: "public" }, "/api/v1/streaming/public", "stream=public", "timeline:public"],
    [
      { stream: "public:media" },
      "/api/v1/streaming/public?only_media=true",
      "stream=public%3Amedia",
      "timeline:public:media",
    ],
    [
      { stream: "public:local" },
      "/api/v1/streaming/public/local",
      "stream=public%3Alocal",
      "timeline:public:local",
    ],
    [
      { stream: "public:local:media" },
      "/api/v1/streaming/public/local?only_media=true",
      "stream=public%3Alocal%3Amedia",
      "timeline:public:local:media",
    ],
    [
      { stream: "public:remote" },
      "/api/v1/streaming/public/remote",
      "stream=public%3Aremote",
      "timeline:public:remote",
    ],
    [
      { stream: "public:remote:media" },
      "/api/v1/streaming/public/remote?only_media=true",
      "stream=public%3Aremote%3Amedia",
      "timeline:public:remote:media",
    ],
    [
      { stream: "hashtag", tag },
      `/api/v1/streaming/hashtag?tag=${encodedTag}`,
      `stream=hashtag&tag=${encodedTag}`,
      "timeline:hashtag:unicode_cafe",
    ],
    [
      { stream: "hashtag:local", tag: "Cats" },
      "/api/v1/streaming/hashtag/local?tag=Cats",
      "stream=hashtag%3Alocal&tag=Cats",
      "timeline:hashtag:cats:local",
    ],
    [
      { stream: "list", list: "7" },
      "/api/v1/streaming/list?list=7",
      "stream=list&list=7",
      "timeline:list:7",
    ],
    [{ stream: "direct" }, "/api/v1/streaming/direct", "stream=direct", "timeline:direct:1"],
  ];
  assert.deepEqual(rows.map(([o]) => o.stream), [...STREAM_NAMES]);
  for (const [stream, sse, ws, channel] of rows) {
    const options = { ...DEFAULT_OPTIONS, ...stream };
    assert.equal(streamPath(options, "sse"), sse, stream.stream);
    assert.equal(streamPath(options, "ws"), `/api/v1/streaming?${ws}`, stream.stream);
    assert.equal(defaultChannel(options), channel, stream.stream);
  }
});

Deno.test("the channel of user, user:notification and direct names the tokens' account", () => {
  const channel = (stream: string, over: Partial<LoadOptions> = {}) =>
    defaultChannel({ ...DEFAULT_OPTIONS, stream, ...over });
  const account = { account: "42", tokensFile: "tokens.txt" };
  assert.equal(channel("user", account), "timeline:42");
  assert.equal(channel("user:notification", account), "timeline:42:notifications");
  assert.equal(channel("direct", account), "timeline:direct:42");
  assert.equal(channel("direct", { tokens: ["token-alice"] }), "timeline:direct:1");
  for (const stream of ["user", "user:notification", "direct"]) {
    assert.throws(() => channel(stream, { tokens: ["token-bob"] }), /give --account ID/);
    assert.throws(() => channel(stream, { tokensFile: "tokens.txt" }), /give --account ID/);
  }
  assert.equal(channel("public", { tokensFile: "tokens.txt" }), "timeline:public");
  const parsed = parseArgs(["--stream", "user", "--token", "t", "--channel", "timeline:9"]);
  assert.equal(parsed !== "help" && parsed.options.channel, "timeline:9");
  assert.notEqual(parseArgs(["--idle", "--stream", "user", "--tokens-file", "f"]), "help");
});

Deno.test("a tokens file gives one token per line, without blank lines and comments", () => {
  assert.deepEqual(parseTokens("# bench tokens\nt1\n\n  t2 \r\nt3\n", "f"), ["t1", "t2", "t3"]);
  assert.throws(() => parseTokens("# nothing\n\n", "f.txt"), /no tokens in f\.txt/);
});

Deno.test("clients take tokens round-robin and, with mix, alternate SSE and WebSocket", () => {
  const options = { ...DEFAULT_OPTIONS, transport: "mix" as const, stream: "public:local:media" };
  const specs = clientSpecs(options, parseTarget("http://127.0.0.1:4000"), ["a", "b", "c"], 4, 1);
  assert.deepEqual(specs.map((s) => [s.transport, s.token, s.path]), [
    ["ws", "b", "/api/v1/streaming?stream=public%3Alocal%3Amedia"],
    ["sse", "c", "/api/v1/streaming/public/local?only_media=true"],
    ["ws", "a", "/api/v1/streaming?stream=public%3Alocal%3Amedia"],
    ["sse", "b", "/api/v1/streaming/public/local?only_media=true"],
  ]);
});

Deno.test("benchmark messages are update events padded to payload-bytes with one marker", () => {
  for (const author of ["local", "remote"] as const) {
    const make = createMessageFactory({ payloadBytes: 3000, author });
    const message = make(7, M1);
    const { event, payload } = JSON.parse(message);
    assert.equal(event, "update");
    assert.equal(bytes(JSON.stringify(payload)).length, 3000);
    assert.equal(payload.id, "115900000000000007");
    assert.equal(payload.account.acct.includes("@"), author === "remote");
    assert.deepEqual(message.match(/BENCHTS\d{16}/g), [formatMarker(M1)]);
    assert.notEqual(make(8, M1), message);
  }
  const small = JSON.parse(createMessageFactory({ payloadBytes: 10, author: "local" })(1, M2));
  assert.ok(small.payload.content.includes(formatMarker(M2)));
});

Deno.test("/proc readings are parsed from status and stat lines", () => {
  assert.equal(parseStatusRss("Name:\tdeno\nVmRSS:\t  12345 kB\nVmSwap: 0 kB\n"), 12345 * 1024);
  assert.equal(parseStatusRss("Name:\tzombie\n"), undefined);
  const stat = "4242 (deno (main)) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 9 0 100 200 300";
  assert.equal(parseStatTicks(stat), 175);
});

function spec(port: number, transport: "sse" | "ws"): ClientSpec {
  const path = transport === "sse" ? "/api/v1/streaming/public" : "/api/v1/streaming?stream=public";
  return {
    transport,
    hostname: "127.0.0.1",
    port,
    tls: false,
    path,
    token: "tok",
    readBufferBytes: 1024,
  };
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let at = 0; at < data.length;) at += await conn.write(data.subarray(at));
}

async function readHead(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(4096);
  let text = "";
  while (!text.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) break;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  return text;
}

Deno.test("a WebSocket client sends its token as access_token and answers pings with masked pongs", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const stats = new LoadStats();
  const client = new StreamClient(spec(listener.addr.port, "ws"), stats);
  const opening = client.open(10_000);
  using conn = await listener.accept();
  const request = await readHead(conn);
  assert.match(request, /^GET \/api\/v1\/streaming\?stream=public&access_token=tok HTTP\/1\.1\r\n/);
  assert.match(request, /\r\nSec-WebSocket-Key: [A-Za-z0-9+/]{22}==\r\n/);
  const delivered = stats.deliveriesReached(1);
  await conn.write(concat(
    bytes("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"),
    serverFrame(Opcode.Text, bytes(`{"payload":"${formatMarker(M1)}"}`)),
    serverFrame(Opcode.Ping, bytes("hi")),
  ));
  assert.equal(await opening, true);
  await delivered;
  const pong = new Uint8Array(8);
  for (let got = 0; got < pong.length;) got += (await conn.read(pong.subarray(got))) ?? pong.length;
  const frame = unmaskClientFrame(pong);
  assert.deepEqual([frame.opcode, frame.masked, new TextDecoder().decode(frame.payload)], [
    Opcode.Pong,
    true,
    "hi",
  ]);
  client.close();
  await client.finished;
  assert.equal(stats.disconnects.ws, 0);
});

Deno.test("an SSE stream the server ends is counted as a disconnect; a refused connect as a failure", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const stats = new LoadStats();
  const client = new StreamClient(spec(listener.addr.port, "sse"), stats);
  const opening = client.open(10_000);
  const conn = await listener.accept();
  assert.match(await readHead(conn), /\r\nAuthorization: Bearer tok\r\n/);
  await conn.write(bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n:)\n\r\n"));
  assert.equal(await opening, true);
  conn.close();
  await client.finished;
  assert.deepEqual(stats.disconnects, { sse: 1, ws: 0 });
  listener.close();
  const refused = new StreamClient(spec(listener.addr.port, "sse"), stats);
  assert.equal(await refused.open(10_000), false);
  assert.match(refused.failure ?? "", /ConnectionRefused/);
  assert.equal(stats.failed, 1);
});

Deno.test("runLoad publishes through a real Redis to a subscribed server whose SSE and WebSocket clients get every message", async () => {
  await using redis = await startRedisServer();
  const clients = 6;
  let registered = 0;
  const allRegistered = Promise.withResolvers<void>();
  await using ceiling = await startCeiling({
    port: 0,
    redis: redis.url,
    onClient: () => ++registered === clients && allRegistered.resolve(),
  });
  const tokensFile = await Deno.makeTempFile();
  await Deno.writeTextFile(tokensFile, "t1\nt2\nt3\n");
  try {
    const report = await runLoad({
      url: `http://127.0.0.1:${ceiling.port}`,
      transport: "mix",
      clients,
      tokensFile,
      rate: 40,
      duration: 0.25,
      warmup: 0,
      redis: redis.url,
      beforePublishing: () => allRegistered.promise,
    });
    assert.equal(report.target.channel, "timeline:public", "the ceiling's channel");
    assert.deepEqual(report.connections.byTransport, {
      sse: { attempted: 3, established: 3 },
      ws: { attempted: 3, established: 3 },
    });
    assert.equal(report.publishing?.published, 10);
    assert.equal(report.publishing?.errors, 0);
    assert.equal(report.publishing?.minReceivers, 1, "Redis had the ceiling subscribed");
    // A client records each message's marker once, so 60 means all 10 reached each of the 6.
    assert.deepEqual([report.deliveries.expected, report.deliveries.delivered], [60, 60]);
    assert.deepEqual(report.deliveries.perClient, { short: 0, fewest: 10 }, "counted per client");
    assert.equal(report.latencyMs.samples, 60);
    assert.equal(report.disconnects.total, 0);
  } finally {
    await Deno.remove(tokensFile);
  }
});

Deno.test("a slow client never reads until the end, then tells a server cut from a stream still open", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const stats = new LoadStats();
  const ws = new StreamClient(spec(listener.addr.port, "ws"), stats);
  assert.equal(await ws.openSlow(), true);
  using wsConn = await listener.accept();
  await readHead(wsConn);
  await writeAll(
    wsConn,
    concat(
      bytes(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
      ),
      serverFrame(Opcode.Text, new Uint8Array(20_000).fill(120)),
      serverFrame(Opcode.Close, new Uint8Array([0x03, 0xf0])),
    ),
  );
  const sse = new StreamClient(spec(listener.addr.port, "sse"), stats);
  assert.equal(await sse.openSlow(), true);
  using sseConn = await listener.accept();
  await readHead(sseConn);
  await sseConn.write(bytes("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n:)\n\r\n"));
  assert.equal(await ws.drainUntil(performance.now() + 60_000), "cut");
  assert.equal(await sse.drainUntil(performance.now() + 50), "open");
  assert.equal(stats.delivered, 0);
});
