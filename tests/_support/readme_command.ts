/**
 * The README's production start command, taken from README.md itself (the
 * first `sh` block under "Start command and permissions") and run as a real
 * process, so the documented command is the tested one. The only change is
 * where Sluice lives: the README's `/opt/sluice` becomes this checkout.
 *
 * @module
 */
import { type FollowedProcess, spawnFollowed } from "./main_process.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname).replace(/\/$/, "");
const HEADING = "### Start command and permissions";
const INSTALLED_AT = "/opt/sluice";

/** The command line as written in the README. */
export async function readmeCommandLine(): Promise<string> {
  const readme = await Deno.readTextFile(`${ROOT}/README.md`);
  const section = readme.slice(readme.indexOf(HEADING));
  const block = /```sh\n([^`]*)```/.exec(section)?.[1].trim();
  if (!section.startsWith(HEADING) || !block || block.includes("\n")) {
    throw new Error(`README.md: no one-line sh block under "${HEADING}"`);
  }
  return block;
}

/** `VAR=value … program args…` (no quoting: the README command needs none). */
export function splitCommand(line: string): { env: Record<string, string>; argv: string[] } {
  const words = line.split(/\s+/);
  const env: Record<string, string> = {};
  while (/^[A-Z_][A-Z0-9_]*=/.test(words[0])) {
    const [name, ...value] = words.shift()!.split("=");
    env[name] = value.join("=");
  }
  return { env, argv: words.map((word) => word.replaceAll(INSTALLED_AT, ROOT)) };
}

/**
 * Runs the README command in `cwd` with only PATH and HOME from this process
 * (Deno needs them), the command's own variables and `extraArgs` appended.
 */
export async function runReadmeCommand(
  cwd: string,
  extraArgs: string[] = [],
): Promise<FollowedProcess> {
  return runCommandLine(await readmeCommandLine(), cwd, extraArgs);
}

/** Runs a README command `line` as {@link runReadmeCommand} runs the start command. */
export function runCommandLine(
  line: string,
  cwd: string,
  extraArgs: string[] = [],
): FollowedProcess {
  const { env, argv } = splitCommand(line);
  const inherited = Object.fromEntries(
    ["PATH", "HOME", "DENO_DIR"].flatMap((name) => {
      const value = Deno.env.get(name);
      return value === undefined ? [] : [[name, value]];
    }),
  );
  return spawnFollowed(argv[0], {
    args: [...argv.slice(1), ...extraArgs],
    cwd,
    env: { ...inherited, ...env },
    clearEnv: true,
  });
}
