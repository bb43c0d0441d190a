import assert from "node:assert/strict";
import { silentLogger } from "../../src/log.ts";
import { RedisClient } from "../../src/redis/client.ts";
import { SubscribedKeys } from "../../src/redis/subscribed_keys.ts";
import { RedisSubscriber } from "../../src/redis/subscriber.ts";
import { startRedisServer } from "../../scripts/redis_server.ts";
import { Waiters } from "../_support/clients.ts";
import { LogLines, type LogRecord } from "../_support/log_lines.ts";
import { localClient, startSentinels } from "../_support/sentinels.ts";
import { FakeSentinel } from "../_support/fake_sentinel.ts";
import type { RedisConfig } from "../../src/config.ts";

const tcp: RedisConfig = { mode: "tcp", host: "127.0.0.1", port: 6379, tls: false, db: 0 };

/** Failover takes a few seconds; a loaded machine may need more. */
const FAILOVER_MS = 60_000;

/**
 * Immediate first attempt, then an hour between attempts: with this schedule
 * a connection is back within a test's time only if something wakes it.
 */
const onlyFirstAttempt = (attempt: number) => attempt === 0 ? 0 : 3_600_000;

/** Messages an `onMessage` hook received, and a way to wait for the n-th. */
function inbox() {
  const received: string[] = [];
  const waiters = new Waiters();
  return {
    received,
    onMessage: (_channel: string, message: string) => {
      received.push(message);
      waiters.notify();
    },
    nth: (n: number) => waiters.until(() => received[n - 1], `message ${n}`, FAILOVER_MS),
  };
}

/** Matches the log records `msg` of one connection (`redis` field). */
const named = (msg: string, redis: string) => (r: LogRecord) => r.msg === msg && r.redis === redis;

Deno.test("After kill -9 of the master, subscriber and client follow +switch-master at once, resubscribe and rewrite subscribed: keys", async () => {
  await using setup = await startSentinels();
  const logs = new LogLines();
  const log = logs.logger();
  const options = { config: setup.config, log, retryDelay: onlyFirstAttempt };
  await using client = new RedisClient(options);
  await using keys = new SubscribedKeys({ client, log: silentLogger });
  const rewritten = Promise.withResolvers<void>();
  let ups = 0;
  const { onMessage, nth } = inbox();
  await using subscriber = new RedisSubscriber({
    ...options,
    onMessage,
    onStateChange: (up) => {
      if (up && ++ups === 2) rewritten.resolve(keys.rewriteAll());
    },
  });
  subscriber.subscribe("timeline:1");
  await Promise.all([subscriber.ready(), client.ready()]);
  await keys.add("timeline:1");
  assert.equal(await client.publish("timeline:1", "before"), 1);
  assert.equal(await nth(1), "before");
  // The replica has the key by replication: delete it there, so only a rewrite brings it back.
  assert.equal(await client.command(["WAIT", "1", "0"]), 1);
  await using replica = localClient(setup.replica.port);
  await replica.ready();
  await replica.command(["CONFIG", "SET", "replica-read-only", "no"]);
  assert.equal(await replica.command(["DEL", "subscribed:timeline:1"]), 1);

  await setup.master.crash();
  const back = named("Redis subscriber reconnected", "subscriber");
  await logs.find(back, "the subscriber back", { timeoutMs: FAILOVER_MS });
  await rewritten.promise;
  await subscriber.ready();

  const address = `127.0.0.1:${setup.replica.port}`;
  for (const role of ["subscriber", "client"]) {
    const line = await logs.find(named(`Redis ${role} reconnected`, role), role, {
      timeoutMs: FAILOVER_MS,
    });
    assert.equal(line.address, address, role);
    assert.equal(line.via, "switch-master", role);
    const failed = logs.filter(named("Cannot connect to Redis, retrying", role));
    assert.ok(failed.length >= 1, `${role}: the attempt made at once went to the dead master`);
    const switched = logs.filter(named("Redis master switched, reconnecting at once", role));
    assert.deepEqual(switched.map((r) => r.address), [address], role);
  }
  assert.equal(
    (await logs.find(named("Redis subscriber reconnected", "subscriber"), "")).channels,
    1,
  );
  assert.deepEqual(await replica.command(["ROLE"]).then((r) => (r as string[])[0]), "master");
  assert.equal(subscriber.reconnects, 1);
  assert.equal(client.reconnects, 1);
  assert.equal(subscriber.subscriptionCount, 1);
  assert.equal(await replica.command(["EXISTS", "subscribed:timeline:1"]), 1);
  const ttl = Number(await replica.command(["TTL", "subscribed:timeline:1"]));
  assert.ok(ttl > 1000, `TTL ${ttl}`);
  assert.equal(await replica.publish("timeline:1", "after"), 1);
  assert.equal(await nth(2), "after");
  assert.equal(await client.publish("timeline:1", "through the client"), 1);
  assert.equal(await nth(3), "through the client");
});

Deno.test("A live master connection moves when +switch-master names our master elsewhere, through any sentinel that answers", async () => {
  await using first = await startRedisServer();
  await using second = await startRedisServer();
  await using sentinel = new FakeSentinel(
    "mymaster",
    { host: "127.0.0.1", port: first.port },
    "s3cret",
  );
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  closed.close();
  const logs = new LogLines();
  const { onMessage, nth } = inbox();
  const sentinels = [closed.addr.port, sentinel.port].map((port) => ({ host: "127.0.0.1", port }));
  await using subscriber = new RedisSubscriber({
    config: {
      ...tcp,
      mode: "sentinel",
      sentinels,
      sentinelMaster: "mymaster",
      sentinelPassword: "s3cret",
    },
    log: logs.logger(),
    onMessage,
    retryDelay: onlyFirstAttempt,
  });
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  const watching = await logs.find(named("Redis sentinel connected", "sentinel"), "the watch");
  assert.equal(watching.address, `127.0.0.1:${sentinel.port}`);
  assert.equal(watching.for, "subscriber");
  // The watch's connection is cut: it comes back and still follows.
  await sentinel.subscribed(1);
  sentinel.cutSubscribers();
  await logs.find(named("Redis sentinel reconnected", "sentinel"), "the watch again");
  await sentinel.subscribed(2);
  const connected = await logs.find(named("Redis subscriber connected", "subscriber"), "");
  assert.equal(connected.address, `127.0.0.1:${first.port}`);

  const to = `127.0.0.1 ${second.port}`;
  assert.equal(await sentinel.announce(`othermaster 127.0.0.1 ${first.port} ${to}`), 1);
  assert.equal(await sentinel.announce(`mymaster 127.0.0.1 ${first.port} ${to}`), 1);
  const line = await logs.find(named("Redis subscriber reconnected", "subscriber"), "the move");
  assert.equal(line.address, `127.0.0.1:${second.port}`);
  assert.equal(line.via, "switch-master");
  assert.equal(
    logs.filter(named("Redis master switched, reconnecting at once", "subscriber")).length,
    1,
  );
  assert.equal(logs.filter(named("Redis connection lost, reconnecting", "subscriber")).length, 0);
  assert.equal(sentinel.commands.filter((c) => c === "SENTINEL").length, 1, "not asked again");
  await subscriber.ready();
  await using onSecond = localClient(second.port);
  await onSecond.ready();
  assert.equal(await onSecond.publish("timeline:1", "moved"), 1);
  assert.equal(await nth(1), "moved");
  await using onFirst = localClient(first.port);
  await onFirst.ready();
  assert.equal(await onFirst.publish("timeline:1", "left behind"), 0);
});
