/**
 * `deno task dev`: a throwaway redis-server and PostgreSQL (seeded with the
 * demo accounts: alice has token `token-alice`), then Sluice itself
 * (`main.ts`, with Mastodon's environment variables pointing at them). Once
 * Sluice answers its health check, prints copy-paste commands to watch and
 * feed the streams. SIGINT/SIGTERM (or Sluice exiting) stops everything it
 * started and removes the temporary directories.
 *
 * The printed commands run Deno the way the reader can: `deno …` when their
 * shell has `deno` on PATH, `npx -y deno@2 …` when it does not or when this
 * task itself runs under npx (whose PATH holds a `deno` the shell lacks).
 *
 * @module
 */
import { type PostgresServer, startPostgresServer } from "./postgres_server.ts";
import { type RedisServer, startRedisServer } from "./redis_server.ts";

const ROOT = decodeURIComponent(new URL("../", import.meta.url).pathname);
const PREFERRED_PORT = 4000;
const HEALTH_TIMEOUT_MS = 30_000;
const HEALTH_POLL_MS = 100;
const STOP_DEADLINE_MS = 10_000;
const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM"];
/** How the README runs Deno without installing it. */
const NPX_DENO = "npx -y deno@2";

/** Variables that would override ours (from the shell or a `.env`), blanked for the child. */
const BLANKED = [
  "SOCKET",
  "DATABASE_URL",
  "DB_SSLMODE",
  "REDIS_URL",
  "REDIS_SENTINELS",
  "REDIS_SENTINEL_MASTER",
  "REDIS_USER",
  "REDIS_USERNAME",
  "REDIS_PASSWORD",
  "REDIS_NAMESPACE",
];

async function main(): Promise<number> {
  const stopRequested = Promise.withResolvers<string>();
  let stopping = false;
  const onSignal = (signal: Deno.Signal) => () => {
    stopping = true;
    stopRequested.resolve(signal);
  };
  const listeners = SIGNALS.map((signal) => [signal, onSignal(signal)] as const);
  for (const [signal, listener] of listeners) Deno.addSignalListener(signal, listener);
  await using stack = new AsyncDisposableStack();
  stack.defer(() => {
    for (const [signal, listener] of listeners) Deno.removeSignalListener(signal, listener);
  });

  say("starting redis-server and PostgreSQL…");
  const redis = stack.use(await startRedisServer());
  const postgres = stack.use(await startPostgresServer());
  if (stopping) return 0;
  const port = pickPort(PREFERRED_PORT);
  const sluice = spawnSluice(port, redis, postgres);
  stack.defer(() => stopChild(sluice));
  const exited = sluice.status.then((status) => `exited with code ${status.code}`);

  const healthy = await waitForHealth(port, Promise.race([exited, stopRequested.promise]));
  const deno = denoCommand((name) => Deno.env.get(name));
  if (healthy) printInstructions({ port, redis, postgres, deno });
  const reason = await Promise.race([exited, stopRequested.promise]);
  say(`${reason.startsWith("SIG") ? `got ${reason}` : `Sluice ${reason}`}; stopping everything…`);
  if (stopping) return 0; // disposing the stack stops Sluice, then Redis and PostgreSQL
  return (await sluice.status).code || 1;
}

function spawnSluice(
  port: number,
  redis: RedisServer,
  postgres: PostgresServer,
): Deno.ChildProcess {
  const env: Record<string, string> = Deno.env.toObject();
  for (const name of BLANKED) env[name] = "";
  Object.assign(env, {
    NODE_ENV: "development",
    PORT: String(port),
    BIND: "127.0.0.1",
    REDIS_HOST: "127.0.0.1",
    REDIS_PORT: String(redis.port),
    REDIS_DB: "0",
    DB_HOST: "127.0.0.1",
    DB_PORT: String(postgres.port),
    DB_USER: postgres.user,
    DB_NAME: postgres.database,
    DB_PASS: "",
  });
  const permissions = [
    "--allow-net",
    "--allow-env",
    "--allow-read",
    "--allow-sys=hostname,osRelease",
  ];
  say(`starting Sluice on http://127.0.0.1:${port}…`);
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, "main.ts"],
    cwd: ROOT,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
}

/** Polls the health endpoint until it answers OK; false if `gaveUp` settles first or time runs out. */
async function waitForHealth(port: number, gaveUp: Promise<string>): Promise<boolean> {
  let done = false;
  gaveUp.then(() => done = true);
  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  while (!done && Date.now() < deadline) {
    if (await answersOk(`http://127.0.0.1:${port}/api/v1/streaming/health`)) return true;
    await new Promise((resolve) => setTimeout(resolve, HEALTH_POLL_MS));
  }
  if (!done) say(`Sluice did not answer its health check within ${HEALTH_TIMEOUT_MS} ms`);
  return false;
}

async function answersOk(url: string): Promise<boolean> {
  try {
    const response = await fetch(url);
    return response.ok && (await response.text()) === "OK";
  } catch {
    return false;
  }
}

/**
 * The command that starts Deno for the person reading the instructions: `deno` when it is
 * on their PATH, else `npx -y deno@2`. Under npx (`npm_command=exec`) PATH holds npx's own
 * `deno`, which the reader's shell does not have, so npx's form is printed then too.
 */
export function denoCommand(env: (name: string) => string | undefined): string {
  if (env("npm_command") === "exec") return NPX_DENO;
  const dirs = (env("PATH") ?? "").split(":").filter((dir) => dir !== "");
  return dirs.some((dir) => isExecutable(`${dir}/deno`)) ? "deno" : NPX_DENO;
}

function isExecutable(path: string): boolean {
  try {
    const info = Deno.statSync(path);
    return info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0;
  } catch {
    return false;
  }
}

interface Stack {
  port: number;
  redis: RedisServer;
  postgres: PostgresServer;
  /** How the reader starts Deno (`denoCommand`). */
  deno: string;
}

function printInstructions({ port, redis, postgres, deno }: Stack): void {
  const base = `http://127.0.0.1:${port}/api/v1/streaming`;
  const auth = `-H 'Authorization: Bearer token-alice'`;
  const ws = `ws://127.0.0.1:${port}/api/v1/streaming?access_token=token-alice&stream=user`;
  const wsScript = `const ws = new WebSocket('${ws}'); ` +
    `ws.onopen = () => ws.send(JSON.stringify({ type: 'subscribe', stream: 'public' })); ` +
    `ws.onmessage = (e) => console.log(e.data);`;
  console.log(`
──────────────────────────────────────────────────────────────────────────────
Sluice is up on http://127.0.0.1:${port}   (Ctrl-C stops Sluice, Redis and PostgreSQL)
  Redis       ${redis.url}
  PostgreSQL  ${postgres.url}   (socket dir ${postgres.socketDir})
  Demo users  alice (token-alice), bob (token-bob)

Watch alice's streams (SSE):
  curl -N ${auth} ${base}/public
  curl -N ${auth} ${base}/user

Watch over WebSocket (user stream, then subscribes to public):
  ${deno} eval "${wsScript}"

Replay the demo messages (test_data/demo/) into Redis:
  ${deno} task publish --redis ${redis.url}
──────────────────────────────────────────────────────────────────────────────
`);
}

/** SIGTERM, then SIGKILL after a deadline; fine if it has already exited. */
async function stopChild(child: Deno.ChildProcess): Promise<void> {
  const kill = (signal: Deno.Signal) => {
    try {
      child.kill(signal);
    } catch {
      // already exited
    }
  };
  kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => {
    timer = setTimeout(() => resolve("late"), STOP_DEADLINE_MS);
  });
  if (await Promise.race([child.status, late]) === "late") kill("SIGKILL");
  clearTimeout(timer);
  await child.status;
}

function pickPort(preferred: number): number {
  for (const port of [preferred, 0]) {
    try {
      const listener = Deno.listen({ hostname: "127.0.0.1", port });
      const { port: chosen } = listener.addr as Deno.NetAddr;
      listener.close();
      return chosen;
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
    }
  }
  throw new Error("no free port");
}

function say(message: string): void {
  console.error(`[dev] ${message}`);
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (error) {
    say(`failed: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
