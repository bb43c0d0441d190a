import assert from "node:assert/strict";
import { messagePool, npmFootprint, parseBenchArgs, runBench } from "../../bench/redis_clients.ts";

Deno.test("redis_clients: every subscriber receives every message and gets one report row", async () => {
  const { markdown, runs } = await runBench({
    messages: 300,
    payloadBytes: 2000,
    rounds: 1,
    clients: ["sluice", "ioredis", "node-redis"],
  });
  assert.deepEqual(
    (runs as { client: string; received: number }[]).map((r) => [r.client, r.received]),
    [["sluice", 300], ["ioredis", 300], ["node-redis", 300]],
  );
  const rows = markdown.split("\n").filter((line) =>
    /^\| (sluice|ioredis|node-redis) \|/.test(line)
  );
  assert.equal(rows.length, 3);
  assert.match(rows[0], /\| 0 \| `--allow-net` \|$/);
  assert.match(rows[1], /\| \d+ \(npm:ioredis@5\.[\d.]+\) \| `--allow-net --allow-env` \|$/);
  assert.match(rows[2], /\| \d+ \(npm:redis@5\.[\d.]+\) \| `--allow-net` \|$/);
});

Deno.test("redis_clients messages are Mastodon's JSON-in-JSON updates of 1.5 to 4 KB", () => {
  const pool = messagePool(2500);
  assert.equal(new Set(pool).size, pool.length);
  for (const message of [pool[0], pool.at(-1)!]) {
    const bytes = new TextEncoder().encode(message).length;
    assert.ok(bytes >= 1500 && bytes <= 4096, `${bytes} bytes`);
    const { event, payload } = JSON.parse(message);
    assert.equal(event, "update");
    assert.equal(typeof payload, "string");
    assert.match(JSON.parse(payload).id, /^\d{18}$/);
  }
});

Deno.test("redis_clients counts an import's npm packages from the lock file, shared ones once", () => {
  const lock = {
    specifiers: { "npm:a@1.0.0": "1.0.0", "npm:@s/b@2.0.0": "2.0.0" },
    npm: {
      "a@1.0.0": { dependencies: ["c", "d@2.0.0"] },
      "c@1.0.0": { dependencies: ["d@2.0.0"] },
      "d@2.0.0": {},
      "@s/b@2.0.0": {},
    },
  };
  assert.equal(npmFootprint(lock, "npm:a@1.0.0"), 3);
  assert.equal(npmFootprint(lock, "npm:@s/b@2.0.0"), 1);
});

Deno.test("redis_clients command line: defaults, and RangeError for bad values", () => {
  assert.deepEqual(parseBenchArgs([]), {
    messages: 100_000,
    payloadBytes: 2500,
    rounds: 3,
    clients: ["sluice", "ioredis", "node-redis"],
    json: undefined,
  });
  assert.deepEqual(parseBenchArgs(["--clients=sluice", "--messages", "5"]).clients, ["sluice"]);
  assert.throws(() => parseBenchArgs(["--messages", "0"]), RangeError);
  assert.throws(() => parseBenchArgs(["--clients", "sluice,jedis"]), RangeError);
});
