/**
 * dist/sluice.service and dist/sluice@.service: systemd accepts them, rates
 * their sandbox at most 2.0, and their ExecStart=, run outside systemd with
 * only the install paths swapped for this machine's, streams an event from
 * Redis through its unix socket with PostgreSQL through its socket directory.
 *
 * systemd is not PID 1 here, so only `systemd-analyze` runs; the sandbox
 * itself is not exercised. `deno task test` installs the Debian package
 * systemd (scripts/ensure_services.sh) when systemd-analyze is missing.
 */
import assert from "node:assert/strict";
import { SseReader } from "../_support/clients.ts";
import {
  demoMessage,
  DENO_BIN,
  fillCache,
  INSTALL,
  installPaths,
  parseUnit,
  RedisMonitor,
  ROOT,
  spawnTemplate,
  startDeployServices,
} from "../_support/deploy.ts";
import { freePort } from "../../scripts/free_port.ts";
import { VARIABLES } from "../../src/config.ts";

const UNITS = ["sluice.service", "sluice@.service"];
const MAX_EXPOSURE = 2.0;

/** What npm:pg 8 reads from the environment (lib/index.js, defaults.js, connection-parameters.js). */
/** node-postgres's fallbacks, granted as a prefix as `src/permissions.ts` grants them. */
const PG_VARIABLES = ["PG*"];

const analyze = await systemdAnalyze();
if (!analyze) {
  console.log("systemd_test: skipped: systemd-analyze not found (apt-get install systemd)");
}

async function systemdAnalyze(): Promise<boolean> {
  try {
    return (await new Deno.Command("systemd-analyze", { args: ["--version"] }).output()).success;
  } catch {
    return false;
  }
}

function readUnit(name: string): Promise<string> {
  return Deno.readTextFile(`${ROOT}/dist/${name}`);
}

async function run(args: string[]): Promise<{ code: number; output: string }> {
  const { code, stdout, stderr } = await new Deno.Command("systemd-analyze", { args }).output();
  const decoder = new TextDecoder();
  return { code, output: decoder.decode(stdout) + decoder.decode(stderr) };
}

Deno.test({
  name: "systemd-analyze verify accepts both units without a warning",
  ignore: !analyze,
  async fn() {
    // verify insists that ExecStart='s binary exists: check copies naming this machine's deno.
    const dir = await Deno.makeTempDir();
    try {
      for (const name of UNITS) {
        const text = await readUnit(name);
        assert.ok(text.includes(DENO_BIN), `${name} runs ${DENO_BIN}`);
        await Deno.writeTextFile(`${dir}/${name}`, text.replaceAll(DENO_BIN, Deno.execPath()));
        const { code, output } = await run(["verify", `${dir}/${name}`]);
        assert.equal(code, 0, output);
        assert.equal(output.trim(), "", `${name}: systemd ignores what it warns about`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "systemd-analyze security --offline=true rates both units at most 2.0",
  ignore: !analyze,
  async fn() {
    for (const name of UNITS) {
      const { code, output } = await run([
        "security",
        "--offline=true",
        `${ROOT}/dist/${name}`,
      ]);
      assert.equal(code, 0, output);
      const match = /Overall exposure level for \S+: (\d+\.\d+)/.exec(output);
      assert.ok(match, `no overall exposure in: ${output}`);
      const exposure = Number(match[1]);
      assert.ok(exposure <= MAX_EXPOSURE, `${name}: exposure ${exposure}\n${output}`);
    }
  },
});

Deno.test("sluice.service is sluice@.service for port 4000", async () => {
  const settings = (text: string) =>
    text.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("#"));
  const template = settings((await readUnit("sluice@.service")).replaceAll("%i", "4000"));
  assert.deepEqual(settings(await readUnit("sluice.service")), template);
});

Deno.test("The units grant every variable Sluice and npm:pg read, and no other", async () => {
  for (const name of UNITS) {
    const flag = parseUnit(await readUnit(name)).argv.find((a) => a.startsWith("--allow-env="));
    assert.ok(flag, `${name} has --allow-env=`);
    const granted = flag.slice("--allow-env=".length).split(",");
    assert.deepEqual([...granted].sort(), [...VARIABLES, ...PG_VARIABLES].sort());
  }
});

Deno.test("The units' header shows how to fill Deno's cache", async () => {
  for (const name of UNITS) {
    const comments = (await readUnit(name)).split("\n").filter((line) => line.startsWith("#"))
      .map((line) => line.slice(1).replace(/\\$/, "")).join(" ");
    assert.ok(comments.replace(/\s+/g, " ").includes(INSTALL), `${name} shows: ${INSTALL}`);
  }
});

Deno.test("The template's ExecStart= streams an event from Redis's unix socket, PostgreSQL through its socket", async () => {
  const services = await startDeployServices();
  const workDir = await Deno.makeTempDir({ prefix: "sluice-live-" });
  const monitor = await RedisMonitor.open(services.redis.port);
  try {
    await Deno.writeTextFile(`${workDir}/.env.production`, services.envFile());
    const paths = await installPaths(services, workDir);
    await fillCache(paths);
    const port = freePort();
    const sluice = await spawnTemplate(paths, port);
    await sluice.listening();
    const url = `http://127.0.0.1:${port}/api/v1/streaming/public?access_token=token-alice`;
    const sse = await SseReader.open(url);
    assert.equal(sse.response.status, 200, "the token was checked in PostgreSQL");
    const { channel, message } = await demoMessage("01-public-update.json");
    await monitor.subscribed(channel).catch((error) => {
      throw new Error(`${error.message}; Sluice logged:\n${sluice.problems()}`);
    });
    await services.client.publish(channel, message);
    await sse.contains('event: update\ndata: {"id":"115000000000000001"');
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const name of ["process_cpu_seconds_total", "process_open_fds", "process_max_fds"]) {
      const value = Number(new RegExp(`^${name} (\\S+)$`, "m").exec(metrics)?.[1]);
      assert.ok(value > 0, `${name} under the unit's permissions: ${value}`);
    }
    await sse.close();
    const { code, stderr } = await sluice.stop();
    assert.equal(code, 0, `SIGTERM is a clean stop: ${stderr}`);
    assert.deepEqual(sluice.logs.filter((r) => r.level === "error"), []);
  } finally {
    await monitor.close();
    await services.close();
    await Deno.remove(workDir, { recursive: true });
  }
});
