/**
 * `deno task compile` as a release runs it: the task's own command line,
 * built into a temporary directory, the result checked to be Sluice
 * (`--version`) and then run against throwaway Redis and PostgreSQL.
 *
 * `deno compile` needs Deno's `denort` runtime, which it downloads unless
 * `DENORT_BIN` names one; this machine cannot download it, so the build test
 * runs only when `DENORT_BIN` is set, and is reported as ignored otherwise.
 */
import assert from "node:assert/strict";
import denoJson from "../../deno.json" with { type: "json" };
import { assertProgramServes } from "../_support/serves.ts";
import { serviceEnv, startServices } from "../_support/stack.ts";
import { runCommandLine, runReadmeCommand } from "../_support/readme_command.ts";
import { freePort } from "../../scripts/free_port.ts";
import { compileCommand, serverCommand } from "../../scripts/start.ts";
import { parseConfig } from "../../src/config.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const decoder = new TextDecoder();
const DENORT_BIN = Deno.env.get("DENORT_BIN");
const TARGET = Deno.build.target;
const DENORT_ZIP = `https://dl.deno.land/release/v${Deno.version.deno}/denort-${TARGET}.zip`;
/** What `--version` prints in a binary built from this checkout by this Deno. */
const VERSION_LINE = `sluice ${denoJson.version} (deno ${Deno.version.deno})`;

function skipReason(): string | undefined {
  const hint =
    `set DENORT_BIN to the denort of Deno ${Deno.version.deno} (${DENORT_ZIP}) to run it`;
  if (!DENORT_BIN) {
    return `DENORT_BIN is not set; deno compile would download denort, which needs network ` +
      `access; ${hint}`;
  }
  try {
    if (Deno.statSync(DENORT_BIN).isFile) return undefined;
    return `DENORT_BIN=${DENORT_BIN} is not a file; ${hint}`;
  } catch {
    return `DENORT_BIN=${DENORT_BIN} does not exist; ${hint}`;
  }
}

const skip = skipReason();
if (skip) console.log(`compile_test.ts: the build test is ignored: ${skip}`);

/** Builds the executable for `env`'s configuration as `deno task compile` does, with `denort`. */
async function build(output: string, denort: string, env: Record<string, string>): Promise<void> {
  const config = { ...parseConfig((name) => env[name]), envFile: ".env.production" };
  const [deno, ...args] = compileCommand({ deno: Deno.execPath(), config, cwd: ROOT, output });
  const { code, stderr } = await new Deno.Command(deno, {
    args,
    cwd: ROOT,
    env: { DENORT_BIN: denort, NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, `deno compile failed:\n${decoder.decode(stderr)}`);
}

/** Throws unless `binary --version` names Sluice of this checkout. */
async function assertIsSluice(binary: string, denort: string): Promise<void> {
  const { stdout } = await new Deno.Command(binary, {
    args: ["--version"],
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).output();
  const first = decoder.decode(stdout).split("\n")[0];
  if (!first.startsWith("sluice ")) {
    throw new Error(
      `DENORT_BIN=${denort} is not a denort runtime: the binary built with it answers --version ` +
        `with ${JSON.stringify(first)}, not ${JSON.stringify(VERSION_LINE)}; a binary built on ` +
        `the full deno is a plain Deno, not Sluice. Use ${DENORT_ZIP}, unzipped.`,
    );
  }
  assert.equal(first, VERSION_LINE, `denort of another Deno version than ${Deno.version.deno}?`);
}

Deno.test("The compile task bakes in exactly the flags the start task runs main.ts with", () => {
  assert.match(denoJson.tasks.compile, /scripts\/start\.ts --compile$/);
  assert.equal(
    denoJson.tasks.compile.replace(/ --compile$/, ""),
    denoJson.tasks.start,
    "the same launcher, with the same flags of its own",
  );
  const env: Record<string, string> = {
    NODE_ENV: "production",
    DB_HOST: "/var/run/postgresql",
    REDIS_URL: "unix:///var/run/redis/redis-server.sock",
    SOCKET: "/run/sluice/sluice.sock",
  };
  const config = parseConfig((name) => env[name]);
  const flags = (command: string[]) => command.filter((word) => word.startsWith("--allow-"));
  const compiled = compileCommand({ deno: "deno", config, cwd: "/home/mastodon/live" });
  const served = serverCommand({ deno: "deno", config, cwd: "/home/mastodon/live", args: [] });
  assert.deepEqual(flags(compiled), flags(served));
  assert.ok(flags(compiled).some((flag) => flag.startsWith("--allow-write=")), "unix sockets");
  assert.ok(compiled.includes(`--output=${ROOT}dist/sluice`));
});

Deno.test("main.ts --version prints one line naming Sluice and Deno, without reading config", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", `${ROOT}main.ts`, "--version"],
    clearEnv: true,
    env: { PORT: "not a port" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, decoder.decode(stderr));
  assert.equal(decoder.decode(stdout), `${VERSION_LINE}\n`);
  assert.match(VERSION_LINE, /^sluice \d+\.\d+\.\d+\S* \(deno \d+\.\d+\.\d+\S*\)$/);
});

Deno.test("A binary built on the full deno instead of denort is recognised as not Sluice", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await build(`${dir}/sluice`, Deno.execPath(), { PORT: String(freePort()) });
    await assert.rejects(
      assertIsSluice(`${dir}/sluice`, Deno.execPath()),
      /is not a denort runtime: the binary built with it answers --version with "deno /,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "deno task compile builds a Sluice that serves health, SSE and WebSocket",
  ignore: skip !== undefined,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    const services = await startServices();
    try {
      const port = freePort();
      const env = { ...serviceEnv(services), PORT: String(port) };
      await build(`${dir}/sluice`, DENORT_BIN!, env);
      await assertIsSluice(`${dir}/sluice`, DENORT_BIN!);
      await assertProgramServes(services, [`${dir}/sluice`], {}, port);
    } finally {
      await services.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("The README's compile command, with --print-command, builds with the start command's flags", async () => {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const section = readme.slice(readme.indexOf("### Standalone executable"));
  const line = /`(NODE_ENV=production deno task --config \/opt\/sluice\/deno\.json compile)`/
    .exec(section)?.[1];
  assert.ok(line, "the Standalone executable section shows the compile command");
  const dir = await Deno.makeTempDir({ prefix: "sluice-compile-" });
  try {
    await Deno.writeTextFile(
      `${dir}/.env.production`,
      `PORT=4000\nDB_HOST=${dir}/postgresql\nREDIS_URL=unix://${dir}/redis.sock\n`,
    );
    const printed = async (run: ReturnType<typeof runCommandLine>) => {
      const { code, stderr } = await run.exited();
      assert.equal(code, 0, stderr);
      return run.logs.other.join(" ").trim().split(/\s+/);
    };
    const compile = await printed(runCommandLine(line, dir, ["--print-command"]));
    const start = await printed(await runReadmeCommand(dir, ["--print-command"]));
    assert.equal(compile[1], "compile");
    assert.ok(compile.includes(`--output=${ROOT}dist/sluice`), compile.join(" "));
    const flags = (words: string[]) => words.filter((word) => word.startsWith("--allow-"));
    assert.deepEqual(flags(compile), flags(start));
    assert.ok(flags(compile).some((flag) => flag.includes(`unix:${dir}/redis.sock`)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
