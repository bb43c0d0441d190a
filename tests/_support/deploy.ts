/**
 * The deployment files of dist/ as an admin installs them, brought to this
 * machine: a systemd unit's ExecStart=, Environment= and WorkingDirectory=
 * with only the install paths swapped for local ones, Sluice started from
 * that command outside systemd against a throwaway PostgreSQL (through its
 * socket directory) and redis-server (through its unix socket), and a Redis
 * MONITOR that tells when Sluice has subscribed to a channel.
 *
 * @module
 */
import { Waiters } from "./clients.ts";
import type { LogLines, LogRecord } from "./log_lines.ts";
import { spawnFollowed } from "./main_process.ts";
import { type PostgresServer, startPostgresServer } from "../../scripts/postgres_server.ts";
import { type RedisServer, startRedisServer } from "../../scripts/redis_server.ts";
import { parseRedisUrl } from "../../src/config.ts";
import { silentLogger } from "../../src/log.ts";
import { RedisClient } from "../../src/redis/client.ts";

/** This repository's root directory, without a trailing slash. */
export const ROOT = decodeURIComponent(new URL("../..", import.meta.url).pathname).replace(
  /\/$/,
  "",
);

/** The command part of a unit's [Service] section. */
export interface UnitCommand {
  /** ExecStart=, split into words (continuation lines joined). */
  argv: string[];
  /** Every Environment= assignment. */
  env: Record<string, string>;
  workingDirectory?: string;
}

/** Reads ExecStart=, Environment= and WorkingDirectory= from a unit file's text. */
export function parseUnit(text: string): UnitCommand {
  const unit: UnitCommand = { argv: [], env: {} };
  for (const raw of text.replace(/\\\n/g, " ").split("\n")) {
    const line = raw.trim();
    const match = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!match) continue;
    const [, key, value] = match;
    if (key === "ExecStart") unit.argv = words(value.replace(/^[-@+!:]+/, ""));
    else if (key === "WorkingDirectory") unit.workingDirectory = value;
    else if (key === "Environment") {
      for (const assignment of words(value)) {
        const at = assignment.indexOf("=");
        unit.env[assignment.slice(0, at)] = assignment.slice(at + 1);
      }
    }
  }
  return unit;
}

function words(text: string): string[] {
  return [...text.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]);
}

/**
 * Replaces each `from` with its `to` everywhere in the command. Throws when
 * a `from` occurs nowhere, so a unit that moved an install path fails the
 * test instead of silently keeping the production path.
 */
export function swapPaths(unit: UnitCommand, pairs: ReadonlyArray<[string, string]>): UnitCommand {
  const all = () => [...unit.argv, ...Object.values(unit.env), unit.workingDirectory ?? ""];
  for (const [from] of pairs) {
    if (!all().some((text) => text.includes(from))) {
      throw new Error(`the unit never mentions ${from}`);
    }
  }
  const swap = (text: string) => pairs.reduce((t, [from, to]) => t.replaceAll(from, to), text);
  return {
    argv: unit.argv.map(swap),
    env: Object.fromEntries(Object.entries(unit.env).map(([k, v]) => [k, swap(v)])),
    workingDirectory: unit.workingDirectory && swap(unit.workingDirectory),
  };
}

/** Deno's module cache directory on this machine (what `deno info` reports). */
async function denoDir(): Promise<string> {
  const { stdout } = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  return JSON.parse(new TextDecoder().decode(stdout)).denoDir;
}

/** Where the units expect Deno. */
export const DENO_BIN = "/usr/local/bin/deno";

/** How the units' header says to fill Deno's cache, as one line. */
export const INSTALL = "DENO_DIR=/var/cache/sluice deno install --frozen " +
  "--config=/opt/sluice/deno.json --entrypoint /opt/sluice/main.ts";

/** The units' install paths, each with its counterpart on this machine. */
export async function installPaths(
  services: DeployServices,
  workDir: string,
): Promise<Array<[string, string]>> {
  return [
    [DENO_BIN, Deno.execPath()],
    ["/opt/sluice", ROOT],
    ["/var/cache/sluice", await denoDir()],
    ["/home/mastodon/live", workDir],
    ["/var/run/postgresql/.s.PGSQL.5432", services.pgSocket],
    ["/var/run/redis/redis-server.sock", services.redisSocket],
  ];
}

/** Runs {@link INSTALL} with the install paths swapped (a no-op once cached). */
export async function fillCache(paths: ReadonlyArray<[string, string]>): Promise<void> {
  const swap = (text: string) => paths.reduce((t, [from, to]) => t.replaceAll(from, to), text);
  const [assignment, , ...args] = INSTALL.split(" ").map(swap);
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    env: { DENO_DIR: assignment.slice("DENO_DIR=".length), DENO_NO_UPDATE_CHECK: "1" },
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) throw new Error(`${INSTALL} failed: ${new TextDecoder().decode(stderr)}`);
}

/** Starts dist/sluice@.service for `port` (its `%i`) with the install paths swapped. */
export async function spawnTemplate(
  paths: ReadonlyArray<[string, string]>,
  port: number,
): Promise<UnitProcess> {
  const text = await Deno.readTextFile(`${ROOT}/dist/sluice@.service`);
  return spawnUnit(swapPaths(parseUnit(text.replaceAll("%i", String(port))), paths));
}

/** Throwaway PostgreSQL and redis-server reached the way the units reach them. */
export interface DeployServices {
  pg: PostgresServer;
  redis: RedisServer;
  /** redis-server's unix socket. */
  redisSocket: string;
  /** PostgreSQL's unix socket, `<socketDir>/.s.PGSQL.<port>`. */
  pgSocket: string;
  /** A command connection over TCP, for PUBLISH. */
  client: RedisClient;
  /** Mastodon's `.env.production` for these services. */
  envFile(): string;
  close(): Promise<void>;
}

/** Starts PostgreSQL (schema and seed) and redis-server with a unix socket. */
export async function startDeployServices(): Promise<DeployServices> {
  const socketDir = await Deno.makeTempDir({ prefix: "sluice-redis-" });
  const redisSocket = `${socketDir}/redis-server.sock`;
  const [pg, redis] = await Promise.all([
    startPostgresServer(),
    startRedisServer({ args: ["--unixsocket", redisSocket, "--unixsocketperm", "700"] }),
  ]);
  const client = new RedisClient({ config: parseRedisUrl(redis.url), log: silentLogger });
  await client.ready();
  return {
    pg,
    redis,
    redisSocket,
    pgSocket: `${pg.socketDir}/.s.PGSQL.${pg.port}`,
    client,
    envFile: () =>
      [
        `DB_HOST=${pg.socketDir}`,
        `DB_PORT=${pg.port}`,
        `DB_USER=${pg.user}`,
        `DB_NAME=${pg.database}`,
        `REDIS_URL=unix://${redisSocket}`,
      ].join("\n") + "\n",
    close: async () => {
      await client.close();
      await Promise.all([pg.stop(), redis.stop()]);
      await Deno.remove(socketDir, { recursive: true });
    },
  };
}

/** Sluice started from a unit's command. */
export interface UnitProcess {
  child: Deno.ChildProcess;
  logs: LogLines;
  /** Resolves once Sluice logs that it listens; rejects if it exits first. */
  listening(): Promise<LogRecord>;
  /** SIGTERM, as systemd stops it (KillSignal=SIGTERM); resolves with the exit code and stderr. */
  stop(): Promise<{ code: number; stderr: string }>;
  /** Its warnings and errors so far, one JSON line each, for failure messages. */
  problems(): string;
}

/** The PATH systemd gives every service (systemd.exec(5), "Environment variables in spawned processes"). */
const SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Runs the command with exactly its Environment= (and systemd's PATH) in its WorkingDirectory=, as systemd would. */
export function spawnUnit(unit: UnitCommand): UnitProcess {
  const [program, ...args] = unit.argv;
  const { child, logs, exited: done } = spawnFollowed(program, {
    args,
    cwd: unit.workingDirectory,
    env: { PATH: SYSTEMD_PATH, ...unit.env },
    clearEnv: true,
  });
  const exited = done();
  return {
    child,
    logs,
    listening: () => {
      const early = exited.then(({ code, stderr }) =>
        Promise.reject(new Error(`Sluice exited (${code}) before listening: ${stderr}`))
      );
      early.catch(() => {});
      const listens = (r: LogRecord) => r.level === "info" && /listening/i.test(String(r.msg));
      return Promise.race([logs.find(listens, "Sluice listening", { timeoutMs: 30_000 }), early]);
    },
    problems: () =>
      logs.filter((r) => r.level !== "info" && r.level !== "debug").map((r) => JSON.stringify(r))
        .join("\n"),
    stop: () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // already exited
      }
      return exited;
    },
  };
}

/**
 * A MONITOR connection: Redis echoes every command it executes, so a test
 * learns that a separate Sluice process has subscribed to a channel without
 * polling, and publishes only then.
 */
export class RedisMonitor {
  readonly lines: string[] = [];
  readonly #waiters = new Waiters();
  readonly #done: Promise<void>;

  private constructor(readonly conn: Deno.Conn, first: string) {
    this.#done = this.#pump(first);
  }

  /** Connects to 127.0.0.1:`port` and resolves once MONITOR is acknowledged. */
  static async open(port: number): Promise<RedisMonitor> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("MONITOR\r\n"));
    let text = "";
    const buffer = new Uint8Array(4096);
    while (!text.includes("\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) throw new Error("Redis closed the MONITOR connection");
      text += new TextDecoder().decode(buffer.subarray(0, n));
    }
    if (!text.startsWith("+OK\r\n")) throw new Error(`MONITOR answered ${text}`);
    return new RedisMonitor(conn, text.slice(5));
  }

  async #pump(first: string): Promise<void> {
    let pending = first;
    try {
      for await (const chunk of this.conn.readable.pipeThrough(new TextDecoderStream())) {
        const lines = (pending + chunk).split("\r\n");
        pending = lines.pop()!;
        this.lines.push(...lines);
        this.#waiters.notify();
      }
    } catch {
      // closed
    }
  }

  /** Resolves once `count` SUBSCRIBE commands naming `channel` have run. */
  async subscribed(channel: string, count = 1): Promise<void> {
    const quoted = `"${channel}"`;
    const matches = () =>
      this.lines.filter((l) => /"subscribe"/i.test(l) && l.split(" ").includes(quoted)).length;
    await this.#waiters.until(
      () => matches() >= count || undefined,
      `${count} SUBSCRIBE of ${channel}`,
      15_000,
    );
  }

  async close(): Promise<void> {
    try {
      this.conn.close();
    } catch {
      // already closed
    }
    await this.#done;
  }
}

/** A demo message of test_data/demo: its channel and the text Rails would PUBLISH. */
export async function demoMessage(file: string): Promise<{ channel: string; message: string }> {
  const demo = JSON.parse(await Deno.readTextFile(`${ROOT}/test_data/demo/${file}`));
  return { channel: demo.channel, message: JSON.stringify(demo.message) };
}
