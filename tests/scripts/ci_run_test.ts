/**
 * `.ci/run`'s verdict, with a stand-in `deno` on PATH that reports a chosen
 * test summary: a run must fail when tests fail, and also when too few tests
 * ran for the suite to have been run at all.
 */
import assert from "node:assert/strict";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

/** A `deno` that answers --version, passes `task check` and prints $FAKE_SUMMARY for `task test`. */
const FAKE_DENO = `#!/usr/bin/env bash
case "$1 $2" in
  "--version "*) echo "deno 2.0.0 (stand-in)" ;;
  "task test") printf '%s\\n' "$FAKE_SUMMARY"; exit "\${FAKE_STATUS:-0}" ;;
esac
exit 0
`;

/** What grep counts in .ci/run: occurrences of the call in tests/**.ts. */
async function declaredTests(dir = `${ROOT}tests`): Promise<number> {
  let count = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) count += await declaredTests(path);
    else if (entry.name.endsWith(".ts")) {
      count += (await Deno.readTextFile(path)).split("Deno" + ".test(").length - 1;
    }
  }
  return count;
}

async function ciRun(summary: string, status = 0) {
  const bin = await Deno.makeTempDir();
  const logs = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${bin}/deno`, FAKE_DENO, { mode: 0o755 });
    const { code, stdout, stderr } = await new Deno.Command("bash", {
      args: [`${ROOT}.ci/run`],
      env: {
        PATH: `${bin}:${Deno.env.get("PATH")}`,
        CI_LOG_DIR: logs,
        FAKE_SUMMARY: summary,
        FAKE_STATUS: String(status),
      },
      stdin: "null",
    }).output();
    const decoder = new TextDecoder();
    const lines = decoder.decode(stdout).trim().split("\n");
    return { code, last: lines.at(-1), stderr: decoder.decode(stderr) };
  } finally {
    await Deno.remove(bin, { recursive: true });
    await Deno.remove(logs, { recursive: true });
  }
}

Deno.test(".ci/run fails when fewer tests passed than 90% of those declared", async (t) => {
  const declared = await declaredTests();
  const floor = Math.floor(declared * 9 / 10);
  assert.ok(declared > 100, `only ${declared} tests found in tests/`);

  await t.step("no test ran at all", async () => {
    const run = await ciRun("ok | 0 passed | 0 failed (1ms)");
    assert.notEqual(run.code, 0);
    assert.equal(run.last, "0 passed, 0 failed, 0 skipped");
    assert.match(run.stderr, new RegExp(`only 0 tests passed, fewer than the floor of ${floor} `));
  });
  await t.step("one test short of the floor", async () => {
    const run = await ciRun(`ok | ${floor - 1} passed (12 steps) | 0 failed (9s)`);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /tests did not run/);
  });
  await t.step("the floor is enough", async () => {
    const run = await ciRun(`ok | ${floor} passed (12 steps) | 0 failed | 2 ignored (9s)`);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.last, `${floor} passed, 0 failed, 2 skipped`);
  });
  await t.step("a failed test fails the run whatever the count", async () => {
    const run = await ciRun(`FAILED | ${declared} passed | 1 failed (9s)`, 1);
    assert.notEqual(run.code, 0);
    assert.equal(run.last, `${declared} passed, 1 failed, 0 skipped`);
  });
});
