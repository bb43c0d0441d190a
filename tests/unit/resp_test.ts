import assert from "node:assert/strict";
import {
  encodeCommand,
  RedisReplyError,
  RespParser,
  type RespValue,
} from "../../src/redis/resp.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

/** Errors become `{ error: message }` so replies compare with deepEqual. */
function plain(value: RespValue): unknown {
  if (value instanceof RedisReplyError) return { error: value.message };
  if (Array.isArray(value)) return value.map(plain);
  return value;
}

function parseChunks(chunks: Uint8Array[]): unknown[] {
  const parser = new RespParser();
  const out: RespValue[] = [];
  for (const chunk of chunks) parser.push(chunk, out);
  return out.map(plain);
}

const SAMPLE = "+OK\r\n" +
  "-ERR unknown command 'FOO'\r\n" +
  ":42\r\n" +
  ":-7\r\n" +
  "$5\r\nhello\r\n" +
  "$-1\r\n" +
  "$0\r\n\r\n" +
  "$6\r\ncaf\u00e9!\r\n" +
  '*3\r\n$7\r\nmessage\r\n$15\r\ntimeline:public\r\n$13\r\n{"event":"x"}\r\n' +
  "*2\r\n*2\r\n:1\r\n$1\r\na\r\n*-1\r\n" +
  "*0\r\n";

const SAMPLE_REPLIES = [
  "OK",
  { error: "ERR unknown command 'FOO'" },
  42,
  -7,
  "hello",
  null,
  "",
  "caf\u00e9!",
  ["message", "timeline:public", '{"event":"x"}'],
  [[1, "a"], null],
  [],
];

Deno.test("RespParser decodes simple strings, errors, integers, bulk strings and arrays", () => {
  assert.deepEqual(parseChunks([bytes(SAMPLE)]), SAMPLE_REPLIES);
});

Deno.test("RespParser gives the same replies whatever byte boundary splits the stream", () => {
  const stream = bytes(SAMPLE);
  for (let cut = 1; cut < stream.length; cut++) {
    const replies = parseChunks([stream.subarray(0, cut), stream.subarray(cut)]);
    assert.deepEqual(replies, SAMPLE_REPLIES, `split at byte ${cut}`);
  }
});

Deno.test("RespParser decodes a stream fed one byte at a time", () => {
  const stream = bytes(SAMPLE);
  const chunks = Array.from(stream, (_, i) => stream.subarray(i, i + 1));
  assert.deepEqual(parseChunks(chunks), SAMPLE_REPLIES);
});

Deno.test("RespParser decodes arrays nested three deep with null and empty members", () => {
  const stream = "*3\r\n*2\r\n*1\r\n:1\r\n*0\r\n$-1\r\n*1\r\n*-1\r\n";
  assert.deepEqual(parseChunks([bytes(stream)]), [[[[1], []], null, [null]]]);
});

Deno.test("RespParser decodes a 100 KB bulk string arriving in uneven chunks", () => {
  const payload = '{"text":"' + "\u00e9x".repeat(34_000) + '"}';
  const size = bytes(payload).length;
  const stream = bytes(`$${size}\r\n${payload}\r\n:1\r\n`);
  const chunks = [];
  for (let i = 0, step = 1; i < stream.length; i += step, step = step * 3 + 7) {
    chunks.push(stream.subarray(i, i + step));
  }
  assert.deepEqual(parseChunks(chunks), [payload, 1]);
});

Deno.test("RespParser does not keep references to the chunks it was given", () => {
  const parser = new RespParser();
  const out: RespValue[] = [];
  const buffer = new Uint8Array(64);
  for (const piece of ["*2\r\n$5\r\nhel", "lo\r\n$3", "\r\nabc\r\n"]) {
    const encoded = bytes(piece);
    buffer.set(encoded);
    parser.push(buffer.subarray(0, encoded.length), out);
    buffer.fill(0x21); // the caller reuses its read buffer
  }
  assert.deepEqual(out, [["hello", "abc"]]);
});

Deno.test("RespParser returns many replies from one chunk in order", () => {
  const stream = Array.from({ length: 500 }, (_, i) => `:${i}\r\n`).join("");
  assert.deepEqual(parseChunks([bytes(stream)]), Array.from({ length: 500 }, (_, i) => i));
});

Deno.test("RespParser rejects bytes that are not RESP2", () => {
  assert.throws(() => parseChunks([bytes("%1\r\n")]), SyntaxError);
  assert.throws(() => parseChunks([bytes(":12a\r\n")]), SyntaxError);
  assert.throws(() => parseChunks([bytes("$3\r\nabcd\r\n")]), SyntaxError);
});

Deno.test("encodeCommand writes an array of bulk strings with UTF-8 byte lengths", () => {
  const encoded = new TextDecoder().decode(
    encodeCommand(["SUBSCRIBE", "timeline:hashtag:caf\u00e9"]),
  );
  assert.equal(encoded, "*2\r\n$9\r\nSUBSCRIBE\r\n$22\r\ntimeline:hashtag:caf\u00e9\r\n");
  assert.equal(new TextDecoder().decode(encodeCommand([])), "*0\r\n");
});

Deno.test("encodeCommand output parses back to the same strings", () => {
  const args = ["PUBLISH", "timeline:1", "", "line\r\nbreak", "\u{1F418}"];
  assert.deepEqual(parseChunks([encodeCommand(args)]), [args]);
});
