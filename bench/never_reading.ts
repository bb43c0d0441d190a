/**
 * Clients that never read beside clients that do: whether Sluice cuts the
 * first and loses nothing for the second, and what it keeps meanwhile.
 *
 *   deno run --allow-all bench/never_reading.ts [--slow 300] [--clients 100]
 *     [--rate 100] [--duration 60] [--every 5] [--json out.json]
 *
 * Starts a throwaway redis-server and PostgreSQL (scripts/), then main.ts
 * (unpinned, default workers; broad net, env and read permissions), and
 * runs the load generator on the public stream with `--transport
 * mix`: `--clients` readers and `--slow` clients that send their request and
 * never read a byte, half SSE and half WebSocket each. Every `--every`
 * seconds it samples, from outside: the server's ESTABLISHED TCP connections
 * and the bytes the kernel holds unsent for them (`ss`), and from /metrics
 * the connected clients per transport, the slow-client cuts by reason and
 * the resident memory. At the end it prints the samples and the load
 * generator's report (deliveries to the readers, what the never-reading
 * clients found when finally drained, peak RSS).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { freePort } from "../scripts/free_port.ts";
import { startPostgresServer } from "../scripts/postgres_server.ts";
import { startRedisServer } from "../scripts/redis_server.ts";

const ROOT = decodeURIComponent(new URL("..", import.meta.url).pathname);

/** One look at the server from outside. */
export interface Sample {
  seconds: number;
  established: number;
  unsentBytes: number;
  clients: { eventsource: number; websocket: number };
  cuts: Record<string, number>;
  rssBytes: number;
}

/** ESTABLISHED connections and their unsent bytes from `ss -Htn` output. */
export function parseSs(text: string): { established: number; unsentBytes: number } {
  const lines = text.split("\n").filter((line) => line.trim() !== "");
  const unsentBytes = lines.reduce(
    (sum, line) => sum + Number(line.trim().split(/\s+/)[1] ?? 0),
    0,
  );
  return { established: lines.length, unsentBytes };
}

/** The series of a /metrics text this bench reports. */
export function parseMetrics(
  text: string,
): Omit<Sample, "seconds" | "established" | "unsentBytes"> {
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const cuts: Record<string, number> = {};
  for (const match of text.matchAll(/^sluice_slow_client_cuts_total\{reason="(\w+)"\} (\S+)$/gm)) {
    cuts[match[1]] = Number(match[2]);
  }
  return {
    clients: {
      eventsource: value(/^connected_clients\{type="eventsource"\} (\S+)$/m),
      websocket: value(/^connected_clients\{type="websocket"\} (\S+)$/m),
    },
    cuts,
    rssBytes: value(/^process_resident_memory_bytes (\S+)$/m),
  };
}

function sampleLine(s: Sample): string {
  const cuts = Object.entries(s.cuts).map(([reason, n]) => `${reason} ${n}`).join(", ");
  return `t=${s.seconds}s  established ${s.established}, unsent ${
    (s.unsentBytes / 1e6).toFixed(1)
  } MB  clients sse ${s.clients.eventsource} ws ${s.clients.websocket}  cuts: ${cuts}  RSS ${
    (s.rssBytes / 1e6).toFixed(0)
  } MB`;
}

async function ready(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      const response = await fetch(`http://127.0.0.1:${port}/api/v1/streaming/health/ready`);
      if (await response.text() === "OK") return;
    } catch {
      // not listening yet
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("Sluice did not become ready");
}

async function sample(port: number, seconds: number): Promise<Sample> {
  const ss = await new Deno.Command("ss", {
    args: ["-Htn", "state", "established", `( sport = :${port} )`],
  }).output();
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return { seconds, ...parseSs(new TextDecoder().decode(ss.stdout)), ...parseMetrics(metrics) };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      slow: { type: "string", default: "300" },
      clients: { type: "string", default: "100" },
      rate: { type: "string", default: "100" },
      duration: { type: "string", default: "60" },
      every: { type: "string", default: "5" },
      json: { type: "string" },
    },
  });
  const [redis, pg] = await Promise.all([startRedisServer(), startPostgresServer()]);
  const port = freePort();
  const server = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-sys=hostname",
      "--allow-run=ls,getconf",
      `${ROOT}main.ts`,
    ],
    cwd: ROOT,
    clearEnv: true,
    env: {
      NODE_ENV: "production",
      PORT: String(port),
      REDIS_HOST: "127.0.0.1",
      REDIS_PORT: String(redis.port),
      DB_HOST: "127.0.0.1",
      DB_PORT: String(pg.port),
      DB_USER: pg.user,
      DB_NAME: pg.database,
      DB_PASS: "",
      LOG_LEVEL: "warn",
      PATH: Deno.env.get("PATH") ?? "",
    },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const samples: Sample[] = [];
  try {
    await ready(port);
    const started = performance.now();
    let loading = true;
    const sampler = (async () => {
      while (loading) {
        await new Promise((resolve) => setTimeout(resolve, Number(values.every) * 1000));
        const seconds = Math.round((performance.now() - started) / 1000);
        samples.push(await sample(port, seconds));
        console.log(sampleLine(samples.at(-1)!));
      }
    })();
    const report = `${await Deno.makeTempDir()}/loadgen.json`;
    const load = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        `${ROOT}bench/loadgen.ts`,
        ...["--url", `http://127.0.0.1:${port}`, "--redis", redis.url],
        ...["--server-pid", String(server.pid), "--transport", "mix", "--stream", "public"],
        ...["--clients", values.clients, "--slow", values.slow, "--rate", values.rate],
        ...["--payload-bytes", "1500", "--duration", values.duration, "--drain-ms", "5000"],
        ...["--quiet", "--json", report],
      ],
      cwd: ROOT,
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    loading = false;
    await sampler;
    if (!load.success) throw new Error(`the load generator failed (${load.code})`);
    const result = { samples, loadgen: JSON.parse(await Deno.readTextFile(report)) };
    if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(result, null, 2));
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await Promise.all([redis.stop(), pg.stop()]);
  }
}
