/**
 * The offline path, for hosts without registry access: a dependency cache
 * (`DENO_DIR`) filled once with `deno install` where the npm registry is
 * reachable, then Sluice started with `deno run --cached-only` from it. The
 * same command with an empty cache fails at once, so the cache is what made
 * it work.
 */
import assert from "node:assert/strict";
import { spawnMain } from "../_support/main_process.ts";
import { assertProgramServes } from "../_support/serves.ts";
import { serviceEnv, startServices } from "../_support/stack.ts";
import { freePort } from "../../scripts/free_port.ts";
import { serverCommand } from "../../scripts/start.ts";
import { parseConfig } from "../../src/config.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const decoder = new TextDecoder();
/** The command `deno task start --print-command` gives for `env`, with `--cached-only` after `run`. */
function cachedOnly(env: Record<string, string>): string[] {
  // NODE_ENV=production: main.ts reads .env.production from its working directory.
  const config = { ...parseConfig((name) => env[name]), envFile: ".env.production" };
  const [deno, run, ...rest] = serverCommand({
    deno: Deno.execPath(),
    config,
    cwd: ROOT,
    args: [],
  });
  return [deno, run, "--cached-only", ...rest];
}

Deno.test("deno run --cached-only starts Sluice from a DENO_DIR filled by deno install", async () => {
  const denoDir = await Deno.makeTempDir();
  const services = await startServices();
  try {
    const install = await new Deno.Command(Deno.execPath(), {
      args: ["install", "--frozen"],
      cwd: ROOT,
      env: { DENO_DIR: denoDir, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(install.code, 0, decoder.decode(install.stderr) + decoder.decode(install.stdout));

    const port = freePort();
    const env = { ...serviceEnv(services), PORT: String(port) };
    await assertProgramServes(services, cachedOnly(env), { DENO_DIR: denoDir }, port);
  } finally {
    await services.close();
    await Deno.remove(denoDir, { recursive: true });
  }
});

Deno.test("deno run --cached-only with an empty DENO_DIR exits with Deno's missing-package error", async () => {
  const denoDir = await Deno.makeTempDir();
  try {
    const env = { PORT: String(freePort()) };
    const sluice = spawnMain({ ...env, DENO_DIR: denoDir, NO_COLOR: "1" }, {
      program: cachedOnly(env),
    });
    const { code, stderr } = await sluice.exited();
    assert.equal(code, 1, stderr);
    assert.match(stderr, /npm package not found in cache: "pg", --cached-only is specified/);
    assert.deepEqual(sluice.logs.records, [], "Sluice never started");
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});
