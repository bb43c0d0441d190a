/**
 * WebSocket against a real redis-server, PostgreSQL and WebSocket client (docs/protocol.md §6).
 */
import assert from "node:assert/strict";
import { rawExchange, WsClient } from "../_support/clients.ts";
import { startServices, startSluice } from "../_support/stack.ts";

const handshake = (path: string, extra = "") =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;
const headersDone = (got: string) => got.includes("\r\n\r\n");

Deno.test("WebSocket sessions behave like Mastodon's", async (t) => {
  const services = await startServices();
  const app = await startSluice(services);
  const publish = (channel: string, message: string) => services.client.publish(channel, message);
  const connect = async (query: string, protocols?: string | string[]) => {
    const ws = await WsClient.open(`${app.ws}/api/v1/streaming${query}`, protocols);
    await app.settled();
    return ws;
  };

  await t.step("an upgrade without a token gets a raw 401 with X-Error-Message", async () => {
    const text = await rawExchange(app.port, handshake("/api/v1/streaming"), headersDone);
    assert.match(text, /^HTTP\/1\.1 401 Unauthorized\r\n/);
    assert.match(text, /\r\nx-error-message: Missing access token\r\n/i);
    assert.match(text, /\r\ncontent-type: text\/plain\r\n/i);
    assert.match(text, /\r\nx-request-id: [0-9a-f-]{36}\r\n/i);
  });

  await t.step("an upgrade with a bad token gets Invalid access token", async () => {
    const text = await rawExchange(
      app.port,
      handshake("/api/v1/streaming?access_token=nope"),
      headersDone,
    );
    assert.match(text, /\r\nx-error-message: Invalid access token\r\n/i);
  });

  await t.step("a token sent as subprotocol is accepted and echoed", async () => {
    const text = await rawExchange(
      app.port,
      handshake("/api/v1/streaming", "Sec-WebSocket-Protocol: token-alice\r\n"),
      headersDone,
    );
    assert.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(text, /\r\nsec-websocket-protocol: token-alice\r\n/i);
    await using ws = await connect("", "token-alice");
    assert.equal(ws.socket.protocol, "token-alice");
  });

  await t.step("?stream= subscribes on connect, on any path", async () => {
    const ws = await WsClient.open(
      `${app.ws}/not/a/streaming/path?stream=public&access_token=token-alice`,
    );
    await app.listening("timeline:public");
    await publish("timeline:public", '{"event":"delete","payload":"1"}');
    assert.equal(await ws.next(), '{"stream":["public"],"event":"delete","payload":"1"}');
    await ws.close();
  });

  await t.step(
    "subscribe and unsubscribe messages, labels echo the client's spelling",
    async () => {
      await using ws = await connect("?access_token=token-alice");
      ws.send(JSON.stringify({ type: "subscribe", stream: "hashtag", tag: "Mastodon" }));
      ws.send(JSON.stringify({ type: "subscribe", stream: "list", list: "1" }));
      ws.send(JSON.stringify({ type: "subscribe", stream: "user" }));
      await app.listening(
        "timeline:hashtag:mastodon",
        "timeline:list:1",
        "timeline:1:notifications",
      );
      await publish("timeline:hashtag:mastodon", '{"event":"delete","payload":"2"}');
      await publish("timeline:list:1", '{"event":"update","payload":{"id":"3"}}');
      await publish("timeline:1:notifications", '{"event":"notification","payload":{"id":"4"}}');
      assert.equal(
        await ws.next(),
        '{"stream":["hashtag","Mastodon"],"event":"delete","payload":"2"}',
      );
      assert.equal(
        await ws.next(),
        '{"stream":["list","1"],"event":"update","payload":"{\\"id\\":\\"3\\"}"}',
      );
      assert.equal(
        await ws.next(),
        '{"stream":["user"],"event":"notification","payload":"{\\"id\\":\\"4\\"}"}',
      );
      ws.send(JSON.stringify({ type: "unsubscribe", stream: "hashtag", tag: "mastodon" }));
      ws.send(JSON.stringify({ type: "unsubscribe", stream: "hashtag" }));
      assert.equal(await ws.next(), '{"error":"Error unsubscribing from channel"}');
      await publish("timeline:hashtag:mastodon", '{"event":"delete","payload":"5"}');
      await publish("timeline:1", '{"event":"delete","payload":"6"}');
      assert.equal(await ws.next(), '{"stream":["user"],"event":"delete","payload":"6"}');
    },
  );

  await t.step("subscription errors are frames and the socket stays open", async () => {
    await using ws = await connect("?access_token=token-bob");
    ws.send(JSON.stringify({ type: "subscribe", stream: "bogus" }));
    assert.equal(await ws.next(), '{"error":"Unknown stream type","status":400}');
    ws.send(JSON.stringify({ type: "subscribe", stream: "list", list: "1" }));
    assert.equal(await ws.next(), '{"error":"Not authorized to stream this list","status":401}');
    ws.send(JSON.stringify({ type: "subscribe", stream: "user:notification" }));
    assert.equal(
      await ws.next(),
      '{"error":"Access token does not have the required scopes","status":401}',
    );
    ws.send("not json");
    ws.send(JSON.stringify({ type: "subscribe", stream: "hashtag" }));
    assert.equal(await ws.next(), '{"error":"Missing tag name parameter","status":400}');
  });

  await t.step("a binary frame closes with 1003 and Mastodon's reason", async () => {
    const ws = await connect("?access_token=token-alice");
    ws.send(new Uint8Array([1, 2, 3]).buffer);
    const closed = await ws.closed();
    assert.equal(closed.code, 1003);
    assert.equal(closed.reason, "The mastodon streaming server does not support binary messages");
  });

  await t.step("kill closes without a status code", async () => {
    const ws = await connect("?access_token=token-alice&stream=user");
    await app.listening("timeline:1");
    await publish("timeline:access_token:1", '{"event":"kill"}');
    assert.equal((await ws.closed()).code, 1005);
  });

  await t.step("events without payload are not delivered; order is kept", async () => {
    await using ws = await connect("?access_token=token-alice&stream=public");
    await app.listening("timeline:public");
    await publish("timeline:public", '{"event":"update"}');
    await publish("timeline:public", "not json");
    for (let i = 0; i < 20; i++) {
      await publish("timeline:public", `{"event":"delete","payload":"${i}"}`);
    }
    for (let i = 0; i < 20; i++) assert.equal(JSON.parse(await ws.next()).payload, String(i));
  });

  await app.close();
  await services.close();
});
