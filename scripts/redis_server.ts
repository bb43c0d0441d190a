/**
 * Starts a throw-away `redis-server` on a free 127.0.0.1 port, with no
 * persistence, for tests and `deno task dev`; optionally TLS-only on that
 * port (`tls`), with a certificate the caller made.
 *
 * @module
 */

import { freePort } from "./free_port.ts";

/** A running redis-server child process. */
export interface RedisServer {
  port: number;
  /** `redis://127.0.0.1:<port>`, or `rediss://127.0.0.1:<port>` with `tls`. */
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
  /** Accept only TLS on the port, with this certificate; clients need no certificate. */
  tls?: RedisTlsFiles;
}

/** PEM files for a TLS-only server. */
export interface RedisTlsFiles {
  /** The server's certificate (for 127.0.0.1). */
  certFile: string;
  keyFile: string;
  /** The CA that signed it: the server loads it, and start-up PINGs through it. */
  caFile: string;
}

const START_TIMEOUT_MS = 10_000;
const POLL_MS = 20;

/** Spawns `redis-server` and resolves once it answers PING. */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<RedisServer> {
  const port = freePort();
  const sentinelDir = options.sentinel ? await Deno.makeTempDir({ prefix: "sentinel" }) : undefined;
  const args = [...listenArgs(port, options.tls), "--bind", "127.0.0.1"]
    .concat(["--save", "", "--appendonly", "no"], options.args ?? []);
  const caCerts = options.tls ? [await Deno.readTextFile(options.tls.caFile)] : undefined;
  if (options.sentinel && sentinelDir) {
    const { master, masterPort } = options.sentinel;
    const file = `${sentinelDir}/sentinel.conf`;
    await Deno.writeTextFile(file, `sentinel monitor ${master} 127.0.0.1 ${masterPort} 1\n`);
    args.unshift(file, "--sentinel");
  }
  let running: Running | undefined = await spawn(args, port, caCerts);
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
    url: `${options.tls ? "rediss" : "redis"}://127.0.0.1:${port}`,
    stop,
    halt,
    async restart() {
      await halt();
      running = await spawn(args, port, caCerts);
    },
    [Symbol.asyncDispose]: stop,
  };
}

interface Running {
  stop(): Promise<void>;
}

/** `--port`, or TLS only: no plain port, the TLS port and the certificate files. */
function listenArgs(port: number, tls: RedisTlsFiles | undefined): string[] {
  if (tls === undefined) return ["--port", String(port)];
  return [
    ...["--port", "0", "--tls-port", String(port), "--tls-auth-clients", "no"],
    ...["--tls-cert-file", tls.certFile, "--tls-key-file", tls.keyFile],
    ...["--tls-ca-cert-file", tls.caFile],
  ];
}

async function spawn(args: string[], port: number, caCerts?: string[]): Promise<Running> {
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
    await waitForPong(port, child.status, caCerts);
  } catch (err) {
    await stop();
    const output = (await stderr).trim();
    throw new Error(`${(err as Error).message}${output ? `: ${output}` : ""}`);
  }
  return { stop };
}

/** Polls until the port answers PING (PONG, or NOAUTH when a password is required). */
async function waitForPong(
  port: number,
  exited: Promise<Deno.CommandStatus>,
  caCerts: string[] | undefined,
): Promise<void> {
  let exitCode: number | undefined;
  exited.then((status) => exitCode = status.code);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`redis-server exited with code ${exitCode}`);
    if (await answersPing(port, caCerts)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`redis-server did not answer on port ${port} within ${START_TIMEOUT_MS} ms`);
}

/** PING over TCP, or over TLS trusting `caCerts` when given. */
async function answersPing(port: number, caCerts: string[] | undefined): Promise<boolean> {
  let conn: Deno.Conn;
  try {
    const address = { hostname: "127.0.0.1", port };
    conn = caCerts ? await Deno.connectTls({ ...address, caCerts }) : await Deno.connect(address);
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
