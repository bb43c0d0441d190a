/**
 * Replays demo messages to Redis with PUBLISH, the way Mastodon's Rails side
 * does, so a running Sluice has something to stream:
 *
 *   deno task publish [--redis redis://127.0.0.1:6379] [--channel timeline:public]
 *                     [--file test_data/demo/01-public-update.json] [--delay-ms 500]
 *
 * A demo file is `{ "channel": "timeline:public", "message": { "event": …, "payload": … } }`
 * (a bare `{ "event": … }` message works too; it goes to `--channel`, default
 * timeline:public). Without `--file` every `test_data/demo/*.json` is sent in
 * name order. `--channel` overrides the files' channels. `--redis` takes the
 * same URLs as Sluice's `REDIS_URL` (redis://, rediss:// for TLS, and
 * unix://, which Deno lets through only with `--allow-write=<socket>`), parsed
 * by `parseRedisUrl` and served by Sluice's own `RedisClient`.
 *
 * @module
 */

import { ConfigError, parseRedisUrl } from "../src/config.ts";
import { createLogger } from "../src/log.ts";
import { RedisClient } from "../src/redis/client.ts";

const USAGE = `Usage: deno task publish [--redis URL] [--channel NAME] [--file PATH] [--delay-ms N]
  --redis     Redis URL, redis[s]://[[user]:password@]host[:port][/db] or unix:///path?db=N
              (default redis://127.0.0.1:6379)
  --channel   publish every message to this channel instead of the file's own
  --file      send only this file (repeatable); default: every test_data/demo/*.json
  --delay-ms  pause between messages (default 500)`;

const FLAGS = ["--redis", "--channel", "--file", "--delay-ms"];

/** Parsed command line. */
export interface PublishOptions {
  redis: string;
  channel?: string;
  files: string[];
  delayMs: number;
}

/** One message to PUBLISH. */
export interface DemoMessage {
  channel: string;
  message: string;
  source: string;
}

/** Parses `--name value` / `--name=value` arguments; throws RangeError on anything else. */
export function parseArgs(args: string[]): PublishOptions | "help" {
  const options: PublishOptions = { redis: "redis://127.0.0.1:6379", files: [], delayMs: 500 };
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split(/=(.*)/s, 2);
    if (flag === "--help" || flag === "-h") return "help";
    if (!FLAGS.includes(flag)) throw new RangeError(`Unknown option ${flag}`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new RangeError(`${flag} needs a value`);
    if (flag === "--redis") options.redis = value;
    else if (flag === "--channel") options.channel = value;
    else if (flag === "--file") options.files.push(value);
    else options.delayMs = parseDelay(value);
  }
  return options;
}

function parseDelay(value: string): number {
  const delay = Number(value);
  if (!Number.isInteger(delay) || delay < 0) {
    throw new RangeError(`--delay-ms: expected a non-negative integer, got "${value}"`);
  }
  return delay;
}

/** Reads demo files into messages, applying the channel override. */
export async function loadMessages(files: string[], channel?: string): Promise<DemoMessage[]> {
  const messages: DemoMessage[] = [];
  for (const file of files) {
    const data = JSON.parse(await Deno.readTextFile(file));
    const wrapped = typeof data === "object" && data !== null && "message" in data;
    const message = wrapped ? data.message : data;
    messages.push({
      channel: channel ?? (wrapped ? data.channel : undefined) ?? "timeline:public",
      message: typeof message === "string" ? message : JSON.stringify(message),
      source: file,
    });
  }
  return messages;
}

async function demoFiles(): Promise<string[]> {
  const dir = decodeURIComponent(new URL("../test_data/demo/", import.meta.url).pathname);
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".json")) names.push(entry.name);
  }
  return names.sort().map((name) => `${dir}${name}`);
}

/**
 * A connected {@link RedisClient} for `url` (redis://, rediss:// or unix://).
 * Rejects on the first failed attempt instead of retrying, so a wrong
 * address or password ends the script with the reason.
 */
export async function connect(url: string): Promise<RedisClient> {
  const failed = Promise.withResolvers<never>();
  failed.promise.catch(() => {}); // warnings after connecting surface as failed commands
  const log = createLogger({
    level: "warn",
    sink: (line) => {
      const { msg, error } = JSON.parse(line);
      failed.reject(new Error(error?.message ? `Cannot connect to Redis: ${error.message}` : msg));
    },
  });
  const client = new RedisClient({ config: parseRedisUrl(url), log });
  try {
    await Promise.race([client.ready(), failed.promise]);
  } catch (error) {
    await client.close();
    throw error;
  }
  return client;
}

function eventName(message: string): string {
  try {
    return JSON.parse(message)?.event ?? "?";
  } catch {
    return "(not JSON)";
  }
}

async function main(args: string[]): Promise<void> {
  const options = parseArgs(args);
  if (options === "help") {
    console.log(USAGE);
    return;
  }
  const files = options.files.length > 0 ? options.files : await demoFiles();
  const messages = await loadMessages(files, options.channel);
  const redis = await connect(options.redis);
  try {
    for (const [index, { channel, message, source }] of messages.entries()) {
      if (index > 0) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
      const receivers = await redis.publish(channel, message);
      const name = source.slice(source.lastIndexOf("/") + 1);
      console.log(
        `PUBLISH ${channel} ${eventName(message)} (${name}) -> ${receivers} subscriber(s)`,
      );
    }
  } finally {
    await redis.close();
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    console.error(`publish: ${error instanceof Error ? error.message : error}`);
    if (error instanceof RangeError || error instanceof ConfigError) console.error(USAGE);
    Deno.exit(1);
  }
}
