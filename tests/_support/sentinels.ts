/**
 * A throw-away Sentinel setup for failover tests and the failover benchmark:
 * a master, one replica and three sentinels (`redis-server --sentinel`, quorum
 * 2) on free 127.0.0.1 ports, returned once the sentinels know the replica
 * and each other, so that killing the master leads to a failover.
 *
 * @module
 */
import type { RedisConfig } from "../../src/config.ts";
import { silentLogger } from "../../src/log.ts";
import { RedisClient } from "../../src/redis/client.ts";
import type { RespValue } from "../../src/redis/resp.ts";
import { type RedisServer, startRedisServer } from "../../scripts/redis_server.ts";

/** The running setup; disposing it stops every process. */
export interface Sentinels {
  /** The name the sentinels monitor (`REDIS_SENTINEL_MASTER`). */
  name: string;
  master: RedisServer;
  replica: RedisServer;
  sentinels: RedisServer[];
  /** A Sluice Redis configuration in Sentinel mode listing the three sentinels. */
  config: RedisConfig;
  /** Stops the sentinels, the replica and the master. */
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Failure detection and failover timeouts the sentinels get. */
export interface SentinelTimings {
  downAfterMs?: number;
  failoverTimeoutMs?: number;
}

const READY_TIMEOUT_MS = 30_000;
const POLL_MS = 50;

/** A command client for one local port, in plain TCP mode. */
export function localClient(port: number): RedisClient {
  const config: RedisConfig = { mode: "tcp", host: "127.0.0.1", port, tls: false, db: 0 };
  return new RedisClient({ config, log: silentLogger });
}

/** Starts master, replica and three sentinels; resolves once a failover could happen. */
export async function startSentinels(timings: SentinelTimings = {}): Promise<Sentinels> {
  const name = "mymaster";
  const started: RedisServer[] = [];
  // A replica writes the RDB it syncs from to its directory: not the working directory.
  const dir = await Deno.makeTempDir({ prefix: "sentinels" });
  const stop = async () => {
    for (const server of started.splice(0).reverse()) await server.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const args = (name: string) => ["--dir", dir, "--dbfilename", `${name}.rdb`];
    const quick = ["--repl-diskless-sync-delay", "0"];
    const master = await startRedisServer({ args: [...args("master"), ...quick] });
    started.push(master);
    const replica = await startRedisServer({
      args: [...args("replica"), ...quick, "--replicaof", "127.0.0.1", String(master.port)],
    });
    started.push(replica);
    await until(replica.port, ["INFO", "replication"], (r) => /master_link_status:up/.test(`${r}`));
    const settings = {
      "down-after-milliseconds": timings.downAfterMs ?? 500,
      "failover-timeout": timings.failoverTimeoutMs ?? 2_000,
    };
    const sentinels: RedisServer[] = [];
    for (let i = 0; i < 3; i++) {
      const options = { master: name, masterPort: master.port, quorum: 2, settings };
      sentinels.push(await startRedisServer({ sentinel: options }));
      started.push(sentinels[i]);
    }
    for (const sentinel of sentinels) {
      await until(sentinel.port, ["SENTINEL", "MASTER", name], (reply) => {
        const fields = pairs(reply);
        return fields["num-slaves"] === "1" && fields["num-other-sentinels"] === "2";
      });
    }
    const config: RedisConfig = {
      mode: "sentinel",
      host: "127.0.0.1",
      port: 6379,
      tls: false,
      db: 0,
      sentinels: sentinels.map(({ port }) => ({ host: "127.0.0.1", port })),
      sentinelMaster: name,
    };
    return { name, master, replica, sentinels, config, stop, [Symbol.asyncDispose]: stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A flat `[key, value, …]` reply as an object. */
export function pairs(reply: RespValue): Record<string, string> {
  const fields: Record<string, string> = {};
  if (!Array.isArray(reply)) return fields;
  for (let i = 0; i + 1 < reply.length; i += 2) fields[String(reply[i])] = String(reply[i + 1]);
  return fields;
}

/** Sends `command` to the server on `port` until `done(reply)`; throws after a deadline. */
async function until(
  port: number,
  command: string[],
  done: (reply: RespValue) => boolean,
): Promise<void> {
  await using client = localClient(port);
  await client.ready();
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last: RespValue = null;
  while (Date.now() < deadline) {
    last = await client.command(command);
    if (done(last)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`${command.join(" ")} on port ${port}: not ready, last reply ${String(last)}`);
}
