/**
 * Sluice replays Mastodon's recorded transcripts (test_data/transcripts/,
 * recorded from Mastodon 4.5's streaming server) and must send the same
 * bytes. Only what docs/compatibility.md lets differ is normalised away:
 * `Date`, `X-Request-Id` values (the header itself must be there),
 * `X-Powered-By`, `Keep-Alive`/`Connection` values (except on a 101),
 * header case and order, chunk boundaries and Content-Length framing; and
 * the deliberate differences below (case 19, 21, 22, 39). Everything else is
 * compared exactly: status lines, headers, body bytes, SSE lines, WebSocket
 * frames and close codes, and the order of events.
 *
 * Steps are replayed in their recorded order. A PUBLISH waits until Sluice
 * listens to the channel and must reach as many subscribers as it did in the
 * recording. Order is kept per channel only (in Mastodon too), so a PUBLISH
 * on a different channel than the one before first waits until the client
 * has received every event the earlier PUBLISHes produced in the recording.
 * Client frames keep the recorded spacing, capped at 300 ms.
 */
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import { type Services, startServices, startSluice, type TestSluice } from "../_support/stack.ts";
import {
  describeFrame,
  type Exchange,
  type Frame,
  loadTranscript,
  parseExchange,
  RawConnection,
  type ResponseHead,
  type Step,
  type Transcript,
} from "../_support/transcript.ts";

interface Case {
  /** The transcript's file name stem, e.g. `03-no-token`. */
  name: string;
  /** What Sluice sends instead of Mastodon's bytes, where docs/compatibility.md allows it. */
  sluice?: (mastodon: Exchange) => Exchange;
  /** Compare `data:` payloads by parsed value (Mastodon re-serialised them). */
  jsonPayloads?: true;
  /** Replaces the body comparison. */
  body?: (actual: string, mastodon: string) => void;
  /** Further assertions on what Sluice sent. */
  check?: (actual: Exchange) => void;
  /** Shortened SSE heartbeat (Mastodon: 15 s); runs against its own Sluice. */
  heartbeatMs?: number;
  /** SQL that undoes the transcript's `psql:` step. */
  cleanup?: string;
  /**
   * Why Sluice leaves the connection open where Mastodon closed it. Only for
   * refused upgrades: Deno.serve sends `Connection: close` but does not act on
   * it (denoland/deno#9411); WebSocket clients close on the 401 themselves.
   */
  keepsConnection?: string;
}

const DENO_IGNORES_CONNECTION_CLOSE =
  "Deno.serve does not close after Connection: close (denoland/deno#9411)";

const CASES: Case[] = [
  { name: "01-health" },
  { name: "02-metrics", body: assertKeptMetrics },
  { name: "03-no-token" },
  { name: "04-bad-token" },
  { name: "05-revoked-token" },
  { name: "06-suspended-account-token" },
  { name: "07-disabled-user-token" },
  { name: "08-insufficient-scope" },
  { name: "09-insufficient-scope-public" },
  { name: "10-unknown-stream" },
  { name: "11-trailing-slash" },
  { name: "12-missing-tag" },
  { name: "13-missing-list" },
  { name: "14-list-not-owned" },
  { name: "15-unknown-path" },
  { name: "16-favicon" },
  { name: "17-options-preflight" },
  { name: "18-options-plain" },
  { name: "19-post-stream", sluice: jsonNotFound },
  { name: "20-sse-public-update" },
  { name: "21-sse-public-update-reserialized", jsonPayloads: true, check: keptEscapes },
  { name: "22-sse-public-delete", sluice: keptPrecision },
  { name: "23-sse-status-update" },
  { name: "24-sse-user-notification" },
  { name: "25-sse-user-bob-no-notifications" },
  { name: "26-sse-hashtag-update" },
  { name: "27-sse-list-update" },
  // 28–34, 38, 41: per-viewer filtering of public/hashtag streams.
  { name: "28-sse-blocked-account" },
  { name: "29-sse-blocked-mention" },
  { name: "30-sse-muted-account" },
  { name: "31-sse-domain-blocked" },
  { name: "32-sse-language-filtered" },
  { name: "33-sse-bob-sees-all" },
  { name: "34-sse-custom-filter" },
  { name: "35-sse-unusual-messages" },
  { name: "36-sse-query-token" },
  { name: "37-sse-kill" },
  {
    name: "38-sse-feed-access-local-disabled",
    cleanup: "DELETE FROM settings WHERE var = 'local_live_feed_access'",
  },
  { name: "39-sse-heartbeat", heartbeatMs: 250, sluice: singleLfThump },
  { name: "40-ws-user-and-subscriptions" },
  { name: "41-ws-filtering" },
  { name: "42-ws-subscription-errors" },
  { name: "43-ws-insufficient-scope" },
  { name: "44-ws-no-token", keepsConnection: DENO_IGNORES_CONNECTION_CLOSE },
  { name: "45-ws-bad-token", keepsConnection: DENO_IGNORES_CONNECTION_CLOSE },
  { name: "46-ws-subprotocol-token" },
  { name: "47-ws-any-path" },
  { name: "48-ws-kill" },
];

Deno.test("Sluice sends what Mastodon sent in every recorded transcript", async (t) => {
  const services = await startServices();
  const app = await startSluice(services);
  try {
    for (const c of CASES) {
      await t.step({
        name: c.name.replace("-", " "),
        fn: () => runCase(c, services, app),
      });
    }
  } finally {
    await app.close();
    await services.close();
  }
});

async function runCase(c: Case, services: Services, shared: TestSluice): Promise<void> {
  const transcript = await loadTranscript(c.name);
  const closes = transcript.steps.some((s) => s.kind === "server-closes");
  const mastodon = parseExchange(transcript.raw, closes);
  const expected = c.sluice?.(mastodon) ?? mastodon;
  const app = c.heartbeatMs === undefined
    ? shared
    : await startSluice(services, {}, { heartbeatMs: c.heartbeatMs });
  try {
    const actual = await replay(
      transcript,
      expected,
      app,
      services,
      c.keepsConnection !== undefined,
    );
    assertSameExchange(actual, expected, c);
    if (closes && !c.keepsConnection) {
      assert.ok(actual.eof, "Mastodon closed the connection here; Sluice did not");
    }
    c.check?.(actual);
  } finally {
    if (app !== shared) await app.close();
    if (c.cleanup) await services.pg.query(c.cleanup);
  }
}

/** Performs the transcript's steps against Sluice; returns what Sluice sent. */
async function replay(
  transcript: Transcript,
  expected: Exchange,
  app: TestSluice,
  services: Services,
  keepsConnection: boolean,
): Promise<Exchange> {
  for (const step of transcript.steps) {
    if (step.kind === "sql") await services.pg.query(step.sql); // "done before connecting"
  }
  await using conn = await RawConnection.open(app.port);
  const state = {
    conn,
    app,
    services,
    expected,
    transcript,
    frames: [...transcript.clientFrames],
    expectedEvents: deliveredEvents(expected),
    produced: 0,
    keepsConnection,
  };
  for (const step of transcript.steps) await perform(step, state);
  return conn.exchange();
}

interface ReplayState {
  conn: RawConnection;
  app: TestSluice;
  services: Services;
  expected: Exchange;
  transcript: Transcript;
  frames: Uint8Array[];
  /** The channel of the previous PUBLISH. */
  lastChannel?: string;
  /** Mastodon's delivered events, as `eventKey`s, in order. */
  expectedEvents: string[];
  /** How many of `expectedEvents` the PUBLISHes so far account for. */
  produced: number;
  keepsConnection: boolean;
}

async function perform(step: Step, s: ReplayState): Promise<void> {
  switch (step.kind) {
    case "request":
      return s.conn.write(
        s.transcript.request.replace(/^Host: .*$/m, `Host: 127.0.0.1:${s.app.port}`),
      );
    case "open":
      await s.conn.until((x) => x.head !== undefined);
      return listening(s.app, step.channels);
    case "subscribed":
      return listening(s.app, step.channels);
    case "unsubscribed":
      return s.app.unlistened(...step.channels);
    case "publish":
      return publish(step, s);
    case "numsub": {
      const reply = await s.services.client.command(["PUBSUB", "NUMSUB", step.channel]);
      assert.equal(Number((reply as unknown[])[1]), step.count, `PUBSUB NUMSUB ${step.channel}`);
      return;
    }
    case "send-frame": {
      const frame = s.frames.shift()!;
      // A close or binary frame ends the session: what Mastodon sent before it must be there.
      if ((frame[0] & 0x0f) !== 0x1) await s.conn.until(framesArrived(s.expected, step.echo));
      await delay(Math.min(step.gapMs, 300)); // the recorded spacing of client frames
      return s.conn.write(frame);
    }
    case "pause": // the recording waited here for something that must not arrive
      return delay(Math.min(step.ms, 300));
    case "server-closes":
      // Where Sluice keeps the connection (see Case.keepsConnection), waiting
      // for the whole response is enough; the caller asserts the EOF otherwise.
      await s.conn.until((x) => x.eof || (s.keepsConnection && arrived(s.expected)(x)));
      return;
    case "client-closes":
      await s.conn.until(arrived(s.expected));
      return;
  }
}

async function publish(step: Step & { kind: "publish" }, s: ReplayState): Promise<void> {
  if (step.receivers > 0) await listening(s.app, [step.channel]);
  // Order is kept per channel only: an event that waits for PostgreSQL (public,
  // hashtag) could be overtaken by one published next on another channel.
  if (s.lastChannel !== undefined && s.lastChannel !== step.channel) {
    const arrived = await s.conn.until((x) => deliveredEvents(x).length >= s.produced);
    assert.ok(arrived, `the ${s.produced} event(s) published before ${step.channel} arrived`);
  }
  s.lastChannel = step.channel;
  const receivers = await s.services.client.publish(step.channel, step.message);
  assert.equal(receivers, step.receivers, `PUBLISH ${step.channel}: receivers as in Mastodon`);
  // Filtered or malformed messages produced nothing: their key is not found.
  const message = parseJson(step.message);
  if (receivers === 0 || !isRecord(message)) return;
  const at = s.expectedEvents.indexOf(eventKey(message.event, message.payload), s.produced);
  if (at >= 0) s.produced = at + 1;
}

/** The events delivered so far, as `eventKey`s: SSE blocks with an event, or WebSocket text frames. */
function deliveredEvents(x: Exchange): string[] {
  if (x.head?.status === 101) {
    return x.frames.filter((f) => f.opcode === 0x1).map((f) => {
      const frame = parseJson(textDecoder.decode(f.payload));
      return isRecord(frame) ? eventKey(frame.event, frame.payload) : "";
    });
  }
  return x.body.split("\n\n").slice(0, -1).flatMap((block) => {
    const event = /^event: (.*)$/m.exec(block)?.[1];
    return event === undefined ? [] : [eventKey(event, /^data: (.*)$/m.exec(block)?.[1])];
  });
}

/** `event id`: tells which published message a delivered event came from. */
function eventKey(event: unknown, payload: unknown): string {
  const value = typeof payload === "string" ? parseJson(payload) ?? payload : payload;
  return `${event} ${isRecord(value) ? value.id : value}`;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

const textDecoder = new TextDecoder();

async function listening(app: TestSluice, channels: string[]): Promise<void> {
  const timeout = Promise.withResolvers<never>();
  const timer = setTimeout(
    () => timeout.reject(new Error(`Sluice never subscribed to ${channels.join(", ")}`)),
    5000,
  );
  try {
    await Promise.race([app.listening(...channels), timeout.promise]);
  } finally {
    clearTimeout(timer);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Whether Sluice has sent as much as Mastodon did by the time the client hung up. */
function arrived(expected: Exchange): (x: Exchange) => boolean {
  return (x) => {
    if (x.head === undefined) return false;
    if (x.complete || expected.complete) return x.complete;
    if (!isEventStream(x.head)) return false;
    return x.body.endsWith("\n") && blankLines(x.body) >= blankLines(expected.body) &&
      lineBreaks(x.body) >= lineBreaks(expected.body);
  };
}

function framesArrived(expected: Exchange, echo: boolean): (x: Exchange) => boolean {
  const isClose = (f: Frame) => f.opcode === 0x8;
  const wanted = expected.frames.filter((f) => !isClose(f)).length;
  return (x) =>
    x.head !== undefined &&
    (x.head.status !== 101 ||
      (x.frames.filter((f) => !isClose(f)).length >= wanted && (!echo || x.frames.some(isClose))));
}

function lineBreaks(body: string): number {
  return body.split("\n").length - 1;
}

function blankLines(body: string): number {
  return body.split("\n\n").length - 1;
}

function isEventStream(head: ResponseHead): boolean {
  return head.headers.some(([n, v]) =>
    n.toLowerCase() === "content-type" && v === "text/event-stream"
  );
}

function assertSameExchange(actual: Exchange, expected: Exchange, c: Case): void {
  assert.ok(actual.head, "Sluice sent no complete response head");
  const head = expected.head!;
  assert.equal(actual.head.statusLine, head.statusLine, "status line");
  assert.deepEqual(comparableHeaders(actual.head), comparableHeaders(head), "headers");
  if (head.status === 101) {
    const describe = (frames: Frame[]) => frames.map(describeFrame);
    assertSameItems("WebSocket frames", describe(actual.frames), describe(expected.frames));
  } else if (c.body) {
    c.body(actual.body, expected.body);
  } else if (isEventStream(head)) {
    const same = c.jsonPayloads ? sameDataValue : undefined;
    assertSameItems("SSE lines", actual.body.split("\n"), expected.body.split("\n"), same);
  } else {
    assert.equal(actual.body, expected.body, "body");
  }
  assert.equal(actual.complete, expected.complete, "whether the response body was ended");
}

const IGNORED = new Set([
  "date",
  "x-powered-by",
  "keep-alive",
  "transfer-encoding",
  "content-length",
]);
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** `name: value` lines, sorted, without what may differ; request ids become a placeholder. */
function comparableHeaders(head: ResponseHead): string[] {
  return head.headers.flatMap(([name, value]) => {
    const n = name.toLowerCase();
    if (IGNORED.has(n) || (n === "connection" && head.status !== 101)) return [];
    if (n === "x-request-id" && UUID_V4.test(value)) return [`${n}: <uuid v4>`];
    return [`${n}: ${value}`];
  }).sort();
}

/** Compares two lists item by item and names the first difference precisely. */
function assertSameItems(
  what: string,
  actual: string[],
  expected: string[],
  same: (a: string, e: string) => boolean = (a, e) => a === e,
): void {
  for (let i = 0; i < Math.max(actual.length, expected.length); i++) {
    if (i < actual.length && i < expected.length && same(actual[i], expected[i])) continue;
    const at = firstDifference(actual[i] ?? "", expected[i] ?? "");
    const show = (s: string | undefined) =>
      s === undefined ? "(nothing)" : JSON.stringify(s.slice(Math.max(0, at - 60), at + 60));
    assert.fail(
      `${what} differ at #${i} (of ${expected.length} from Mastodon, ${actual.length} from Sluice),` +
        ` character ${at}:\n  Mastodon: ${show(expected[i])}\n  Sluice:   ${show(actual[i])}`,
    );
  }
}

function firstDifference(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

function sameDataValue(actual: string, expected: string): boolean {
  if (actual === expected) return true;
  if (!actual.startsWith("data: ") || !expected.startsWith("data: ")) return false;
  try {
    return isDeepStrictEqual(JSON.parse(actual.slice(6)), JSON.parse(expected.slice(6)));
  } catch {
    return false;
  }
}

/**
 * Case 39: the recording's `:thump\n\n` (Mastodon `main`) becomes `:thump\n`, what
 * released Mastodon sends (docs/compatibility.md §5.1).
 */
function singleLfThump(mastodon: Exchange): Exchange {
  assert.equal(mastodon.body, ":)\n:thump\n\n");
  return { ...mastodon, body: ":)\n:thump\n" };
}

/** Case 19: Express's HTML 404 becomes `404 {"error":"Not found"}` (docs/compatibility.md §3.1). */
function jsonNotFound(mastodon: Exchange): Exchange {
  assert.match(mastodon.body, /<pre>Cannot POST \/api\/v1\/streaming\/public<\/pre>/);
  const html = new Set(["content-security-policy", "x-content-type-options", "content-type"]);
  const headers = mastodon.head!.headers.filter(([n]) => !html.has(n.toLowerCase()));
  headers.push(["Content-Type", "application/json"]);
  return { ...mastodon, head: { ...mastodon.head!, headers }, body: '{"error":"Not found"}' };
}

/** Case 22: Sluice forwards the numeric id as Rails wrote it; Mastodon lost precision. */
function keptPrecision(mastodon: Exchange): Exchange {
  const lossy = "data: 115000000000000000\n";
  assert.ok(mastodon.body.includes(lossy), "Mastodon printed the rounded id");
  return { ...mastodon, body: mastodon.body.replace(lossy, "data: 115000000000000001\n") };
}

/** Case 21: Sluice keeps Rails' `\u003c` escapes (the parsed value equals Mastodon's). */
function keptEscapes(actual: Exchange): void {
  const data = actual.body.split("\n").filter((line) => line.startsWith("data: "));
  assert.equal(data.length, 1);
  assert.match(
    data[0],
    /"content":"\\u003cp\\u003eHello from the streaming peer! 👋\\u003c\/p\\u003e"/,
  );
  assert.ok(!data[0].includes("queued_at"), "only the payload is forwarded");
}

const KEPT_METRICS =
  /^(connected_clients|connected_channels|redis_subscriptions|redis_messages_received_total|messages_sent_total|pg_pool_\w+)\b/;

/** Case 02: values differ; every series and type of the metrics we keep must be there. */
function assertKeptMetrics(actual: string, mastodon: string): void {
  const kept = (text: string) => {
    const lines = text.split("\n");
    const series = lines.filter((l) => l && !l.startsWith("#")).map((l) =>
      l.slice(0, l.lastIndexOf(" "))
    );
    const types = lines.filter((l) => l.startsWith("# TYPE ")).map((l) => l.slice(7));
    return [...series, ...types.map((t) => `TYPE ${t}`)].filter((s) =>
      KEPT_METRICS.test(s.replace(/^TYPE /, ""))
    );
  };
  const expected = kept(mastodon);
  assert.ok(expected.length > 30, "the recording lists the kept metrics");
  const have = new Set(kept(actual));
  assert.deepEqual(expected.filter((s) => !have.has(s)), [], "metric series missing from Sluice");
}
