/**
 * `deno task publish`: the demo publisher, run with its task's permissions,
 * against a throwaway redis-server and against nothing.
 */
import assert from "node:assert/strict";
import { startRedisServer } from "../../scripts/redis_server.ts";
import { parseRedisUrl } from "../../src/config.ts";
import { silentLogger } from "../../src/log.ts";
import { RedisSubscriber } from "../../src/redis/subscriber.ts";

const ROOT = new URL("../..", import.meta.url);
const decoder = new TextDecoder();

/** Runs scripts/publish.ts with the task's permissions. */
async function publish(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-net", "--allow-env", "--allow-read", "scripts/publish.ts", ...args],
    cwd: ROOT,
    stdin: "null",
  }).output();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A subscriber on `url` that resolves `all` once `count` messages arrived. */
async function listen(url: string, channels: string[], count: number) {
  const received: { channel: string; message: string }[] = [];
  const all = Promise.withResolvers<typeof received>();
  const subscriber = new RedisSubscriber({
    config: parseRedisUrl(url),
    log: silentLogger,
    onMessage: (channel, message) => {
      if (received.push({ channel, message }) === count) all.resolve(received);
    },
  });
  for (const channel of channels) subscriber.subscribe(channel);
  await subscriber.ready();
  return { subscriber, all: all.promise };
}

Deno.test("publish sends every demo file in name order and prints one line per message", async () => {
  await using redis = await startRedisServer();
  const { subscriber, all } = await listen(redis.url, ["timeline:public"], 4);
  await using _subscriber = subscriber;
  const result = await publish(["--redis", redis.url, "--delay-ms", "0"]);
  assert.equal(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split("\n");
  assert.equal(lines.length, 6);
  assert.equal(
    lines[0],
    "PUBLISH timeline:public update (01-public-update.json) -> 1 subscriber(s)",
  );
  assert.match(lines[2], /^PUBLISH timeline:1 update \(03-home-update\.json\) -> 0 subscriber/);
  const messages = await all;
  assert.equal(JSON.parse(messages[0].message).payload.id, "115000000000000001");
  assert.deepEqual(messages.map((m) => JSON.parse(m.message).event), [
    "update",
    "update",
    "status.update",
    "delete",
  ]);
});

Deno.test("publish sends only the --file given, to the --channel given", async () => {
  await using redis = await startRedisServer();
  const { subscriber, all } = await listen(redis.url, ["timeline:hashtag:demo"], 1);
  await using _subscriber = subscriber;
  const result = await publish([
    `--redis=${redis.url}`,
    "--channel",
    "timeline:hashtag:demo",
    "--file",
    "test_data/demo/06-public-delete.json",
  ]);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(
    result.stdout,
    "PUBLISH timeline:hashtag:demo delete (06-public-delete.json) -> 1 subscriber(s)\n",
  );
  const [message] = await all;
  assert.equal(message.channel, "timeline:hashtag:demo");
  assert.equal(JSON.parse(message.message).event, "delete");
});

Deno.test("publish exits 1 with the reason when Redis cannot be reached or refuses the password", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listener.close();
  const refused = await publish(["--redis", `redis://127.0.0.1:${listener.addr.port}`]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^publish: Cannot connect to Redis: .*refused/i);

  await using redis = await startRedisServer({ args: ["--requirepass", "secret"] });
  const url = `redis://:wrong@127.0.0.1:${redis.port}`;
  const wrong = await publish(["--redis", url, "--delay-ms", "0"]);
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /^publish: Cannot connect to Redis: Redis AUTH failed: WRONGPASS/);
  assert.equal(wrong.stdout, "");

  const bad = await publish(["--redis", "http://127.0.0.1"]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^publish: Cannot parse REDIS_URL: .*\nUsage: deno task publish/);
});
