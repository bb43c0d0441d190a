/**
 * Real Redis traffic captured from live Mastodon servers (Flodgatt's
 * fixtures): every message parses, and its payload reaches clients as the
 * same JSON value, without re-serialisation.
 */
import assert from "node:assert/strict";
import { RespParser, type RespValue } from "../../src/redis/resp.ts";
import { parseEvent } from "../../src/event.ts";

const DIR = new URL("../../test_data/flodgatt/", import.meta.url);
const decoder = new TextDecoder();

async function files(sub: string, suffix: string): Promise<URL[]> {
  const urls: URL[] = [];
  for await (const entry of Deno.readDir(new URL(sub, DIR))) {
    if (entry.name.endsWith(suffix)) urls.push(new URL(`${sub}${entry.name}`, DIR));
  }
  return urls.sort((a, b) => a.href.localeCompare(b.href));
}

/** Checks what clients of both transports would receive for one message. */
function assertPassThrough(raw: string, label: string): void {
  const expected = JSON.parse(raw);
  const event = parseEvent(raw);
  assert.equal(event.event, expected.event, label);
  if (!event.deliverable) return;
  const sse = decoder.decode(event.sse());
  assert.ok(sse.startsWith(`event: ${expected.event}\ndata: `), label);
  assert.ok(sse.endsWith("\n\n"), label);
  assert.equal(sse.split("\n").length, 4, `${label}: one data line`);
  const data = sse.slice(sse.indexOf("data: ") + 6, -2);
  const frame = JSON.parse(event.ws('["public"]'));
  assert.deepEqual(Object.keys(frame), ["stream", "event", "payload"]);
  if (typeof expected.payload === "string") {
    assert.equal(data, expected.payload, label);
    assert.equal(frame.payload, expected.payload, label);
  } else {
    assert.deepEqual(JSON.parse(data), expected.payload, label);
    assert.deepEqual(JSON.parse(frame.payload), expected.payload, label);
    assert.ok(raw.includes(data), `${label}: payload bytes are the published ones`);
  }
}

// How many fixture files test_data/flodgatt/ holds, so a moved or emptied
// directory fails instead of passing with nothing checked.
const MESSAGE_FILES = 6;
const STREAM_FILES = 6 + 20; // resp/ and historical/

Deno.test("Captured Mastodon messages pass through unchanged", async (t) => {
  const urls = await files("", ".txt");
  assert.equal(urls.length, MESSAGE_FILES, "msg.*.txt files in test_data/flodgatt/");
  for (const url of urls) {
    await t.step(url.pathname.split("/").pop()!, async () => {
      assertPassThrough((await Deno.readTextFile(url)).trim(), url.pathname);
    });
  }
});

Deno.test("Captured Redis streams parse into messages that pass through", async (t) => {
  const urls = [...await files("resp/", ".resp"), ...await files("historical/", ".resp")];
  assert.equal(urls.length, STREAM_FILES, ".resp files in test_data/flodgatt/{resp,historical}/");
  let messages = 0;
  for (const url of urls) {
    await t.step(url.pathname.split("/").slice(-2).join("/"), async () => {
      const bytes = await Deno.readFile(url);
      const replies: RespValue[] = [];
      const parser = new RespParser();
      // Fed in small pieces, as a socket would deliver them.
      for (let i = 0; i < bytes.length; i += 1000) {
        parser.push(bytes.subarray(i, i + 1000), replies);
      }
      const found = replies.filter((r): r is string[] => Array.isArray(r) && r[0] === "message");
      for (const [, channel, raw] of found) {
        assert.match(channel, /^timeline:/);
        assertPassThrough(raw, `${url.pathname} ${channel}`);
      }
      messages += found.length;
    });
  }
  assert.ok(messages >= 20, `only ${messages} messages found`);
});
