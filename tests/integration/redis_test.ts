import assert from "node:assert/strict";
import type { RedisConfig } from "../../src/config.ts";
import { createLogger, type Logger, silentLogger } from "../../src/log.ts";
import {
  RedisClient,
  RedisConnectionError,
  type RedisMessage,
  RedisReplyError,
  RedisSubscriber,
  SubscribedKeys,
} from "../../src/redis.ts";
import { startRedisServer } from "../../scripts/redis_server.ts";

function tcp(port: number, extra: Partial<RedisConfig> = {}): RedisConfig {
  return { mode: "tcp", host: "127.0.0.1", port, tls: false, db: 0, ...extra };
}

/** A port nothing listens on. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  return listener.addr.port;
}

/** Rejects with a clear message instead of hanging the test run when `promise` never settles. */
async function within<T>(promise: Promise<T>, what: string, ms = 10_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The next `count` messages of an iterator. */
async function take(
  messages: AsyncIterator<RedisMessage>,
  count: number,
): Promise<RedisMessage[]> {
  const taken: RedisMessage[] = [];
  while (taken.length < count) {
    const next = await within(messages.next(), `message ${taken.length + 1} of ${count}`);
    if (next.done) break;
    taken.push(next.value);
  }
  return taken;
}

interface Recorded {
  level: string;
  msg: string;
  [field: string]: unknown;
}

/** A logger that records every line and lets a test wait for one that matches. */
function recordingLogger(): {
  log: Logger;
  lines: Recorded[];
  next(test: (r: Recorded) => boolean): Promise<Recorded>;
} {
  const lines: Recorded[] = [];
  const waiters: { test: (r: Recorded) => boolean; resolve: (r: Recorded) => void }[] = [];
  const sink = (line: string) => {
    const record = JSON.parse(line) as Recorded;
    lines.push(record);
    for (const waiter of waiters.splice(0)) {
      if (waiter.test(record)) waiter.resolve(record);
      else waiters.push(waiter);
    }
  };
  const next = (test: (r: Recorded) => boolean) => {
    const { promise, resolve } = Promise.withResolvers<Recorded>();
    waiters.push({ test, resolve });
    return within(promise, "a log line");
  };
  return { log: createLogger({ level: "debug", sink }), lines, next };
}

Deno.test("RedisSubscriber yields the messages of its channels in publish order", async () => {
  await using server = await startRedisServer();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  await using subscriber = new RedisSubscriber({ config: tcp(server.port), log: silentLogger });
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  await client.ready();
  const large = JSON.stringify({ event: "update", payload: "x".repeat(100_000) });
  const sent = [...Array.from({ length: 200 }, (_, i) => `m${i}`), large, "last"];
  await client.publish("timeline:2", "not subscribed");
  await Promise.all(sent.map((message) => client.publish("timeline:1", message)));

  const received = await take(subscriber[Symbol.asyncIterator](), sent.length);
  assert.deepEqual(received, sent.map((message) => ({ channel: "timeline:1", message })));
  assert.equal(subscriber.subscriptionCount, 1);
});

Deno.test("RedisSubscriber sends UNSUBSCRIBE when a channel is no longer wanted", async () => {
  await using server = await startRedisServer();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  await using subscriber = new RedisSubscriber({ config: tcp(server.port), log: silentLogger });
  subscriber.subscribe("timeline:public");
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  assert.equal(subscriber.subscriptionCount, 2);

  subscriber.unsubscribe("timeline:public");
  await subscriber.ready();
  await client.ready();
  assert.equal(subscriber.subscriptionCount, 1);
  assert.equal(await client.publish("timeline:public", "{}"), 0);
  assert.equal(await client.publish("timeline:1", "{}"), 1);
});

Deno.test("RedisSubscriber prefixes channels with the namespace and strips it from messages", async () => {
  await using server = await startRedisServer();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port),
    namespace: "ns",
    log: silentLogger,
  });
  subscriber.subscribe("timeline:public");
  await subscriber.ready();
  await client.ready();
  assert.equal(await client.publish("timeline:public", "bare"), 0);
  assert.equal(await client.publish("ns:timeline:public", "prefixed"), 1);

  const [message] = await take(subscriber[Symbol.asyncIterator](), 1);
  assert.deepEqual(message, { channel: "timeline:public", message: "prefixed" });
});

Deno.test("SubscribedKeys sets subscribed:<channel> with an 1080 s TTL, under the namespace if any", async () => {
  await using server = await startRedisServer();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  await using plain = new SubscribedKeys({ client, log: silentLogger });
  await using namespaced = new SubscribedKeys({ client, namespace: "ns", log: silentLogger });
  await client.ready();
  await plain.add("timeline:1");
  await namespaced.add("timeline:1:notifications");

  const ttl = Number(await client.command(["TTL", "subscribed:timeline:1"]));
  assert.ok(ttl > 1070 && ttl <= 1080, `TTL ${ttl}`);
  assert.equal(await client.command(["GET", "subscribed:timeline:1"]), "1");
  assert.equal(await client.command(["GET", "ns:subscribed:timeline:1:notifications"]), "1");
  assert.equal(await client.command(["EXISTS", "subscribed:timeline:1:notifications"]), 0);
  assert.equal(plain.failures + namespaced.failures, 0);
});

Deno.test("SubscribedKeys refreshes live keys on its interval and lets removed ones expire", async () => {
  await using server = await startRedisServer();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  await using events = new RedisSubscriber({ config: tcp(server.port), log: silentLogger });
  await using keys = new SubscribedKeys({ client, log: silentLogger, intervalMs: 50 });
  await client.ready();
  await client.command(["CONFIG", "SET", "notify-keyspace-events", "Kg$"]);
  await keys.add("timeline:gone");
  await keys.add("timeline:live");
  keys.remove("timeline:gone");
  events.subscribe("__keyspace@0__:subscribed:timeline:live");
  await events.ready();
  await client.command(["DEL", "subscribed:timeline:gone", "subscribed:timeline:live"]);

  const iterator = events[Symbol.asyncIterator]();
  const [deleted, rewritten] = await take(iterator, 2);
  assert.equal(deleted.message, "del");
  assert.equal(rewritten.message, "set");
  assert.equal(await client.command(["EXISTS", "subscribed:timeline:live"]), 1);
  assert.equal(await client.command(["EXISTS", "subscribed:timeline:gone"]), 0);
  assert.deepEqual(keys.channels, ["timeline:live"]);
});

Deno.test("After a Redis restart the subscriber keeps yielding and subscribed: keys are rewritten", async () => {
  await using server = await startRedisServer();
  const { log, next } = recordingLogger();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  await using keys = new SubscribedKeys({ client, log: silentLogger });
  const reconnected = Promise.withResolvers<{ rewrite: Promise<void> }>();
  let ups = 0;
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port),
    log,
    onStateChange: (up) => {
      if (up && ++ups === 2) reconnected.resolve({ rewrite: keys.rewriteAll() });
    },
  });
  const messages = subscriber[Symbol.asyncIterator]();
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  await client.ready();
  await keys.add("timeline:1");
  await client.publish("timeline:1", "before");
  assert.deepEqual(await take(messages, 1), [{ channel: "timeline:1", message: "before" }]);

  const reconnectLine = next((r) => r.msg === "Redis subscriber reconnected");
  await server.restart();
  const { rewrite } = await within(reconnected.promise, "the reconnect");
  await within(rewrite, "the rewrite");
  await subscriber.ready();
  assert.equal(await client.command(["EXISTS", "subscribed:timeline:1"]), 1);
  assert.equal(await client.publish("timeline:1", "after"), 1);
  assert.deepEqual(await take(messages, 1), [{ channel: "timeline:1", message: "after" }]);
  assert.equal(subscriber.reconnects, 1);
  assert.equal((await reconnectLine).channels, 1);
});

Deno.test("Closing the subscriber ends its iteration", async () => {
  await using server = await startRedisServer();
  const subscriber = new RedisSubscriber({ config: tcp(server.port), log: silentLogger });
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  const drained = Array.fromAsync(subscriber);
  await subscriber.close();
  assert.deepEqual(await within(drained, "the end of iteration"), []);
  assert.equal(subscriber.connected, false);
});

Deno.test("A subscriber that cannot connect warns once, retries, and leaks nothing when closed", async () => {
  const { log, next, lines } = recordingLogger();
  const subscriber = new RedisSubscriber({ config: tcp(closedPort()), log });
  const iteration = Array.fromAsync(subscriber);
  const first = await next((r) => r.msg === "Cannot connect to Redis, retrying");
  const second = await next((r) => r.msg === "Cannot connect to Redis, retrying");
  await subscriber.close();
  assert.deepEqual(await iteration, []);
  assert.equal(first.level, "warn");
  assert.equal(second.level, "debug");
  assert.equal(lines.filter((r) => r.level === "warn").length, 1);
  await assert.rejects(subscriber.ready(), RedisConnectionError);
});

Deno.test("AUTH with a password, or a username and password, lets both connections in", async () => {
  await using server = await startRedisServer({ args: ["--requirepass", "secret"] });
  await using client = new RedisClient({
    config: tcp(server.port, { password: "secret" }),
    log: silentLogger,
  });
  await client.ready();
  await client.command(["ACL", "SETUSER", "streaming", "on", ">pw", "~*", "&*", "+@all"]);
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port, { username: "streaming", password: "pw" }),
    log: silentLogger,
  });
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  assert.equal(await client.publish("timeline:1", "hello"), 1);
  const [message] = await take(subscriber[Symbol.asyncIterator](), 1);
  assert.equal(message.message, "hello");
});

Deno.test("A wrong password is logged and retried, not thrown", async () => {
  await using server = await startRedisServer({ args: ["--requirepass", "secret"] });
  const { log, next } = recordingLogger();
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port, { password: "wrong" }),
    log,
  });
  subscriber.subscribe("timeline:1");
  const warning = await next((r) => r.msg === "Cannot connect to Redis, retrying");
  await next((r) => r.msg === "Cannot connect to Redis, retrying");
  assert.equal(warning.level, "warn");
  assert.match(JSON.stringify(warning.error), /WRONGPASS/);
  assert.equal(subscriber.connected, false);
});

Deno.test("A missing password makes the connection retry instead of subscribing unauthenticated", async () => {
  await using server = await startRedisServer({ args: ["--requirepass", "secret"] });
  const { log, next } = recordingLogger();
  await using client = new RedisClient({ config: tcp(server.port), log });
  const warning = await next((r) => r.msg === "Cannot connect to Redis, retrying");
  assert.match(JSON.stringify(warning.error), /NOAUTH/);
  assert.equal(client.connected, false);
});

Deno.test("RedisClient fails fast while Redis is unreachable", async () => {
  await using client = new RedisClient({ config: tcp(closedPort()), log: silentLogger });
  await assert.rejects(client.command(["PING"]), RedisConnectionError);
  await assert.rejects(client.set("subscribed:timeline:1", "1", 1080), RedisConnectionError);
});

Deno.test("RedisClient pipelines commands and matches each reply to its command", async () => {
  await using server = await startRedisServer();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  await client.ready();
  const echoes = Array.from({ length: 300 }, (_, i) => client.command(["ECHO", `e${i}`]));
  const failing = client.command(["NO-SUCH-COMMAND"]);
  const after = client.command(["ECHO", "after"]);
  assert.deepEqual(await Promise.all(echoes), Array.from({ length: 300 }, (_, i) => `e${i}`));
  await assert.rejects(failing, RedisReplyError);
  assert.equal(await after, "after");
  await client.ping();
});

Deno.test("RedisClient selects the configured database", async () => {
  await using server = await startRedisServer();
  await using db3 = new RedisClient({ config: tcp(server.port, { db: 3 }), log: silentLogger });
  await using db0 = new RedisClient({ config: tcp(server.port), log: silentLogger });
  await db3.ready();
  await db0.ready();
  await db3.set("subscribed:timeline:1", "1", 60);
  assert.equal(await db3.command(["GET", "subscribed:timeline:1"]), "1");
  assert.equal(await db0.command(["GET", "subscribed:timeline:1"]), null);
});

Deno.test("RedisSubscriber connects over a unix socket", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/redis.sock`;
    await using server = await startRedisServer({ args: ["--unixsocket", path] });
    await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
    await using subscriber = new RedisSubscriber({
      config: { ...tcp(0), mode: "unix", path },
      log: silentLogger,
    });
    subscriber.subscribe("timeline:1");
    await subscriber.ready();
    await client.ready();
    assert.equal(await client.publish("timeline:1", "via socket"), 1);
    const [message] = await take(subscriber[Symbol.asyncIterator](), 1);
    assert.equal(message.message, "via socket");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RedisSubscriber asks the sentinels in turn for the master's address", async () => {
  await using master = await startRedisServer();
  await using sentinel = await startRedisServer({
    sentinel: { master: "mymaster", masterPort: master.port },
  });
  await using client = new RedisClient({ config: tcp(master.port), log: silentLogger });
  const config: RedisConfig = {
    ...tcp(0),
    mode: "sentinel",
    sentinelMaster: "mymaster",
    sentinels: [{ host: "127.0.0.1", port: closedPort() }, {
      host: "127.0.0.1",
      port: sentinel.port,
    }],
  };
  await using subscriber = new RedisSubscriber({ config, log: silentLogger });
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  await client.ready();
  assert.equal(await client.publish("timeline:1", "via sentinel"), 1);
  const [message] = await take(subscriber[Symbol.asyncIterator](), 1);
  assert.equal(message.message, "via sentinel");
});
