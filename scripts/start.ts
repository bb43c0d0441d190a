/**
 * `deno task start`: runs Sluice with exactly the permissions its
 * configuration needs, so there are no flags to discover.
 *
 *   deno task start [--env-file=PATH] [--print-command]
 *   deno task compile [--env-file=PATH] [--print-command]   (scripts/start.ts --compile)
 *
 * Reads the configuration as main.ts will (the same environment, env file
 * and working directory: the directory `deno task` was started from, which
 * it passes as INIT_CWD), works out the narrowest flags with
 * `src/permissions.ts`, logs the command at debug level and runs
 * `deno run <flags> main.ts` there, forwarding SIGTERM and SIGINT and
 * exiting with its exit code. `--print-command` prints that command (with
 * absolute paths) instead of running it, e.g. for a systemd unit's
 * `ExecStart=`. Other arguments go to main.ts. With `--compile` it builds
 * `dist/sluice` instead (`deno compile` with the same flags, baked in: a
 * compiled binary takes no permission flags at run time, so it is built for
 * the configuration of the environment it is built in).
 *
 * Its own flags (deno.json): `--allow-env` for Sluice's variables and
 * INIT_CWD, `--allow-read` (the env file may be anywhere), `--allow-run=deno`.
 *
 * @module
 */
import { type Config, ConfigError, envFileArgument, loadConfig } from "../src/config.ts";
import { createLogger } from "../src/log.ts";
import { permissionFlags, requiredPermissions } from "../src/permissions.ts";

const MAIN = decodeURIComponent(new URL("../main.ts", import.meta.url).pathname);
const DENO_JSON = decodeURIComponent(new URL("../deno.json", import.meta.url).pathname);
const WORKER = decodeURIComponent(new URL("../src/worker.ts", import.meta.url).pathname);
const PRINT = "--print-command";
const COMPILE = "--compile";
const OUTPUT = decodeURIComponent(new URL("../dist/sluice", import.meta.url).pathname);

/** The command that runs main.ts in `cwd` with the permissions `config` needs. */
export function serverCommand(
  options: { deno: string; config: Readonly<Config>; cwd: string; args: readonly string[] },
): string[] {
  const flags = permissionFlags(requiredPermissions(options.config, { cwd: options.cwd }));
  return [
    options.deno,
    "run",
    "--no-prompt",
    "--unstable-net", // SO_REUSEPORT: the workers share the address
    `--config=${DENO_JSON}`,
    ...flags,
    MAIN,
    ...options.args,
  ];
}

/** The `deno compile` command that builds `output` with the permissions `config` needs. */
export function compileCommand(
  options: { deno: string; config: Readonly<Config>; cwd: string; output?: string },
): string[] {
  const flags = permissionFlags(requiredPermissions(options.config, { cwd: options.cwd }));
  return [
    options.deno,
    "compile",
    "--no-prompt",
    "--unstable-net",
    `--config=${DENO_JSON}`,
    ...flags,
    `--include=${WORKER}`, // loaded by URL, not imported: the graph would leave it out
    `--output=${options.output ?? OUTPUT}`,
    MAIN,
  ];
}

/** One shell word: quoted only when it has to be. */
export function shellWord(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", `'\\''`)}'`;
}

/** The Deno to run: this one when allowed, else `deno` from PATH (what `--allow-run=deno` allows). */
function deno(): string {
  const self = Deno.execPath();
  return Deno.permissions.querySync({ name: "run", command: self }).state === "granted"
    ? self
    : "deno";
}

async function run(command: string[], cwd: string): Promise<number> {
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    cwd,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    Deno.addSignalListener(signal, () => child.kill(signal));
  }
  return (await child.status).code;
}

/** Stops with one line on stderr and exit code 1. */
function refuse(message: string): never {
  console.error(message);
  Deno.exit(1);
}

if (import.meta.main) {
  const printOnly = Deno.args.includes(PRINT);
  const compile = Deno.args.includes(COMPILE);
  const args = Deno.args.filter((arg) => arg !== PRINT && arg !== COMPILE);
  const cwd = Deno.env.get("INIT_CWD") || Deno.cwd();
  Deno.chdir(cwd);
  let config: Readonly<Config>;
  let command: string[];
  try {
    config = loadConfig({ envFile: envFileArgument(args), readFiles: false });
    const program = printOnly ? Deno.execPath() : deno();
    command = compile
      ? compileCommand({ deno: program, config, cwd })
      : serverCommand({ deno: program, config, cwd, args });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    refuse(err.message);
  }
  const line = command.map(shellWord).join(" ");
  if (printOnly) {
    console.log(line);
    Deno.exit(0);
  }
  createLogger({ level: config.logLevel, name: "streaming" }).debug("Starting Sluice", {
    command: line,
  });
  try {
    Deno.exit(await run(command, cwd));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    refuse(
      `Cannot start ${command[0]}: not found on PATH (run the command --print-command prints)`,
    );
  }
}
