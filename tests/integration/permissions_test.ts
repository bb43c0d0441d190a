/**
 * main.ts run directly with the command `--print-command` prints, one flag
 * short: start-up stops before connecting to anything, with one line naming
 * the flag to add and why. The full command starts, and without the optional
 * `--allow-run` only the descriptor series are left out.
 */
import assert from "node:assert/strict";
import { freePort } from "../../scripts/free_port.ts";
import { type FollowedProcess, spawnFollowed } from "../_support/main_process.ts";
import { runReadmeCommand } from "../_support/readme_command.ts";

/** Shell words as `shellWord` in scripts/start.ts quotes them (bare, or in single quotes). */
function shellWords(line: string): string[] {
  return [...line.matchAll(/'((?:[^']|'\\'')*)'|(\S+)/g)].map(([, quoted, bare]) =>
    quoted === undefined ? bare : quoted.replaceAll(`'\\''`, "'")
  );
}

/** The printed command without the flag that starts with `prefix`. */
function without(command: string[], prefix: string): string[] {
  const left = command.filter((word) => !word.startsWith(prefix));
  assert.equal(left.length, command.length - 1, `one ${prefix} flag in ${command.join(" ")}`);
  return left;
}

function run(command: string[], cwd: string): FollowedProcess {
  return spawnFollowed(command[0], {
    args: command.slice(1),
    cwd,
    env: { NODE_ENV: "production", PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    clearEnv: true,
  });
}

Deno.test("A missing permission stops start-up with one line naming the flag", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "sluice-permissions-" });
  const pgDir = `${dir}/postgresql`;
  const port = freePort();
  await Deno.writeTextFile(
    `${dir}/.env.production`,
    `PORT=${port}\nREDIS_PORT=${freePort()}\nDB_HOST=${pgDir}\nDB_PORT=5432\n`,
  );
  try {
    const printed = await runReadmeCommand(dir, ["--print-command"]);
    assert.equal((await printed.exited()).code, 0);
    const command = shellWords(printed.logs.other.join(" "));
    const pgSocket = `${pgDir}/.s.PGSQL.5432`;
    const rows: [string, string][] = [
      [
        "--allow-write=",
        `Missing permission: add --allow-write=${pgSocket} (PostgreSQL's unix socket)`,
      ],
      [
        "--allow-sys=",
        "Missing permission: add --allow-sys=hostname (the hostname field of log lines)",
      ],
      [
        "--allow-read=",
        `Missing permission: add --allow-read=${dir}/.env.production (the env file)`,
      ],
      ["--allow-env=", "Missing permissions: add --allow-env=NODE_ENV,LOG_LEVEL,PORT,"],
    ];
    for (const [flag, line] of rows) {
      await t.step(`without ${flag}…`, async () => {
        const main = run(without(command, flag), dir);
        const { code, stderr } = await main.exited();
        assert.equal(code, 1);
        const lines = stderr.trim().split("\n");
        assert.equal(lines.length, 1, stderr);
        assert.ok(lines[0].startsWith(line), `${lines[0]}\ndoes not start with\n${line}`);
        assert.deepEqual([...main.logs.records, ...main.logs.other], [], "nothing ran");
      });
    }
    await t.step(
      "without --allow-run=ls,getconf it starts, without the descriptor series",
      async () => {
        const main = run(without(command, "--allow-run="), dir);
        await main.logs.find((r) => /listening on http/.test(String(r.msg)), "listening");
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        assert.match(text, /^process_resident_memory_bytes \d+$/m);
        assert.doesNotMatch(text, /process_open_fds|process_max_fds|NaN/);
        const warning = await main.logs.find((r) => /left out/.test(String(r.msg)), "warning");
        assert.equal(warning.level, "warn");
        assert.match(String(warning.msg), /--allow-run=ls,getconf/);
        main.child.kill("SIGTERM");
        assert.equal((await main.exited()).code, 0);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
