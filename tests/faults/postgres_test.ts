/**
 * Fault: PostgreSQL is stopped while a real main.ts (two workers) serves
 * user streams under 200 events a second and filtered public streams, then
 * started again. Streams that need no database keep flowing; filtered public
 * events are dropped and counted; new connections get Mastodon's 500 answer
 * at once; readiness is 503 then 200; after the restart everything works
 * again; the process never exits.
 */
import assert from "node:assert/strict";
import { rawExchange } from "../_support/clients.ts";
import {
  assertAllReceived,
  hasExited,
  type Instance,
  LoadPublisher,
  metric,
  readiness,
  scrape,
  spawnInstance,
  StreamClients,
} from "../_support/faults.ts";
import { stopping } from "../_support/main_process.ts";
import { type Services, startServices } from "../_support/stack.ts";

const UNEXPECTED = "An unexpected error occurred";
const DROPPED = 'reason="database_error"';

/** A public status by a remote author nobody blocks: bob sees it when filtering works. */
function status(id: string): string {
  const account = { id: "6", username: "frank", acct: "frank@social.example" };
  const payload = { id, language: "en", content: "<p>hi</p>", account, mentions: [] };
  return JSON.stringify({ event: "update", payload });
}

/** The status ids each of `clients` received, in arrival order. */
function statusIds(clients: StreamClients): string[][] {
  const fromSse = clients.sse.map((reader) =>
    [...reader.text.matchAll(/^event: update\ndata: \{"id":"(\d+)"/gm)].map((m) => m[1])
  );
  const fromWs = clients.ws.map((client) =>
    client.frames.map((frame) => JSON.parse(frame)).filter((f) => f.event === "update")
      .map((f) => JSON.parse(f.payload).id)
  );
  return [...fromSse, ...fromWs];
}

/** Publishes status `id` then a delete marker, waits for the marker everywhere; who got `id`? */
async function publishStatus(services: Services, viewers: StreamClients, id: string) {
  await services.client.publish("timeline:public", status(id));
  await services.client.publish("timeline:public", `{"event":"delete","payload":"after-${id}"}`);
  await viewers.received(`after-${id}`);
  return statusIds(viewers).map((ids) => ids.includes(id));
}

/** A new SSE stream and a new WebSocket upgrade, each answered within 15 s: their statuses. */
async function newConnections(instance: Instance): Promise<[number, string]> {
  const response = await fetch(`${instance.http}/api/v1/streaming/user`, {
    headers: { Authorization: "Bearer token-alice" },
    signal: AbortSignal.timeout(15_000),
  });
  const body = response.status === 200 ? "(a stream)" : await response.text();
  if (response.status === 200) await response.body?.cancel();
  const head = await rawExchange(
    instance.port,
    "GET /api/v1/streaming?stream=user HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer token-alice\r\n\r\n",
    (received) => received.includes("\r\n\r\n"),
  );
  return [response.status, `${body}\n${head}`];
}

Deno.test("PostgreSQL stopped under load: unfiltered streams go on, filtered events dropped and counted, new clients get 500, then all works again", async (t) => {
  const services = await startServices();
  const instance = spawnInstance(services);
  const { main } = instance;
  let load: LoadPublisher | undefined;
  let users: StreamClients | undefined;
  let viewers: StreamClients | undefined;
  try {
    await stopping(main, async () => {
      await main.listening();
      users = await StreamClients.open(instance, {
        token: "token-alice",
        stream: "user",
        perKind: 8,
      });
      viewers = await StreamClients.open(instance, {
        token: "token-bob",
        stream: "public",
        perKind: 4,
      });
      load = new LoadPublisher(services.redis.url, "timeline:1", 200);
      await load.until((p) => p.receivers === 2, "both workers subscribed");
      assert.ok((await publishStatus(services, viewers, "115000000000000101")).every(Boolean));

      await services.pg.halt();
      const before = load.acknowledged.length;

      await t.step("readiness is 503, naming PostgreSQL", async () => {
        const down = await readiness(instance);
        assert.equal(down.status, 503, down.body);
        assert.match(JSON.parse(down.body).error, /PostgreSQL/);
      });

      await t.step("new SSE and WebSocket connections get Mastodon's 500 answer", async () => {
        for (let i = 0; i < 4; i++) {
          const [status, text] = await newConnections(instance);
          assert.equal(status, 500, text);
          assert.match(text, new RegExp(`^\\{"error":"${UNEXPECTED}"\\}\n`));
          assert.match(text, /\nHTTP\/1\.1 500 /);
          assert.match(text, new RegExp(`^x-error-message: ${UNEXPECTED}\r$`, "mi"));
        }
      });

      await t.step("unfiltered user streams receive every event under load", async () => {
        const last = await load!.until((p) => p.seq >= before + 200, "a second of load", before);
        const wanted = load!.acknowledged.slice(before).filter((p) => p.seq <= last.seq);
        assert.deepEqual(wanted.filter((p) => p.receivers !== 2), []);
        await users!.received(LoadPublisher.payload(last.seq));
        assertAllReceived(users!, wanted.map((p) => p.seq), "while PostgreSQL was down");
      });

      await t.step("filtered public statuses are dropped and counted", async () => {
        const got = await publishStatus(services, viewers!, "115000000000000102");
        assert.deepEqual(got, got.map(() => false));
        assert.ok(metric(await scrape(instance), "sluice_filter_dropped_total", DROPPED) >= 1);
      });

      await services.pg.restart();

      await t.step("after the restart: ready, new clients accepted, filtering works", async () => {
        assert.deepEqual(await readiness(instance), { status: 200, body: "OK" });
        for (let i = 0; i < 4; i++) {
          const [status, text] = await newConnections(instance);
          assert.equal(status, 200);
          assert.match(text, /\nHTTP\/1\.1 101 /);
        }
        assert.ok((await publishStatus(services, viewers!, "115000000000000103")).every(Boolean));
      });

      await t.step("no stream was lost and the process is still running", async () => {
        assert.equal(users!.lost() + viewers!.lost(), 0);
        assert.equal(await hasExited(main), false);
      });
      await Promise.all([users.close(), viewers.close(), load.close()]);
    });
    const { stderr } = await main.exited();
    assert.equal(stderr, "", "nothing on stderr (no uncaught error)");
    assert.deepEqual(main.logs.other, [], "every stdout line is a JSON record");
    assert.deepEqual(main.logs.filter((r) => r.level === "fatal"), []);
  } finally {
    await load?.close();
    await users?.close();
    await viewers?.close();
    await services.close();
  }
});
