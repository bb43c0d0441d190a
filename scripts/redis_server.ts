/**
 * Starts a throw-away `redis-server` on a free 127.0.0.1 port, with no
 * persistence, for tests and `deno task dev`.
 *
 * @module
 */

import { freePort } from "./free_port.ts";

/** A running redis-server child process. */
export interface RedisServer {
  port: number;
  /** `redis://127.0.0.1:<port>` */
  url: string;
  /** Stops the server (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
  /** Stops the server, keeping its port, until `restart()`; for outage tests. */
  halt(): Promise<void>;
  /** Stops the server (unless halted) and starts it again, empty, on the same port. */
  restart(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Extra options for the server. */
export interface RedisServerOptions {
  /** More `redis-server` arguments, e.g. `["--requirepass", "secret"]`. */
  args?: string[];
  /** Run a Sentinel instead, monitoring this master on 127.0.0.1 with quorum 1. */
  sentinel?: { master: string; masterPort: number };
}

const START_TIMEOUT_MS = 10_000;
const POLL_MS = 20;

/** Spawns `redis-server` and resolves once it answers PING. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = freePort();
  const sentinelDir = options.sentinel ? await Deno.makeTempDir({ prefix: "sentinel" }) : undefined;
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    .concat(options.args ?? []);
  if (options.sentinel && sentinelDir) {
    const { master, masterPort } = options.sentinel;
    const file = `${sentinelDir}/sentinel.conf`;
    await Deno.writeTextFile(file, `sentinel monitor ${master} 127.0.0.1 ${masterPort} 1\n`);
    args.unshift(file, "--sentinel");
  }
  let running: Running | undefined = await spawn(args, port);
  const halt = async () => {
    const current = running;
    running = undefined;
    if (current !== undefined) await current.stop();
  };
  const stop = async () => {
    await halt();
    if (sentinelDir) await Deno.remove(sentinelDir, { recursive: true }).catch(() => {});
  };
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    halt,
    async restart() {
      await halt();
      running = await spawn(args, port);
    },
    [Symbol.asyncDispose]: stop,
  };
}

interface Running {
  stop(): Promise<void>;
}

async function spawn(args: string[], port: number): Promise<Running> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("redis-server", {
      args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    })
      .spawn();
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    throw new Error(
      "redis-server is not installed: install the Debian package redis-server (apt-get install redis-server)",
    );
  }
  const stderr = new Response(child.stderr).text();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    await child.status;
    await stderr;
  };
  try {
    await waitForPong(port, child.status);
  } catch (err) {
    await stop();
    const output = (await stderr).trim();
    throw new Error(`${(err as Error).message}${output ? `: ${output}` : ""}`);
  }
  return { stop };
}

/** Polls until the port answers PING (PONG, or NOAUTH when a password is required). */
async function waitForPong(port: number, exited: Promise<Deno.CommandStatus>): Promise<void> {
  let exitCode: number | undefined;
  exited.then((status) => exitCode = status.code);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`redis-server exited with code ${exitCode}`);
    if (await answersPing(port)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`redis-server did not answer on port ${port} within ${START_TIMEOUT_MS} ms`);
}

async function answersPing(port: number): Promise<boolean> {
  let conn: Deno.Conn;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
  } catch {
    return false;
  }
  try {
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buffer = new Uint8Array(64);
    const n = await conn.read(buffer);
    const reply = new TextDecoder().decode(buffer.subarray(0, n ?? 0));
    return reply.startsWith("+PONG") || reply.startsWith("-NOAUTH");
  } catch {
    return false;
  } finally {
    conn.close();
  }
}
