/**
 * The request log against a real Sluice, HTTP and WebSocket clients: one
 * record per request, per closed SSE stream and per closed WebSocket, the
 * client address from X-Forwarded-For behind a trusted proxy, and no token
 * anywhere in the log at trace level.
 */
import assert from "node:assert/strict";
import { rawExchange, SseReader, WsClient } from "../_support/clients.ts";
import { LogLines, type LogRecord } from "../_support/log_lines.ts";
import { startServices, startSluice } from "../_support/stack.ts";

const TOKEN = "token-alice";
const handshake = (path: string, extra: string) =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

type Req = { id: string; method: string; url: string; remoteAddress?: string };
const req = (record: LogRecord) => record.req as Req;
const status = (record: LogRecord) => (record.res as { statusCode: number }).statusCode;
const isRecord = (r: LogRecord) => r.msg === "request completed" || r.msg === "request errored";

Deno.test("Sluice writes one request record per request and closed stream, never a token", async (t) => {
  const services = await startServices();
  const logs = new LogLines();
  const app = await startSluice(services, {}, {}, logs.logger("trace"));
  const recordOf = (id: string) =>
    logs.find((r) => isRecord(r) && req(r).id === id, `the record of request ${id}`);
  const recordAt = (url: string) =>
    logs.find((r) => isRecord(r) && req(r).url === url, `the record of ${url}`);
  const openSse = async (query: string, headers: Record<string, string> = {}) => {
    const reader = await SseReader.open(`${app.http}/api/v1/streaming/public${query}`, headers);
    assert.equal(reader.response.status, 200);
    await reader.contains(":)\n");
    return { reader, id: reader.response.headers.get("x-request-id")! };
  };

  await t.step(
    "an ordinary request: its record in pino-http's shape, the forwarded client",
    async () => {
      const response = await fetch(`${app.http}/api/v1/streaming/health`, {
        headers: { "X-Forwarded-For": "6.6.6.6, 203.0.113.7" },
      });
      assert.equal(await response.text(), "OK");
      const record = await recordOf(response.headers.get("x-request-id")!);
      const { time, responseTime, ...rest } = record;
      assert.ok(typeof time === "number" && Number.isInteger(responseTime));
      assert.deepEqual(rest, {
        level: "info",
        pid: Deno.pid,
        hostname: Deno.hostname(),
        name: "sluice",
        req: {
          id: response.headers.get("x-request-id"),
          method: "GET",
          url: "/api/v1/streaming/health",
          remoteAddress: "203.0.113.7",
        },
        res: { statusCode: 200 },
        msg: "request completed",
      });
    },
  );

  await t.step("an SSE stream: recorded when it closes, the token redacted", async () => {
    const cases: Array<[string, Record<string, string>, string]> = [
      ["?n=1", { Authorization: `Bearer ${TOKEN}` }, "?n=1"],
      [`?access_token=${TOKEN}`, {}, "?access_token=[Redacted]"],
      [`?access%5Ftoken=${TOKEN}`, {}, "?access%5Ftoken=[Redacted]"],
      [`?%61ccess%5ftoken=${TOKEN}&local=1`, {}, "?%61ccess%5ftoken=[Redacted]&local=1"],
    ];
    for (const [query, headers, logged] of cases) {
      const { reader, id } = await openSse(query, headers);
      assert.equal(logs.filter((r) => isRecord(r) && req(r).id === id).length, 0, "still open");
      await reader.close();
      const record = await recordOf(id);
      assert.equal(record.level, "info");
      assert.equal(status(record), 200);
      assert.equal(req(record).url, `/api/v1/streaming/public${logged}`);
      assert.equal(req(record).remoteAddress, "127.0.0.1");
    }
  });

  await t.step("refused requests are info records", async () => {
    const refused: Array<[string, Record<string, string>]> = [
      [`?access_token=${TOKEN}&access%5Ftoken=${TOKEN}`, {}],
      ["", {}],
      ["", { Authorization: "Bearer nope" }],
    ];
    for (const [query, headers] of refused) {
      const response = await fetch(`${app.http}/api/v1/streaming/public${query}`, { headers });
      assert.equal(response.status, 401);
      await response.body?.cancel();
      const record = await recordOf(response.headers.get("x-request-id")!);
      assert.deepEqual([record.level, status(record)], ["info", 401]);
    }
  });

  await t.step("a WebSocket: recorded when it closes, with 101 and the close code", async () => {
    const byProtocol = await WsClient.open(`${app.ws}/api/v1/streaming?n=ws1`, TOKEN);
    const byQuery = await WsClient.open(`${app.ws}/api/v1/streaming?access%5Ftoken=${TOKEN}`);
    await app.settled();
    byProtocol.socket.close(4001, "bye");
    await byProtocol.closed();
    const first = await recordAt("/api/v1/streaming?n=ws1");
    assert.deepEqual([first.level, status(first), first.closeCode], ["info", 101, 4001]);
    await byQuery.close();
    const second = await recordAt("/api/v1/streaming?access%5Ftoken=[Redacted]");
    assert.deepEqual([status(second), second.closeCode], [101, 1005]);
  });

  await t.step("a WebSocket whose connection drops, the token in Authorization", async () => {
    const text = await rawExchange(
      app.port,
      handshake("/api/v1/streaming?n=raw", `Authorization: Bearer ${TOKEN}\r\n`),
      (got) => got.includes("\r\n\r\n"),
    );
    assert.match(text, /^HTTP\/1\.1 101 /);
    const id = /\r\nx-request-id: ([0-9a-f-]{36})\r\n/i.exec(text)![1];
    const record = await recordOf(id);
    assert.deepEqual([status(record), record.closeCode], [101, 1006]);
  });

  await t.step("shutdown closes the open streams and records each", async () => {
    const sse = await openSse("?n=last", { Authorization: `Bearer ${TOKEN}` });
    const ws = await WsClient.open(`${app.ws}/api/v1/streaming?n=last`, TOKEN);
    await app.close();
    await Promise.all([sse.reader.end(), ws.closed()]);
    assert.equal(status(await recordOf(sse.id)), 200);
    const record = await recordAt("/api/v1/streaming?n=last");
    assert.deepEqual([status(record), record.closeCode], [101, 1001]);
    await sse.reader.close();
  });

  await t.step("one record per request, no error, no token anywhere", () => {
    const records = logs.filter(isRecord);
    const ids = records.map((r) => req(r).id);
    assert.equal(new Set(ids).size, ids.length, "one record per request id");
    assert.equal(records.length, 13);
    assert.deepEqual(logs.filter((r) => r.level === "error" || r.level === "fatal"), []);
    assert.ok(logs.filter((r) => r.level === "trace" || r.level === "debug").length > 0);
    const text = [...logs.records.map((r) => JSON.stringify(r)), ...logs.other].join("\n");
    assert.ok(!text.includes(TOKEN), "a token reached the log");
  });

  await app.close();
  await services.close();
});
