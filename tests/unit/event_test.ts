import assert from "node:assert/strict";
import { MalformedMessageError, parseEvent } from "../../src/event.ts";
import { objectBody, payloadSpan, stripJsonSpace } from "../../src/_json_span.ts";

const decoder = new TextDecoder();
const sse = (raw: string) => decoder.decode(parseEvent(raw).sse());

Deno.test("SSE bytes are `event:` and `data:` lines ended by a blank line", () => {
  assert.equal(sse('{"event":"delete","payload":"123"}'), "event: delete\ndata: 123\n\n");
  assert.equal(
    sse('{"event":"update","payload":{"id":"1","content":"<p>hi</p>"}}'),
    'event: update\ndata: {"id":"1","content":"<p>hi</p>"}\n\n',
  );
});

Deno.test("WebSocket text is stream, event, payload with the payload as a JSON string", () => {
  const event = parseEvent('{"event":"update","payload":{"id":"1","n":2}}');
  assert.equal(
    event.ws('["public"]'),
    '{"stream":["public"],"event":"update","payload":"{\\"id\\":\\"1\\",\\"n\\":2}"}',
  );
  assert.equal(
    parseEvent('{"event":"delete","payload":"115"}').ws('["hashtag","Foo"]'),
    '{"stream":["hashtag","Foo"],"event":"delete","payload":"115"}',
  );
  const round = JSON.parse(event.ws('["user"]'));
  assert.deepEqual(JSON.parse(round.payload), { id: "1", n: 2 });
});

Deno.test("Encodings are built once and shared", () => {
  const event = parseEvent('{"event":"delete","payload":"1"}');
  assert.equal(event.sse(), event.sse());
  assert.equal(event.ws('["public"]'), event.ws('["public"]'));
});

Deno.test("Large numeric ids pass through without losing precision", () => {
  const raw = '{"event":"delete","payload":115000000000000001}';
  assert.equal(sse(raw), "event: delete\ndata: 115000000000000001\n\n");
  assert.equal(
    parseEvent(raw).ws('["public"]'),
    '{"stream":["public"],"event":"delete","payload":115000000000000001}',
  );
  const nested = '{"event":"update","payload":{"id":115000000000000001,"x":[1.0,2e3]}}';
  assert.equal(sse(nested), 'event: update\ndata: {"id":115000000000000001,"x":[1.0,2e3]}\n\n');
});

Deno.test("Rails-style \\u003c escapes are forwarded as published", () => {
  const raw =
    '{"event":"update","payload":{"content":"\\u003cp\\u003eHi \\u0026 bye\\u003c/p\\u003e"}}';
  assert.equal(
    sse(raw),
    'event: update\ndata: {"content":"\\u003cp\\u003eHi \\u0026 bye\\u003c/p\\u003e"}\n\n',
  );
});

Deno.test("Pretty-printed payloads lose their whitespace but keep strings intact", () => {
  const raw =
    '{\n "event": "update",\n "payload": {\n  "a": "x  y",\n  "b": [ 1, 2 ]\n },\n "queued_at": 1\n}';
  assert.equal(sse(raw), 'event: update\ndata: {"a":"x  y","b":[1,2]}\n\n');
  assert.equal(stripJsonSpace('{ "a" : "\\" }" , "b":[ ] }'), '{"a":"\\" }","b":[]}');
});

Deno.test("The last payload member wins, like JSON.parse", () => {
  assert.equal(payloadSpan('{"payload":"1","event":"x","payload":"2"}'), '"2"');
  assert.equal(payloadSpan('{"pay\\u006coad":"3"}'), '"3"');
  assert.equal(payloadSpan('{"event":"x"}'), "");
});

Deno.test("Events without event or a truthy payload are not deliverable", () => {
  for (
    const raw of [
      '{"event":"update"}',
      '{"event":"delete","payload":""}',
      '{"event":"delete","payload":null}',
      '{"event":"delete","payload":0}',
      '{"event":"filters_changed"}',
      '{"payload":"1"}',
    ]
  ) {
    assert.equal(parseEvent(raw).deliverable, false, raw);
  }
  assert.equal(parseEvent('{"event":"kill"}').event, "kill");
  assert.equal(parseEvent('{"event":"announcement","payload":{"id":"1"}}').deliverable, true);
});

Deno.test("Malformed messages are rejected with a reason", () => {
  const reasons: Array<[string, string]> = [
    ["this is not json", "invalid_json"],
    ['["update",{}]', "not_an_object"],
    ["null", "not_an_object"],
    ['"update"', "not_an_object"],
    ['{"event":5,"payload":"1"}', "bad_event_name"],
    ['{"event":"a\\nb","payload":"1"}', "bad_event_name"],
  ];
  for (const [raw, reason] of reasons) {
    assert.throws(() => parseEvent(raw), (err) => {
      assert.ok(err instanceof MalformedMessageError);
      assert.equal(err.reason, reason);
      return true;
    });
  }
});

Deno.test("A string payload with line breaks becomes several data lines", () => {
  assert.equal(sse('{"event":"x","payload":"a\\nb"}'), "event: x\ndata: a\ndata: b\n\n");
});

Deno.test("A derived payload shares bytes between equal results", () => {
  const event = parseEvent('{"event":"update","payload":{"id":"1"}}');
  const a = event.withLastKey("filtered", "[]");
  assert.equal(a, event.withLastKey("filtered", "[]"));
  assert.notEqual(a, event.withLastKey("filtered", '[{"x":1}]'));
  assert.equal(decoder.decode(a.sse()), 'event: update\ndata: {"id":"1","filtered":[]}\n\n');
  assert.equal(a.sse(), a.sse(), "encoded once");
});

Deno.test("objectBody splits a JSON object before its closing brace", async (t) => {
  const cases: [string, string, string][] = [
    ["{}", "{", ""],
    ["{ }", "{", ""],
    ['{"a":1}', '{"a":1', ","],
    ['{"a":1} ', '{"a":1', ","],
    ['{"a":1}\n', '{"a":1', ","],
    ['{ "a" : 1 }', '{ "a" : 1', ","],
    ['{"a":{"b":"}"}}', '{"a":{"b":"}"}', ","],
  ];
  for (const [json, text, separator] of cases) {
    await t.step(JSON.stringify(json), () => {
      assert.deepEqual(objectBody(json), { text, separator });
      const appended = `${text}${separator}"filtered":[]}`;
      assert.equal(Object.keys(JSON.parse(appended)).at(-1), "filtered");
    });
  }
});

Deno.test("objectBody throws SyntaxError when the text is not an object", async (t) => {
  for (const json of ["", " ", "[]", '"{}"', "{", "}", "null", "1", '{"a":1'] as const) {
    await t.step(JSON.stringify(json), () => {
      assert.throws(() => objectBody(json), SyntaxError);
    });
  }
});

Deno.test("withLastKey appends the key verbatim, and derived encodings equal fresh ones", () => {
  const content = '<p>caf\u00e9 \u{1F418} "q" \\ \u2028</p>';
  const raw = `{"event":"update","payload":{"id":"1","n":12345678901234567890,` +
    `"content":${JSON.stringify(content)}}}`;
  const event = parseEvent(raw);
  const filtered =
    '[{"filter":{"id":"1","title":"Caf\u00e9 \\"x\\""},"keyword_matches":["\u{1F418}"]}]';
  const derived = event.withLastKey("filtered", filtered);
  const expected = event.payloadJson.slice(0, -1) + `,"filtered":${filtered}}`;
  assert.equal(derived.payloadJson, expected);
  assert.ok(derived.payloadJson.includes("12345678901234567890"), "big number untouched");
  const fresh = parseEvent(`{"event":"update","payload":${expected}}`);
  assert.deepEqual(derived.sse(), fresh.sse());
  assert.equal(derived.ws('["public"]'), fresh.ws('["public"]'));
  assert.ok(event.withLastKey("filtered", "[]").payloadJson.endsWith(`</p>","filtered":[]}`));
  assert.equal(
    parseEvent('{"event":"update","payload":{}}').withLastKey("filtered", "[]").payloadJson,
    '{"filtered":[]}',
  );
  assert.throws(
    () => parseEvent('{"event":"delete","payload":"1"}').withLastKey("filtered", "[]"),
    SyntaxError,
  );
});
