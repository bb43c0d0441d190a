/**
 * Fault: Redis is killed (SIGKILL, no goodbye) and started again, empty, on
 * the same port while a publisher keeps 200 events a second going and SSE and
 * WebSocket clients listen on both workers of a real main.ts. Sluice must stay
 * up, say it is not ready while Redis is gone, keep every client connected,
 * resubscribe and rewrite its `subscribed:` keys, and deliver every event
 * published once it is back.
 */
import assert from "node:assert/strict";
import {
  assertAllReceived,
  hasExited,
  LoadPublisher,
  metric,
  readiness,
  scrape,
  spawnInstance,
  StreamClients,
} from "../_support/faults.ts";
import { stopping } from "../_support/main_process.ts";
import { type Services, startServices } from "../_support/stack.ts";
import { parseRedisUrl } from "../../src/config.ts";
import { silentLogger } from "../../src/log.ts";
import { RedisSubscriber } from "../../src/redis/subscriber.ts";

const CHANNEL = "timeline:1"; // alice's user stream
const KEY = `subscribed:${CHANNEL}`;

/**
 * Resolves once `key` exists in the (restarted, empty) Redis: at once if it is
 * there already, else when a keyspace notification says it was written.
 */
async function written(services: Services, key: string): Promise<void> {
  const { client } = services;
  await client.ready();
  await client.command(["CONFIG", "SET", "notify-keyspace-events", "K$"]);
  const seen = Promise.withResolvers<void>();
  await using watcher = new RedisSubscriber({
    config: parseRedisUrl(services.redis.url),
    log: silentLogger,
    onMessage: () => seen.resolve(),
  });
  watcher.subscribe(`__keyspace@0__:${key}`);
  await watcher.ready();
  if (await client.command(["EXISTS", key]) === 1) return;
  const timer = setTimeout(() => seen.reject(new Error(`${key} never written`)), 15_000);
  try {
    await seen.promise;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("Redis killed and restarted under load: clients stay connected, readiness 503 then 200, every later event delivered, keys rewritten", async (t) => {
  const services = await startServices();
  const instance = spawnInstance(services);
  const { main } = instance;
  let load: LoadPublisher | undefined;
  let clients: StreamClients | undefined;
  try {
    await stopping(main, async () => {
      await main.listening();
      clients = await StreamClients.open(instance, {
        token: "token-alice",
        stream: "user",
        perKind: 12,
      });
      const opened = await scrape(instance);
      for (const worker of ["1", "2"]) {
        const on = metric(opened, "sluice_worker_connected_clients", `worker="${worker}"`);
        assert.ok(on > 0, `worker ${worker} has clients`);
      }
      load = new LoadPublisher(services.redis.url, CHANNEL, 200);
      const first = await load.until((p) => p.receivers === 2, "both workers subscribed");
      await clients.received(LoadPublisher.payload(first.seq));

      const from = main.logs.records.length;
      const before = load.acknowledged.length;
      await t.step("Redis is killed: the instance says it is not ready", async () => {
        await services.redis.halt("SIGKILL");
        for (const worker of [1, 2]) {
          await main.logs.find(
            (r) => r.worker === worker && r.redis === "subscriber" && r.level === "warn",
            `worker ${worker}'s subscriber noticed`,
            { from },
          );
        }
        const down = await readiness(instance);
        assert.equal(down.status, 503, down.body);
        assert.match(JSON.parse(down.body).error, /Redis/);
      });

      await t.step(
        "Redis is back: both workers resubscribe and the instance is ready",
        async () => {
          await services.redis.restart();
          for (const worker of [1, 2]) {
            await main.logs.find(
              (r) => r.worker === worker && r.msg === "Redis subscriber reconnected",
              `worker ${worker}'s subscriber reconnected`,
              { from, timeoutMs: 20_000 },
            );
          }
          assert.deepEqual(await readiness(instance), { status: 200, body: "OK" });
          await written(services, KEY);
        },
      );

      await t.step("events published after the restart reach every client", async () => {
        const back = await load!.until((p) => p.receivers === 2, "both resubscribed", before);
        await load!.until((p) => p.seq >= back.seq + 200, "a second more of load", before);
        await load!.close();
        const wanted = load!.acknowledged.filter((p) => p.seq >= back.seq);
        assert.deepEqual(wanted.filter((p) => p.receivers !== 2), [], "both workers listen");
        const seqs = wanted.map((p) => p.seq);
        await clients!.received(LoadPublisher.payload(seqs.at(-1)!));
        assertAllReceived(clients!, seqs, "after the restart");
        assert.ok(load!.failed > 0, "the publisher saw the outage too");
      });

      await t.step("no client was lost; reconnects are counted", async () => {
        assert.equal(clients!.lost(), 0);
        const text = await scrape(instance);
        assert.equal(metric(text, "connected_clients"), clients!.count);
        assert.ok(metric(text, "sluice_redis_reconnects_total") >= 2, "one per worker at least");
        assert.equal(metric(text, "sluice_redis_connected"), 2);
        assert.equal(await hasExited(main), false);
      });
      await clients.close();
    });
    const { stderr } = await main.exited();
    assert.equal(stderr, "", "nothing on stderr (no uncaught error)");
    assert.deepEqual(main.logs.other, [], "every stdout line is a JSON record");
    const failures = main.logs.filter((r) => r.level === "error" || r.level === "fatal");
    assert.deepEqual(failures, [], "no error record");
  } finally {
    await load?.close();
    await clients?.close();
    await services.close();
  }
});
