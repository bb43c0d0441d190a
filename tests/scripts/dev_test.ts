/**
 * `deno task dev` as a newcomer runs it: the printed instructions lead to a
 * live stream (the SSE command, the publish task), and Ctrl-C stops Sluice,
 * Redis and PostgreSQL.
 */
import assert from "node:assert/strict";
import { SseReader } from "../_support/clients.ts";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);
const decoder = new TextDecoder();

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

Deno.test("deno task dev starts a working stack, its instructions stream events, Ctrl-C stops it all", async () => {
  const dev = new Deno.Command("deno", {
    args: ["task", "dev"],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const out = await waitForOutput(dev.stdout, "Sluice is up on http://127.0.0.1:", 120_000);
    const port = Number(out.match(/Sluice is up on http:\/\/127\.0\.0\.1:(\d+)/)![1]);
    const redisUrl = out.match(/Redis\s+(redis:\/\/\S+)/)![1];
    const redisPort = Number(new URL(redisUrl).port);
    const pgPort = Number(
      out.match(/PostgreSQL\s+postgres:\/\/[^:]+:?[^@]*@127\.0\.0\.1:(\d+)/)![1],
    );
    assert.match(out, /curl -N -H 'Authorization: Bearer token-alice' \S+\/public/);
    assert.match(out, /deno task publish --redis redis:\/\//);

    // What the instructions say: watch alice's public stream, then replay the demo messages.
    const sse = await SseReader.open(`http://127.0.0.1:${port}/api/v1/streaming/public`, {
      Authorization: "Bearer token-alice",
    });
    await sse.contains(":)\n");
    const publish = await new Deno.Command("deno", {
      args: ["task", "publish", "--redis", redisUrl, "--delay-ms", "0"],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(publish.code, 0, decoder.decode(publish.stderr));
    await sse.contains('event: update\ndata: {"id":"115000000000000001"');
    await sse.close();

    dev.kill("SIGINT");
    const status = await dev.status;
    assert.equal(status.code, 0);
    for (const p of [port, redisPort, pgPort]) assert.ok(await refused(p), `port ${p} still open`);
  } finally {
    try {
      dev.kill("SIGKILL");
    } catch {
      // already exited
    }
    await dev.stdout.cancel().catch(() => {});
    await dev.status;
  }
});
