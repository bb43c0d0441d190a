/**
 * SLUICE_WORKERS: one instance, several threads, one face to the outside.
 * Real main.ts processes (two workers sharing a port through SO_REUSEPORT)
 * for metrics, logs, kill, SIGTERM, DB_POOL and the unix socket; the
 * supervisor in-process with a worker that can be made to crash for the
 * restart and readiness tests.
 */
import assert from "node:assert/strict";
import { SseReader, WsClient } from "../_support/clients.ts";
import { CRASH_CHANNEL } from "../_support/crashing_worker.ts";
import { LogLines } from "../_support/log_lines.ts";
import { type MainProcess, PERMISSIONS, spawnMain, stopping } from "../_support/main_process.ts";
import { serviceEnv, type Services, startServices } from "../_support/stack.ts";
import { freePort } from "../../scripts/free_port.ts";
import { parseConfig } from "../../src/config.ts";
import { planWorkers, Supervisor } from "../../src/workers.ts";

const TOKEN = "token-alice";

/** Every series of `name` in a /metrics text, by label text (`{worker="1"}` or ""). */
function series(text: string, name: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`).exec(line);
    if (match) found.set(match[1] ?? "", Number(match[2]));
  }
  return found;
}

function one(text: string, name: string, labels = ""): number {
  const value = series(text, name).get(labels);
  assert.notEqual(value, undefined, `${name}${labels} in /metrics`);
  return value!;
}

/** Asks readiness until it is 200 (the instance becomes ready by itself); fails after `ms`. */
async function readyWithin(url: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const response = await fetch(url);
    const body = await response.text();
    if (response.status === 200) return;
    if (Date.now() > deadline) throw new Error(`not ready after ${ms} ms: ${body}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function scrape(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(response.status, 200);
  return await response.text();
}

function spawnWorkers(services: Services, env: Record<string, string> = {}) {
  const port = freePort();
  const main = spawnMain(
    { ...serviceEnv(services), PORT: String(port), SLUICE_WORKERS: "2", ...env },
    { flags: ["--unstable-net"] },
  );
  return { port, main };
}

/** Opens SSE streams and WebSockets until both workers have some, each stream listening. */
async function spreadClients(port: number, main: MainProcess, perKind = 12) {
  const sse: SseReader[] = [];
  const ws: WsClient[] = [];
  for (let i = 0; i < perKind; i++) {
    const reader = await SseReader.open(`http://127.0.0.1:${port}/api/v1/streaming/public`, {
      Authorization: `Bearer ${TOKEN}`,
    });
    sse.push(reader);
    ws.push(
      await WsClient.open(
        `ws://127.0.0.1:${port}/api/v1/streaming?access_token=${TOKEN}&stream=public`,
      ),
    );
  }
  await Promise.all(sse.map((reader) => reader.contains(":)")));
  void main;
  return { sse, ws, all: () => [...sse.map((r) => r.close()), ...ws.map((w) => w.close())] };
}

/** Clients spread over both workers of a fresh two-worker main.ts, for `check`; then SIGTERM. */
async function withSpreadClients(
  perKind: number,
  check: (
    ctx: { services: Services; port: number; sse: SseReader[]; ws: WsClient[] },
  ) => Promise<void>,
): Promise<void> {
  const services = await startServices();
  const { port, main } = spawnWorkers(services);
  try {
    await stopping(main, async () => {
      await main.listening();
      const { sse, ws, all } = await spreadClients(port, main, perKind);
      try {
        for (
          const clients of series(await scrape(port), "sluice_worker_connected_clients").values()
        ) {
          assert.ok(clients > 0, "both workers have clients");
        }
        await check({ services, port, sse, ws });
      } finally {
        await Promise.all(all());
      }
    });
  } finally {
    await services.close();
  }
}

Deno.test("Two workers share the port: clients spread over both, every client gets every event, /metrics sums the workers", async () => {
  const services = await startServices();
  const { port, main } = spawnWorkers(services);
  try {
    await stopping(main, async () => {
      const ready = await main.listening();
      assert.equal(ready.workers, 2);
      const { sse, ws, all } = await spreadClients(port, main);
      try {
        // Scrapes land on either worker; each must show the whole instance.
        let perWorker = new Map<string, number>();
        for (let i = 0; i < 6; i++) {
          const text = await scrape(port);
          assert.equal(one(text, "sluice_workers"), 2);
          assert.equal(one(text, "connected_clients", '{type="eventsource"}'), 12);
          assert.equal(one(text, "connected_clients", '{type="websocket"}'), 12);
          perWorker = series(text, "sluice_worker_connected_clients");
          assert.deepEqual([...perWorker.keys()].sort(), ['{worker="1"}', '{worker="2"}']);
          assert.equal([...perWorker.values()].reduce((a, b) => a + b), 24, "per worker sums up");
          assert.equal(one(text, "sluice_redis_connected"), 2, "one subscriber per worker");
        }
        for (const [worker, clients] of perWorker) assert.ok(clients > 0, `${worker} has clients`);
        // Each worker subscribed timeline:public on its own Redis connection.
        const numsub = await services.client.command(["PUBSUB", "NUMSUB", "timeline:public"]);
        assert.deepEqual(numsub, ["timeline:public", 2]);

        await services.client.publish(
          "timeline:public",
          JSON.stringify({ event: "delete", payload: "4242" }),
        );
        await Promise.all(sse.map((reader) => reader.contains("data: 4242")));
        for (const client of ws) assert.equal(JSON.parse(await client.next()).payload, "4242");
        const text = await scrape(port);
        assert.equal(one(text, "messages_sent_total", '{type="eventsource"}'), 12);
        assert.equal(one(text, "messages_sent_total", '{type="websocket"}'), 12);
        assert.equal(one(text, "redis_messages_received_total"), 2, "one per worker");

        // Logs carry the worker number: both workers connected their subscriber.
        for (const worker of [1, 2]) {
          await main.logs.find(
            (r) => r.worker === worker && /subscriber connected/.test(String(r.msg)),
            `worker ${worker}'s subscriber`,
          );
        }
        const requests = main.logs.filter((r) => r.msg === "request completed");
        assert.ok(requests.length > 0 && requests.every((r) => r.worker === 1 || r.worker === 2));
      } finally {
        await Promise.all(all());
      }
    });
  } finally {
    await services.close();
  }
});

Deno.test("kill reaches the connections of every worker", async () => {
  await withSpreadClients(8, async ({ services, port, sse, ws }) => {
    // alice's token is access token 1 in the seed.
    await services.client.publish("timeline:access_token:1", '{"event":"kill"}');
    await Promise.all(sse.map((reader) => reader.end()));
    for (const client of ws) await client.closed();
    const after = await scrape(port);
    assert.equal(one(after, "connected_clients", '{type="eventsource"}'), 0);
    assert.equal(one(after, "connected_clients", '{type="websocket"}'), 0);
  });
});

Deno.test("filters_changed reaches the connections of every worker: each reloads alice's keyword filters", async () => {
  const update = (content: string) =>
    JSON.stringify({
      event: "update",
      payload: {
        id: String(115_000_000_000_000_000n + BigInt(Date.now() % 1_000_000)),
        language: "en",
        spoiler_text: "",
        content,
        account: { id: "2", username: "bob", acct: "bob" },
        mentions: [],
      },
    });
  const next = async (client: WsClient) => JSON.parse(JSON.parse(await client.next()).payload);
  await withSpreadClients(8, async ({ services, ws }) => {
    await services.client.publish("timeline:public", update("<p>world</p>"));
    for (const client of ws) assert.deepEqual((await next(client)).filtered, []);
    // alice's seeded filter matches "spoiler"; now it matches "world", and Rails says so.
    await services.pg.query("UPDATE custom_filter_keywords SET keyword = 'world' WHERE id = 1");
    await services.client.publish("timeline:system:1", '{"event":"filters_changed"}');
    await services.client.publish("timeline:public", update("<p>world</p>"));
    for (const client of ws) {
      const { filtered } = await next(client);
      assert.deepEqual(filtered[0].keyword_matches, ["world"], "reloaded on every worker");
    }
  });
});

Deno.test("SIGTERM shuts every worker down: WebSockets on both get 1001, SSE streams end, exit 0", async () => {
  const services = await startServices();
  const { port, main } = spawnWorkers(services);
  try {
    await main.listening();
    const { sse, ws } = await spreadClients(port, main, 8);
    const text = await scrape(port);
    for (const clients of series(text, "sluice_worker_connected_clients").values()) {
      assert.ok(clients > 0, "both workers have clients");
    }
    main.child.kill("SIGTERM");
    for (const client of ws) assert.equal((await client.closed()).code, 1001);
    await Promise.all(sse.map((reader) => reader.end()));
    assert.ok(sse.every((reader) => reader.endedCleanly), "every stream ended cleanly");
    const { code, stderr } = await main.exited();
    assert.equal(code, 0, stderr);
  } finally {
    await services.close();
  }
});

Deno.test("DB_POOL is the limit for the whole instance: two workers never open more (pg_stat_activity)", async () => {
  const services = await startServices();
  const pool = 3;
  const { port, main } = spawnWorkers(services, { DB_POOL: String(pool) });
  const count = async () =>
    Number(
      await services.pg.query(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() " +
          "AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
      ),
    );
  try {
    await stopping(main, async () => {
      const ready = await main.listening();
      assert.deepEqual(ready.db_pool, [2, 1]);
      let most = 0;
      let loading = true;
      const sampling = (async () => {
        while (loading) {
          most = Math.max(most, await count());
        }
      })();
      // Bursts of authentications (one token query each), on both workers.
      for (let burst = 0; burst < 5; burst++) {
        const streams = await Promise.all(
          Array.from(
            { length: 80 },
            () =>
              SseReader.open(`http://127.0.0.1:${port}/api/v1/streaming/public`, {
                Authorization: `Bearer ${TOKEN}`,
              }),
          ),
        );
        await Promise.all(streams.map((s) => s.close()));
      }
      loading = false;
      await sampling;
      most = Math.max(most, await count());
      assert.ok(most <= pool, `at most DB_POOL=${pool} connections, saw ${most}`);
      assert.equal(most, pool, "the load used the whole pool (so the limit was tested)");
    });
  } finally {
    await services.close();
  }
});

Deno.test("A unix SOCKET is served by one worker, and the log says why", async () => {
  const services = await startServices();
  const dir = await Deno.makeTempDir();
  const path = `${dir}/streaming.sock`;
  const main = spawnMain(
    { ...serviceEnv(services), SOCKET: path, SLUICE_WORKERS: "2" },
    { flags: ["--unstable-net", `--allow-write=${dir}`] },
  );
  try {
    await stopping(main, async () => {
      const ready = await main.listening();
      assert.equal(ready.workers, 1);
      assert.match(String(ready.why), /unix socket/);
      const warning = main.logs.filter((r) => r.level === "warn" && /SOCKET/.test(String(r.msg)));
      assert.equal(warning.length, 1);
      const client = Deno.createHttpClient({ proxy: { transport: "unix", path } });
      try {
        const response = await fetch("http://localhost/metrics", { client });
        assert.equal(one(await response.text(), "sluice_workers"), 1);
      } finally {
        client.close();
      }
    });
  } finally {
    await services.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** `deno run` of main.ts with `flags` and the permissions a TCP configuration needs. */
function denoRunMain(...flags: string[]): string[] {
  const main = decodeURIComponent(new URL("../../main.ts", import.meta.url).pathname);
  return [Deno.execPath(), "run", ...flags, ...PERMISSIONS, main];
}

Deno.test("SLUICE_WORKERS=auto follows the CPU affinity (taskset)", async () => {
  const services = await startServices();
  const port = freePort();
  const taskset = spawnMain(
    { ...serviceEnv(services), PORT: String(port) },
    {
      program: ["taskset", "-c", "0", ...denoRunMain("--unstable-net")],
    },
  );
  try {
    await stopping(taskset, async () => {
      const ready = await taskset.listening();
      assert.equal(ready.workers, 1);
      assert.match(String(ready.why), /auto: 1 CPU available/);
    });
  } finally {
    await services.close();
  }
});

Deno.test("Without --unstable-net several workers fall back to one, with a warning naming the flag", async () => {
  const services = await startServices();
  const port = freePort();
  // The project's deno.json without its "unstable": ["net"].
  const dir = await Deno.makeTempDir();
  const denoJson = JSON.parse(
    await Deno.readTextFile(new URL("../../deno.json", import.meta.url)),
  );
  delete denoJson.unstable;
  await Deno.writeTextFile(`${dir}/deno.json`, JSON.stringify(denoJson));
  const main = spawnMain({ ...serviceEnv(services), PORT: String(port), SLUICE_WORKERS: "2" }, {
    program: denoRunMain(`--config=${dir}/deno.json`),
  });
  try {
    await stopping(main, async () => {
      const ready = await main.listening();
      assert.equal(ready.workers, 1);
      const warnings = main.logs.filter((r) => /--unstable-net/.test(String(r.msg)));
      assert.equal(warnings.length, 1);
    });
  } finally {
    await services.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("A worker that dies is restarted and logged; its clients are cut and reconnect; readiness waits for it", async () => {
  const services = await startServices();
  const logs = new LogLines();
  const port = freePort();
  const vars: Record<string, string> = {
    ...serviceEnv(services),
    PORT: String(port),
    LOG_LEVEL: "fatal",
  };
  const config = parseConfig((name) => vars[name]);
  const plan = planWorkers({
    requested: 2,
    cpus: 2,
    listen: config.listen,
    pool: 4,
    reusePort: true,
  });
  const supervisor = new Supervisor({
    config,
    plan,
    log: logs.logger("info"),
    workerUrl: new URL("../_support/crashing_worker.ts", import.meta.url),
    restartDelayMs: 1500,
  });
  const crash = new BroadcastChannel(CRASH_CHANNEL);
  const base = `http://127.0.0.1:${port}`;
  try {
    await supervisor.start();
    const streams: SseReader[] = [];
    for (let i = 0; i < 12; i++) {
      streams.push(
        await SseReader.open(`${base}/api/v1/streaming/public`, {
          Authorization: `Bearer ${TOKEN}`,
        }),
      );
    }
    await Promise.all(streams.map((s) => s.contains(":)")));
    const before = series(await scrape(port), "sluice_worker_connected_clients");
    const onSecond = before.get('{worker="2"}')!;
    assert.ok(onSecond > 0 && onSecond < 12, `both workers have streams: ${[...before]}`);

    crash.postMessage(2);
    await logs.find((r) => /Worker 2 died/.test(String(r.msg)), "the death logged");
    // While it restarts: the instance is not ready, and says which worker is missing.
    const notReady = await fetch(`${base}/api/v1/streaming/health/ready`);
    assert.equal(notReady.status, 503);
    assert.match(await notReady.text(), /worker 2 is restarting/);
    // Its streams were cut with the thread; the other worker's go on.
    await Promise.all(
      streams.map((s) => Promise.race([s.end(), new Promise((r) => setTimeout(r, 1000))])),
    );
    assert.equal(streams.filter((s) => s.ended).length, onSecond);
    // The cut clients reconnect: to the living worker, or the new one once it serves.
    const again = await SseReader.open(`${base}/api/v1/streaming/public`, {
      Authorization: `Bearer ${TOKEN}`,
    });
    await again.contains(":)");
    await logs.find((r) => /Worker 2 is serving again/.test(String(r.msg)), "the restart");
    // Serving is not ready yet: the new worker may still be connecting to Redis.
    await readyWithin(`${base}/api/v1/streaming/health/ready`, 10_000);
    const text = await scrape(port);
    assert.equal(one(text, "sluice_workers"), 2);
    assert.equal(one(text, "sluice_worker_restarts_total"), 1);
    assert.equal(one(text, "connected_clients", '{type="eventsource"}'), 12 - onSecond + 1);
    await Promise.all([...streams, again].map((s) => s.close()));
  } finally {
    crash.close();
    await supervisor.shutdown();
    await services.close();
  }
});
