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
  /**
   * Stops the server, keeping its port, until `restart()`; for outage tests.
   * `SIGKILL` makes it a crash: no goodbye to clients.
   */
  halt(signal?: Deno.Signal): Promise<void>;
  /** Kills the server with SIGKILL (`kill -9`) and waits for it to exit; for failover tests. */
  crash(): Promise<void>;
  /** Stops the server (unless halted) and starts it again, empty, on the same port. */
  restart(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Extra options for the server. */
export interface RedisServerOptions {
  /** More `redis-server` arguments, e.g. `["--requirepass", "secret"]`. */
  args?: string[];
  /**
   * Run a Sentinel instead, monitoring this master on 127.0.0.1 with `quorum`
   * (default 1); `settings` are more `sentinel <setting> <master> <value>`
   * lines, e.g. `{ "down-after-milliseconds": 500 }`.
   */
  sentinel?: {
    master: string;
    masterPort: number;
    quorum?: number;
    settings?: Record<string, number>;
  };
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
  let port = freePort();
  const sentinelDir = options.sentinel ? await Deno.makeTempDir({ prefix: "sentinel" }) : undefined;
  const argsFor = (port: number) =>
    [...listenArgs(port, options.tls), "--bind", "127.0.0.1"]
      .concat(["--save", "", "--appendonly", "no"], options.args ?? []);
  let args = argsFor(port);
  const caCerts = options.tls ? [await Deno.readTextFile(options.tls.caFile)] : undefined;
  if (options.sentinel && sentinelDir) {
    const { master, masterPort, quorum = 1, settings = {} } = options.sentinel;
    const file = `${sentinelDir}/sentinel.conf`;
    const lines = [`sentinel monitor ${master} 127.0.0.1 ${masterPort} ${quorum}`]
      .concat(Object.entries(settings).map(([key, value]) => `sentinel ${key} ${master} ${value}`));
    await Deno.writeTextFile(file, lines.map((line) => `${line}\n`).join(""));
    args.unshift(file, "--sentinel");
  }
  let running: Running | undefined;
  for (let attempt = 1; running === undefined; attempt++) {
    try {
      running = await spawn(args, port, caCerts);
    } catch (err) {
      if (!(err instanceof PortTaken) || attempt === 5) throw err;
      port = freePort();
      args = argsFor(port);
      if (options.sentinel && sentinelDir) {
        args.unshift(`${sentinelDir}/sentinel.conf`, "--sentinel");
      }
    }
  }
  const halt = async (signal: Deno.Signal = "SIGTERM") => {
    const current = running;
    running = undefined;
    if (current !== undefined) await current.stop(signal);
  };
  const stop = async () => {
    await halt();
    if (sentinelDir) await Deno.remove(sentinelDir, { recursive: true }).catch(() => {});
  };
  return {
    port,
    url: `${options.tls ? "rediss" : "redis"}://127.0.0.1:${port}`,
    stop,
    halt: (signal) => halt(signal),
    crash: () => halt("SIGKILL"),
    async restart() {
      await halt();
      running = await spawn(args, port, caCerts);
    },
    [Symbol.asyncDispose]: stop,
  };
}

interface Running {
  stop(signal?: Deno.Signal): Promise<void>;
}

/** The `--requirepass` value among redis-server arguments, if any. */
function passwordOf(args: readonly string[]): string | undefined {
  const at = args.indexOf("--requirepass");
  return at >= 0 ? args[at + 1] : undefined;
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
  const stop = async (signal: Deno.Signal = "SIGTERM") => {
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
    await child.status;
    await stderr;
  };
  try {
    await waitForPong(port, child, caCerts, passwordOf(args));
  } catch (err) {
    await stop();
    if (err instanceof PortTaken) throw err;
    const output = (await stderr).trim();
    throw new Error(`${(err as Error).message}${output ? `: ${output}` : ""}`);
  }
  return { stop };
}

/** Polls until the port answers PING (PONG, or NOAUTH when a password is required). */
async function waitForPong(
  port: number,
  child: Deno.ChildProcess,
  caCerts: string[] | undefined,
  password: string | undefined,
): Promise<void> {
  let exitCode: number | undefined;
  child.status.then((status) => exitCode = status.code);
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    const owner = await ownerOf(port, caCerts, password);
    if (exitCode !== undefined) {
      if (owner !== undefined) throw new PortTaken(port); // it could not bind: someone else did
      throw new Error(`redis-server exited with code ${exitCode}`);
    }
    if (owner === child.pid || owner === 0) return;
    // Another process took the port between freePort() and our bind (a test suite running
    // beside this one): ours cannot listen there.
    if (owner !== undefined) throw new PortTaken(port);
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  throw new Error(`redis-server did not answer on port ${port} within ${START_TIMEOUT_MS} ms`);
}

/** The port freePort() gave was taken by another process before redis-server bound it. */
class PortTaken extends Error {
  constructor(port: number) {
    super(`port ${port} was taken by another process`);
  }
}

/**
 * Asks the server on `port` for its process id (`INFO server`, after AUTH when
 * `password` is given), over TCP or over TLS trusting `caCerts`: undefined
 * while nothing answers, 0 when it answers but will not say (NOAUTH).
 */
async function ownerOf(
  port: number,
  caCerts: string[] | undefined,
  password: string | undefined,
): Promise<number | undefined> {
  let conn: Deno.Conn;
  try {
    const address = { hostname: "127.0.0.1", port };
    conn = caCerts ? await Deno.connectTls({ ...address, caCerts }) : await Deno.connect(address);
  } catch {
    return undefined;
  }
  try {
    const auth = password === undefined ? "" : `AUTH ${password}\r\n`;
    await conn.write(new TextEncoder().encode(`${auth}INFO server\r\n`));
    const buffer = new Uint8Array(16_384);
    let text = "";
    for (let n = await conn.read(buffer); n !== null; n = await conn.read(buffer)) {
      text += new TextDecoder().decode(buffer.subarray(0, n));
      const pid = /\r\nprocess_id:(\d+)\r\n/.exec(text);
      if (pid) return Number(pid[1]);
      if (text.startsWith("-NOAUTH") || text.includes("\r\n-NOAUTH")) return 0;
      if (text.length > 60_000) break;
    }
    return undefined;
  } catch {
    return undefined;
  } finally {
    conn.close();
  }
}
