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
 * name order. `--channel` overrides the files' channels. Speaks just enough
 * RESP for AUTH, SELECT and PUBLISH (commands encoded by src/_resp.ts).
 *
 * @module
 */

import { encodeCommand } from "../src/_resp.ts";

const USAGE = `Usage: deno task publish [--redis URL] [--channel NAME] [--file PATH] [--delay-ms N]
  --redis     Redis URL, redis://[[user]:password@]host[:port][/db] (default redis://127.0.0.1:6379)
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

/** A single command-at-a-time RESP2 connection (replies: simple, error, integer). */
export class RespConnection {
  readonly #conn: Deno.Conn;
  readonly #decoder = new TextDecoder();
  #buffer = "";

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Connects to a `redis://` URL and runs AUTH/SELECT as the URL asks. */
  static async connect(url: string): Promise<RespConnection> {
    const parsed = new URL(url);
    if (parsed.protocol !== "redis:") {
      throw new RangeError(`Only redis:// URLs are supported, got "${url}"`);
    }
    const hostname = parsed.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1";
    const conn = await Deno.connect({ hostname, port: Number(parsed.port || 6379) });
    const connection = new RespConnection(conn);
    try {
      const password = decodeURIComponent(parsed.password);
      const user = decodeURIComponent(parsed.username);
      if (password) {
        await connection.command(...(user ? ["AUTH", user, password] : ["AUTH", password]));
      }
      const db = parsed.pathname.slice(1);
      if (db) await connection.command("SELECT", db);
    } catch (error) {
      connection.close();
      throw error;
    }
    return connection;
  }

  /** Sends one command and returns its reply; an error reply is thrown. */
  async command(...args: string[]): Promise<string | number> {
    await this.#write(encodeCommand(args));
    const line = await this.#readLine();
    if (line.startsWith("-")) throw new Error(`Redis replied: ${line.slice(1)}`);
    if (line.startsWith(":")) return Number(line.slice(1));
    if (line.startsWith("+")) return line.slice(1);
    throw new TypeError(`Unexpected Redis reply: ${line}`);
  }

  close(): void {
    this.#conn.close();
  }

  async #write(bytes: Uint8Array): Promise<void> {
    for (let written = 0; written < bytes.length;) {
      written += await this.#conn.write(bytes.subarray(written));
    }
  }

  async #readLine(): Promise<string> {
    const chunk = new Uint8Array(4096);
    while (!this.#buffer.includes("\r\n")) {
      const read = await this.#conn.read(chunk);
      if (read === null) throw new Error("Redis closed the connection");
      this.#buffer += this.#decoder.decode(chunk.subarray(0, read), { stream: true });
    }
    const end = this.#buffer.indexOf("\r\n");
    const line = this.#buffer.slice(0, end);
    this.#buffer = this.#buffer.slice(end + 2);
    return line;
  }
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
  const redis = await RespConnection.connect(options.redis);
  try {
    for (const [index, { channel, message, source }] of messages.entries()) {
      if (index > 0) await new Promise((resolve) => setTimeout(resolve, options.delayMs));
      const receivers = await redis.command("PUBLISH", channel, message);
      const name = source.slice(source.lastIndexOf("/") + 1);
      console.log(
        `PUBLISH ${channel} ${eventName(message)} (${name}) -> ${receivers} subscriber(s)`,
      );
    }
  } finally {
    redis.close();
  }
}

if (import.meta.main) {
  try {
    await main(Deno.args);
  } catch (error) {
    console.error(`publish: ${error instanceof Error ? error.message : error}`);
    if (error instanceof RangeError) console.error(USAGE);
    Deno.exit(1);
  }
}
