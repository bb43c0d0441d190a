import assert from "node:assert/strict";
import type { RedisConfig } from "../../src/config.ts";
import { createLogger, type Logger, silentLogger } from "../../src/log.ts";
import { RedisClient } from "../../src/redis/client.ts";
import { RedisConnectionError, RedisReplyError } from "../../src/redis/resp.ts";
import { SubscribedKeys } from "../../src/redis/subscribed_keys.ts";
import { type MessageHook, RedisSubscriber } from "../../src/redis/subscriber.ts";
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

interface Received {
  channel: string;
  message: string;
}

/** An `onMessage` hook that records every message, and `take(n)`: the next `n` of them. */
function inbox(): {
  onMessage: MessageHook;
  received: Received[];
  take(n: number): Promise<Received[]>;
} {
  const received: Received[] = [];
  let taken = 0;
  let waiting: { until: number; resolve: () => void } | undefined;
  const onMessage = (channel: string, message: string) => {
    received.push({ channel, message });
    if (waiting !== undefined && received.length >= waiting.until) waiting.resolve();
  };
  const take = async (n: number) => {
    const until = taken + n;
    if (received.length < until) {
      const arrived = Promise.withResolvers<void>();
      waiting = { until, resolve: arrived.resolve };
      await within(arrived.promise, `message ${until} (${received.length} arrived)`);
      waiting = undefined;
    }
    taken = until;
    return received.slice(until - n, until);
  };
  return { onMessage, received, take };
}

/** A hook for subscribers whose messages the test does not look at. */
const ignore: MessageHook = () => {};

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

Deno.test("RedisSubscriber hands the messages of its channels to onMessage in publish order", async () => {
  await using server = await startRedisServer();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  const { onMessage, received, take } = inbox();
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port),
    log: silentLogger,
    onMessage,
  });
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  await client.ready();
  const large = JSON.stringify({ event: "update", payload: "x".repeat(100_000) });
  const sent = [...Array.from({ length: 200 }, (_, i) => `m${i}`), large, "last"];
  await client.publish("timeline:2", "not subscribed");
  await Promise.all(sent.map((message) => client.publish("timeline:1", message)));

  assert.deepEqual(
    await take(sent.length),
    sent.map((message) => ({ channel: "timeline:1", message })),
  );
  await subscriber.ready();
  assert.equal(received.length, sent.length);
  assert.equal(subscriber.subscriptionCount, 1);
  assert.equal(subscriber.hookFailures, 0);
});

Deno.test("RedisSubscriber sends UNSUBSCRIBE when a channel is no longer wanted", async () => {
  await using server = await startRedisServer();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  const { onMessage, received, take } = inbox();
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port),
    log: silentLogger,
    onMessage,
  });
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
  assert.deepEqual(await take(1), [{ channel: "timeline:1", message: "{}" }]);
  await subscriber.ready();
  assert.equal(received.length, 1);
});

Deno.test("RedisSubscriber prefixes channels with the namespace and strips it from messages", async () => {
  await using server = await startRedisServer();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  const { onMessage, take } = inbox();
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port),
    namespace: "ns",
    log: silentLogger,
    onMessage,
  });
  subscriber.subscribe("timeline:public");
  await subscriber.ready();
  await client.ready();
  assert.equal(await client.publish("timeline:public", "bare"), 0);
  assert.equal(await client.publish("ns:timeline:public", "prefixed"), 1);

  assert.deepEqual(await take(1), [{ channel: "timeline:public", message: "prefixed" }]);
});

Deno.test("A throwing onMessage hook is logged and counted, and later messages still arrive", async () => {
  await using server = await startRedisServer();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  const { log, next } = recordingLogger();
  const { onMessage, take } = inbox();
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port),
    log,
    onMessage: (channel, message) => {
      onMessage(channel, message);
      if (message === "bad") throw new TypeError("hook broke");
    },
  });
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  await client.ready();
  const failure = next((r) => r.msg === "Redis message handler failed");
  for (const message of ["m1", "bad", "m2"]) await client.publish("timeline:1", message);

  const messages = await take(3);
  assert.deepEqual(messages.map((m) => m.message), ["m1", "bad", "m2"]);
  const line = await failure;
  assert.equal(line.level, "error");
  assert.equal(line.channel, "timeline:1");
  assert.deepEqual(line.error, { type: "TypeError", message: "hook broke" });
  assert.equal(subscriber.hookFailures, 1);
  assert.equal(subscriber.connected, true);
  assert.equal(subscriber.reconnects, 0);
  assert.equal(await client.publish("timeline:1", "m3"), 1);
  assert.deepEqual(await take(1), [{ channel: "timeline:1", message: "m3" }]);
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
  const { onMessage, take } = inbox();
  await using events = new RedisSubscriber({
    config: tcp(server.port),
    log: silentLogger,
    onMessage,
  });
  await using keys = new SubscribedKeys({ client, log: silentLogger, intervalMs: 50 });
  await client.ready();
  await client.command(["CONFIG", "SET", "notify-keyspace-events", "Kg$"]);
  await keys.add("timeline:gone");
  await keys.add("timeline:live");
  keys.remove("timeline:gone");
  events.subscribe("__keyspace@0__:subscribed:timeline:live");
  await events.ready();
  await client.command(["DEL", "subscribed:timeline:gone", "subscribed:timeline:live"]);

  const [deleted, rewritten] = await take(2);
  assert.equal(deleted.message, "del");
  assert.equal(rewritten.message, "set");
  assert.equal(await client.command(["EXISTS", "subscribed:timeline:live"]), 1);
  assert.equal(await client.command(["EXISTS", "subscribed:timeline:gone"]), 0);
  assert.deepEqual(keys.channels, ["timeline:live"]);
});

Deno.test("After a Redis restart the subscriber keeps delivering and subscribed: keys are rewritten", async () => {
  await using server = await startRedisServer();
  const { log, next } = recordingLogger();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  await using keys = new SubscribedKeys({ client, log: silentLogger });
  const reconnected = Promise.withResolvers<{ rewrite: Promise<void> }>();
  let ups = 0;
  const { onMessage, take } = inbox();
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port),
    log,
    onMessage,
    onStateChange: (up) => {
      if (up && ++ups === 2) reconnected.resolve({ rewrite: keys.rewriteAll() });
    },
  });
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  await client.ready();
  await keys.add("timeline:1");
  await client.publish("timeline:1", "before");
  assert.deepEqual(await take(1), [{ channel: "timeline:1", message: "before" }]);

  const reconnectLine = next((r) => r.msg === "Redis subscriber reconnected");
  await server.restart();
  const { rewrite } = await within(reconnected.promise, "the reconnect");
  await within(rewrite, "the rewrite");
  await subscriber.ready();
  assert.equal(await client.command(["EXISTS", "subscribed:timeline:1"]), 1);
  assert.equal(await client.publish("timeline:1", "after"), 1);
  assert.deepEqual(await take(1), [{ channel: "timeline:1", message: "after" }]);
  assert.equal(subscriber.reconnects, 1);
  assert.equal((await reconnectLine).channels, 1);
});

/** Records a connection's onStateChange calls and runs `onDown` when the first outage starts. */
function stateLog(onDown: () => void) {
  const states: boolean[] = [];
  const back = Promise.withResolvers<void>();
  const onStateChange = (up: boolean) => {
    states.push(up);
    if (!up && states.length === 2) onDown();
    else if (up && states.length === 3) back.resolve();
  };
  return { states, back: back.promise, onStateChange };
}

Deno.test("Both connections report a Redis restart: state changes, reconnects, ready() waiters", async () => {
  await using server = await startRedisServer();
  const whileDown: Promise<unknown>[] = [];
  let clientAtReady: [boolean, number] | undefined;
  let subscriberAtReady: [boolean, number] | undefined;
  const clientStates = stateLog(() => {
    assert.equal(client.connected, false);
    whileDown.push(
      assert.rejects(client.command(["PING"]), /not connected/),
      client.ready().then(() => clientAtReady = [client.connected, client.reconnects]),
    );
  });
  const subscriberStates = stateLog(() => {
    assert.equal(subscriber.connected, false);
    whileDown.push(
      subscriber.ready().then(() =>
        subscriberAtReady = [subscriber.connected, subscriber.reconnects]
      ),
    );
  });
  const { onMessage, take } = inbox();
  await using client = new RedisClient({
    config: tcp(server.port),
    log: silentLogger,
    onStateChange: clientStates.onStateChange,
  });
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port),
    log: silentLogger,
    onMessage,
    onStateChange: subscriberStates.onStateChange,
  });
  subscriber.subscribe("timeline:1");
  await Promise.all([client.ready(), subscriber.ready()]);
  assert.deepEqual([client.connected, client.reconnects], [true, 0]);
  assert.deepEqual([subscriber.connected, subscriber.reconnects], [true, 0]);

  await server.restart();
  await within(Promise.all([clientStates.back, subscriberStates.back]), "both reconnects");
  await within(Promise.all(whileDown), "the ready() calls made while disconnected");
  assert.deepEqual(clientStates.states, [true, false, true]);
  assert.deepEqual(subscriberStates.states, [true, false, true]);
  assert.deepEqual(clientAtReady, [true, 1]);
  assert.deepEqual(subscriberAtReady, [true, 1]);
  assert.equal(subscriber.subscriptionCount, 1);
  assert.equal(await client.publish("timeline:1", "again"), 1);
  assert.deepEqual(await take(1), [{ channel: "timeline:1", message: "again" }]);

  await subscriber.close();
  await client.close();
  assert.deepEqual([client.connected, subscriber.connected], [false, false]);
  await assert.rejects(client.ready(), /Redis client is closed/);
  await assert.rejects(subscriber.ready(), /Redis subscriber is closed/);
  await assert.rejects(client.command(["PING"]), /Redis client is closed/);
});

Deno.test("Closing the subscriber stops delivery and disconnects it from Redis", async () => {
  await using server = await startRedisServer();
  await using client = new RedisClient({ config: tcp(server.port), log: silentLogger });
  const { onMessage, received } = inbox();
  const subscriber = new RedisSubscriber({
    config: tcp(server.port),
    log: silentLogger,
    onMessage,
  });
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  await client.ready();
  await subscriber.close();
  assert.equal(subscriber.connected, false);
  assert.equal(await client.publish("timeline:1", "after close"), 0);
  subscriber.subscribe("timeline:2");
  assert.equal(await client.publish("timeline:2", "after close"), 0);
  assert.deepEqual(received, []);
});

Deno.test("A subscriber that cannot connect warns once, retries, and leaks nothing when closed", async () => {
  const { log, next, lines } = recordingLogger();
  const subscriber = new RedisSubscriber({ config: tcp(closedPort()), log, onMessage: ignore });
  const waiting = subscriber.ready();
  const first = await next((r) => r.msg === "Cannot connect to Redis, retrying");
  const second = await next((r) => r.msg === "Cannot connect to Redis, retrying");
  await subscriber.close();
  await assert.rejects(waiting, RedisConnectionError);
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
  const { onMessage, take } = inbox();
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port, { username: "streaming", password: "pw" }),
    log: silentLogger,
    onMessage,
  });
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  assert.equal(await client.publish("timeline:1", "hello"), 1);
  const [message] = await take(1);
  assert.equal(message.message, "hello");
});

Deno.test("A wrong password is logged and retried, not thrown", async () => {
  await using server = await startRedisServer({ args: ["--requirepass", "secret"] });
  const { log, next } = recordingLogger();
  await using subscriber = new RedisSubscriber({
    config: tcp(server.port, { password: "wrong" }),
    log,
    onMessage: ignore,
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
    const { onMessage, take } = inbox();
    await using subscriber = new RedisSubscriber({
      config: { ...tcp(0), mode: "unix", path },
      log: silentLogger,
      onMessage,
    });
    subscriber.subscribe("timeline:1");
    await subscriber.ready();
    await client.ready();
    assert.equal(await client.publish("timeline:1", "via socket"), 1);
    const [message] = await take(1);
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
  const { onMessage, take } = inbox();
  await using subscriber = new RedisSubscriber({ config, log: silentLogger, onMessage });
  subscriber.subscribe("timeline:1");
  await subscriber.ready();
  await client.ready();
  assert.equal(await client.publish("timeline:1", "via sentinel"), 1);
  const [message] = await take(1);
  assert.equal(message.message, "via sentinel");
});
