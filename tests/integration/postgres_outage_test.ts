/**
 * PostgreSQL stopped and restarted under connected clients: streams that
 * need no database keep flowing, new connections fail like Mastodon's (500)
 * until it is back, and per-viewer filtering of public events resumes.
 */
import assert from "node:assert/strict";
import { rawExchange, SseReader, WsClient } from "../_support/clients.ts";
import { type Services, startServices, startSluice, type TestSluice } from "../_support/stack.ts";

const UNEXPECTED = "An unexpected error occurred";

/** A public status by a remote author nobody blocks; bob sees it with `"filtered":[]`. */
function status(id: string): string {
  const account = { id: "6", username: "frank", acct: "frank@social.example" };
  const payload = { id, language: "en", content: "<p>hi</p>", account, mentions: [] };
  return JSON.stringify({ event: "update", payload });
}

/** bob on the public stream over both transports, read up to delete markers. */
class PublicViewer {
  #from = 0;
  private constructor(readonly sse: SseReader, readonly ws: WsClient) {}

  static async open(app: TestSluice): Promise<PublicViewer> {
    const query = "access_token=token-bob";
    return new PublicViewer(
      await SseReader.open(`${app.http}/api/v1/streaming/public?${query}`),
      await WsClient.open(`${app.ws}/api/v1/streaming?${query}&stream=public`),
    );
  }

  /** Publishes a delete marker after what was published and returns the ids that arrived before it. */
  async idsUntilMarker(services: Services, mark: string): Promise<string[][]> {
    await services.client.publish("timeline:public", `{"event":"delete","payload":"${mark}"}`);
    const at = await this.sse.contains(`data: ${mark}\n\n`, this.#from);
    const sseIds = [...this.sse.text.slice(this.#from, at).matchAll(/^data: \{"id":"(\d+)"/gm)]
      .map((m) => m[1]);
    this.#from = at;
    const wsIds: string[] = [];
    for (let frame = JSON.parse(await this.ws.next()); frame.payload !== mark;) {
      if (frame.event === "update") wsIds.push(JSON.parse(frame.payload).id);
      frame = JSON.parse(await this.ws.next());
    }
    return [sseIds, wsIds];
  }

  async close(): Promise<void> {
    await this.sse.close();
    await this.ws.close();
  }
}

function upgradeRequest(token: string): string {
  return "GET /api/v1/streaming?stream=user HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer ${token}\r\n\r\n`;
}

Deno.test("While PostgreSQL is down streams keep flowing and new clients get 500", async (t) => {
  const services = await startServices();
  const app = await startSluice(services);
  const sse = await SseReader.open(`${app.http}/api/v1/streaming/user?access_token=token-alice`);
  const ws = await WsClient.open(`${app.ws}/api/v1/streaming?access_token=token-alice&stream=user`);
  const bob = await PublicViewer.open(app);
  await app.listeners("timeline:1", 2);
  await app.listeners("timeline:public", 2);
  assert.deepEqual(await bob.idsUntilMarker(services, "before"), [[], []]);
  await services.pg.halt();
  try {
    await t.step("user streams keep receiving over SSE and WebSocket", async () => {
      await services.client.publish("timeline:1", '{"event":"delete","payload":"during"}');
      await sse.contains("data: during\n\n");
      assert.deepEqual(JSON.parse(await ws.next()), {
        stream: ["user"],
        event: "delete",
        payload: "during",
      });
    });

    await t.step("new SSE and WebSocket clients are refused with 500", async () => {
      const response = await fetch(`${app.http}/api/v1/streaming/user?access_token=token-alice`);
      assert.equal(response.status, 500);
      assert.deepEqual(await response.json(), { error: UNEXPECTED });
      const head = await rawExchange(app.port, upgradeRequest("token-alice"), (received) => {
        return received.includes("\r\n\r\n");
      });
      assert.match(head, /^HTTP\/1\.1 500 /);
      assert.match(head, new RegExp(`^x-error-message: ${UNEXPECTED}\r$`, "mi"));
    });

    await t.step("filtered public statuses are dropped, later events still flow", async () => {
      await services.client.publish("timeline:public", status("115000000000000101"));
      assert.deepEqual(await bob.idsUntilMarker(services, "down"), [[], []]);
    });

    await services.pg.restart();

    await t.step("after the restart new clients are accepted", async () => {
      await using again = await SseReader.open(
        `${app.http}/api/v1/streaming/user?access_token=token-alice`,
      );
      assert.equal(again.response.status, 200);
      await again.contains(":)\n");
      await using ws2 = await WsClient.open(
        `${app.ws}/api/v1/streaming?access_token=token-alice&stream=user`,
      );
      assert.equal(ws2.socket.readyState, WebSocket.OPEN);
    });

    await t.step("after the restart filtered public statuses arrive again", async () => {
      await services.client.publish("timeline:public", status("115000000000000102"));
      const id = "115000000000000102";
      assert.deepEqual(await bob.idsUntilMarker(services, "back"), [[id], [id]]);
    });
  } finally {
    await sse.close();
    await ws.close();
    await bob.close();
    await app.close();
    await services.close();
  }
});
