/**
 * main.ts as a child process with only the environment it is given and
 * broad (never `--allow-all`) permission flags, its JSON log lines collected
 * from stdout. The exact flags `deno task start` computes are tested by
 * tests/integration/production_test.ts and permissions_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LogLines, type LogRecord } from "./log_lines.ts";

/** Broad flags that pass Sluice's start-up check for any TCP configuration (unix sockets need `--allow-write`). */
export const PERMISSIONS = [
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-sys=hostname,osRelease",
];

const MAIN = decodeURIComponent(new URL("../../main.ts", import.meta.url).pathname);

/** A running main.ts whose stdout is followed as log lines. */
export interface MainProcess {
  child: Deno.ChildProcess;
  logs: LogLines;
  /** Resolves once the process has exited and its output is read: exit code and stderr. */
  exited(): Promise<{ code: number; stderr: string }>;
  /**
   * Resolves once Sluice logs that it listens. main.ts installs its signal
   * handlers only after that line, so a test that sends a signal first waits
   * for `answering()`.
   */
  listening(): Promise<LogRecord>;
  /** Resolves once a health request over TCP on `port` (default: `PORT`) was answered. */
  answering(port?: string): Promise<void>;
}

/**
 * Starts main.ts with `env` only (LOG_LEVEL defaults to info), extra Deno `flags` and script
 * `args`; or, with `program` (a compiled binary, or another `deno run` line), that command
 * followed by `args`.
 */
export function spawnMain(
  env: Record<string, string>,
  options: { flags?: string[]; args?: string[]; program?: string[] } = {},
): MainProcess {
  const [command, ...leading] = options.program ??
    [Deno.execPath(), "run", ...PERMISSIONS, ...(options.flags ?? []), MAIN];
  const { child, logs, exited } = spawnFollowed(command, {
    args: [...leading, ...(options.args ?? [])],
    env: { LOG_LEVEL: "info", ...env },
    clearEnv: true,
  });
  return {
    child,
    logs,
    exited,
    listening: () => {
      const early = exited().then(({ code, stderr }) =>
        Promise.reject(new Error(`main.ts exited (${code}) before listening: ${stderr}`))
      );
      early.catch(() => {}); // only the race below reports it
      const listens = (r: LogRecord) => r.level === "info" && /listening/i.test(String(r.msg));
      return Promise.race([logs.find(listens, "Sluice listening"), early]);
    },
    answering: async (port = env.PORT) => {
      const response = await fetch(`http://127.0.0.1:${port}/api/v1/streaming/health`);
      if (await response.text() !== "OK") throw new Error(`health: ${response.status}`);
    },
  };
}

/** Runs `check` on a started process, then SIGTERM: a clean exit 0, or SIGKILL if `check` failed. */
export async function stopping(main: MainProcess, check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (error) {
    main.child.kill("SIGKILL");
    await main.exited();
    throw error;
  }
  main.child.kill("SIGTERM");
  const { code, stderr } = await main.exited();
  assert.equal(code, 0, `exit code after SIGTERM; stderr: ${stderr}`);
}

/** A child process whose stdout is followed as log lines. */
export interface FollowedProcess {
  child: Deno.ChildProcess;
  logs: LogLines;
  /** Resolves once the process has exited and its output is read: exit code and stderr. */
  exited(): Promise<{ code: number; stderr: string }>;
}

/** Spawns `program` (stdin closed, stdout followed as log lines, stderr kept). */
export function spawnFollowed(program: string, options: Deno.CommandOptions): FollowedProcess {
  const child = new Deno.Command(program, {
    ...options,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs = new LogLines();
  const stdout = logs.follow(child.stdout);
  const stderr = new Response(child.stderr).text();
  const exited = (async () => {
    const { code } = await child.status;
    await stdout;
    return { code, stderr: await stderr };
  })();
  return { child, logs, exited: () => exited };
}
