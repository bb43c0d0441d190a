/**
 * `deno task dev` as a newcomer runs it: the printed instructions lead to a
 * live stream (the SSE command, the publish task), and Ctrl-C stops Sluice,
 * Redis and PostgreSQL. Someone without `deno` on PATH (who followed the
 * README with `npx -y deno@2`) is shown commands that start with npx, and
 * those work too.
 */
import assert from "node:assert/strict";
import { SseReader } from "../_support/clients.ts";
import { denoCommand } from "../../scripts/dev.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const decoder = new TextDecoder();
/** Not running under npx, whatever ran this test (`npx -y deno@2 task test` sets it). */
const NOT_NPX = { npm_command: "" };

/** Collects a child's stdout and resolves once it holds `needle`. */
async function waitForOutput(
  stream: ReadableStream<Uint8Array>,
  needle: string,
  timeoutMs: number,
): Promise<string> {
  let text = "";
  const reader = stream.getReader();
  const deadline = setTimeout(() => reader.cancel(), timeoutMs);
  try {
    while (!text.includes(needle)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`output ended without ${JSON.stringify(needle)}:\n${text}`);
      text += decoder.decode(value, { stream: true });
    }
    // The instructions block ends with its closing rule; read up to it.
    while (text.split("────").length < 3) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    return text;
  } finally {
    clearTimeout(deadline);
    reader.releaseLock();
  }
}

async function refused(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return false;
  } catch {
    return true;
  }
}

/** A running dev stack and what it printed. */
interface Dev {
  out: string;
  port: number;
  redisUrl: string;
  /** The printed command that replays the demo messages. */
  publishCommand: string;
  /** Ctrl-C: asserts a clean exit and that Sluice, Redis and PostgreSQL are gone. */
  interrupt(): Promise<void>;
  kill(): Promise<void>;
}

async function startDev(
  command: string,
  args: string[],
  env: Record<string, string>,
): Promise<Dev> {
  const dev = new Deno.Command(command, {
    args,
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const kill = async () => {
    try {
      dev.kill("SIGKILL");
    } catch {
      // already exited
    }
    await dev.stdout.cancel().catch(() => {});
    await dev.status;
  };
  try {
    const out = await waitForOutput(dev.stdout, "Sluice is up on http://127.0.0.1:", 120_000);
    const port = Number(out.match(/Sluice is up on http:\/\/127\.0\.0\.1:(\d+)/)![1]);
    const redisUrl = out.match(/Redis\s+(redis:\/\/\S+)/)![1];
    const pgPort = Number(
      out.match(/PostgreSQL\s+postgres:\/\/[^:]+:?[^@]*@127\.0\.0\.1:(\d+)/)![1],
    );
    assert.match(out, /curl -N -H 'Authorization: Bearer token-alice' \S+\/public/);
    const publishCommand = out.match(/^ *(\S.* task publish --redis redis:\/\/\S+)$/m)![1];
    return {
      out,
      port,
      redisUrl,
      publishCommand,
      interrupt: async () => {
        dev.kill("SIGINT");
        assert.equal((await dev.status).code, 0);
        const ports = [port, Number(new URL(redisUrl).port), pgPort];
        for (const p of ports) assert.ok(await refused(p), `port ${p} still open`);
      },
      kill,
    };
  } catch (error) {
    await kill();
    throw error;
  }
}

/**
 * What the instructions say: watch alice's public stream (as the printed curl
 * does), paste the printed publish command into a shell with `env`, and see
 * the first demo message arrive.
 */
async function followPublish(dev: Dev, env: Record<string, string>): Promise<void> {
  await using sse = await SseReader.open(
    `http://127.0.0.1:${dev.port}/api/v1/streaming/public`,
    { Authorization: "Bearer token-alice" },
  );
  await sse.contains(":)\n");
  const publish = await new Deno.Command("/bin/sh", {
    args: ["-c", `${dev.publishCommand} --delay-ms 0`],
    cwd: ROOT,
    env,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(publish.code, 0, decoder.decode(publish.stderr));
  await sse.contains('event: update\ndata: {"id":"115000000000000001"');
}

/** A PATH like this one with every directory holding `deno` replaced by a copy without it. */
async function pathWithoutDeno(tmp: string): Promise<string> {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir !== "");
  const result: string[] = [];
  for (const [i, dir] of dirs.entries()) {
    if (!(await Deno.stat(`${dir}/deno`).then(() => true, () => false))) {
      result.push(dir);
      continue;
    }
    const shadow = `${tmp}/path${i}`;
    await Deno.mkdir(shadow);
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name !== "deno") {
        await Deno.symlink(`${dir}/${entry.name}`, `${shadow}/${entry.name}`);
      }
    }
    result.push(shadow);
  }
  return result.join(":");
}

Deno.test("dev prints deno commands when deno is on PATH and npx ones otherwise or under npx", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${tmp}/with`);
    await Deno.mkdir(`${tmp}/without`);
    await Deno.writeTextFile(`${tmp}/with/deno`, "#!/bin/sh\n", { mode: 0o755 });
    await Deno.writeTextFile(`${tmp}/without/deno`, "not executable\n", { mode: 0o644 });
    const cases: Array<[Record<string, string>, string]> = [
      [{ PATH: `${tmp}/without:${tmp}/with` }, "deno"],
      [{ PATH: `${tmp}/without` }, "npx -y deno@2"],
      [{}, "npx -y deno@2"],
      [{ PATH: `${tmp}/with`, npm_command: "exec" }, "npx -y deno@2"],
    ];
    for (const [env, expected] of cases) {
      assert.equal(denoCommand((name) => env[name]), expected, JSON.stringify(env));
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("deno task dev starts a working stack, its instructions stream events, Ctrl-C stops it all", async () => {
  const dev = await startDev("deno", ["task", "dev"], NOT_NPX);
  try {
    assert.equal(dev.publishCommand, `deno task publish --redis ${dev.redisUrl}`);
    assert.match(dev.out, /^ {2}deno eval "const ws = new WebSocket/m);

    await followPublish(dev, {});
    await dev.interrupt();
  } finally {
    await dev.kill();
  }
});

Deno.test("Without deno on PATH, dev prints npx commands, and the printed publish command works", async () => {
  const tmp = await Deno.makeTempDir();
  const PATH = await pathWithoutDeno(tmp);
  const which = await new Deno.Command("/bin/sh", {
    args: ["-c", "command -v deno"],
    env: { PATH },
    stdout: "null",
  }).output();
  assert.notEqual(which.code, 0, "the PATH of this test has no deno");
  const dev = await startDev(Deno.execPath(), ["run", "--allow-all", "scripts/dev.ts"], {
    ...NOT_NPX,
    PATH,
  });
  try {
    assert.equal(dev.publishCommand, `npx -y deno@2 task publish --redis ${dev.redisUrl}`);
    assert.match(dev.out, /^ {2}npx -y deno@2 eval "const ws = new WebSocket/m);
    assert.doesNotMatch(dev.out, /^ {2}deno /m);

    await followPublish(dev, { PATH }); // a shell without deno: npx provides deno@2
    await dev.interrupt();
  } finally {
    await dev.kill();
    await Deno.remove(tmp, { recursive: true });
  }
});
