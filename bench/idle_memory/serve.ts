/**
 * The server side of bench/idle_memory.ts: Sluice (through main.ts's
 * `start()`) or the ceiling, in this process, on a free port. It prints
 * `{"port":…}`, then answers each `measure` line on stdin with
 * `Deno.memoryUsage()` after two full collections (run with
 * `--v8-flags=--expose-gc`); `snapshot PATH` also writes a heap snapshot
 * there first. It stops at the end of stdin.
 *
 * @module
 */
import { parseArgs } from "node:util";
import v8 from "node:v8";
import { start } from "../../main.ts";
import { parseConfig } from "../../src/config.ts";
import { silentLogger } from "../../src/log.ts";
import { portOf } from "../../src/server.ts";
import { startCeiling } from "../ceiling.ts";
import type { MemorySample } from "./report.ts";

/** `Deno.memoryUsage()` plus the young generation's size, which V8 grows and keeps. */
function sample(): MemorySample {
  const young = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
  return { ...Deno.memoryUsage(), newSpace: young?.space_size ?? 0 };
}

/** Runs the server named by `args` until stdin ends. */
export async function idleServe(args: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      "redis-port": { type: "string" },
      "pg-port": { type: "string" },
      "pg-user": { type: "string" },
      "pg-db": { type: "string" },
      channel: { type: "string" },
    },
  });
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error("run with --v8-flags=--expose-gc");
  let port: number, close: () => Promise<void>;
  if (positionals[0] === "ceiling") {
    const ceiling = await startCeiling({
      port: 0,
      redis: `redis://127.0.0.1:${values["redis-port"]}`,
      channel: values.channel,
    });
    [port, close] = [ceiling.port, ceiling.close];
  } else {
    const vars: Record<string, string> = {
      NODE_ENV: "production",
      REDIS_HOST: "127.0.0.1",
      REDIS_PORT: values["redis-port"]!,
      DB_HOST: "127.0.0.1",
      DB_PORT: values["pg-port"]!,
      DB_USER: values["pg-user"]!,
      DB_NAME: values["pg-db"]!,
      DB_PASS: "",
    };
    const config = parseConfig((k) => vars[k]);
    const listen = { kind: "tcp" as const, hostname: "127.0.0.1", port: 0 };
    const sluice = start({ ...config, listen }, silentLogger);
    await sluice.subscriber.ready();
    [port, close] = [portOf(sluice.server), () => sluice.close()];
  }
  console.log(JSON.stringify({ port }));
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream());
  for await (const chunk of lines) {
    for (const line of chunk.split("\n").map((l) => l.trim()).filter(Boolean)) {
      gc();
      gc();
      const [command, path] = line.split(" ");
      if (command === "snapshot") v8.writeHeapSnapshot(path);
      console.log(JSON.stringify(sample()));
    }
  }
  await Promise.race([close(), new Promise((resolve) => setTimeout(resolve, 2_000))]);
  Deno.exit(0);
}
