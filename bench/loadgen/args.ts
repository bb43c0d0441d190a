/**
 * The load generator's options: their defaults, the command-line parser and
 * the usage text, the request path and Redis channel of a stream (both from
 * src/timeline.ts's table, the one Sluice serves), and the lines of a
 * `--tokens-file`. Pure: reading the file is left to the runner.
 *
 * @module
 */
import { RequestError } from "../../src/errors.ts";
import { parseTimeline, redisChannels, sseRequestPath, type Timeline } from "../../src/timeline.ts";
import type { Author } from "../messages.ts";

/** How each client connects: EventSource, WebSocket, or alternating. */
export type TransportChoice = "sse" | "ws" | "mix";

/** Everything `runLoad` needs; the CLI flags map one to one (see `USAGE`). */
export interface LoadOptions {
  /** Base URL of the streaming server (http, https; ws/wss accepted as aliases). */
  url: string;
  transport: TransportChoice;
  /** Mastodon stream name (`public`, `public:local`, `hashtag`, `list`, `user`, …). */
  stream: string;
  /** Account id of the tokens, for the channel of `user`, `user:notification` and `direct`. */
  account?: string;
  tag?: string;
  list?: string;
  clients: number;
  /** Spread connection opening over this many ms (0: all at once, `maxConnecting` in flight). */
  rampMs: number;
  maxConnecting: number;
  connectTimeoutMs: number;
  /** Tokens assigned round-robin; `tokensFile` (one per line) replaces them when set. */
  tokens: string[];
  tokensFile?: string;
  /** Messages published per second. */
  rate: number;
  payloadBytes: number;
  author: Author;
  /** Seconds of publishing (of holding, with `idle`). */
  duration: number;
  /** Seconds between the last connection and the first message. */
  warmup: number;
  /** After the last message, wait at most this long for the remaining deliveries. */
  drainMs: number;
  redis: string;
  /** Redis channel to PUBLISH to; derived from the stream when not set. */
  channel?: string;
  serverPid?: number;
  /** Extra clients that connect and then never read. */
  slow: number;
  /** Write the JSON report here. */
  json?: string;
  /** Connect, hold, measure; publish nothing. */
  idle: boolean;
  /** Bytes of each client's read buffer. */
  readBufferBytes: number;
  /** Awaited after the warm-up, before the first message (lets tests wait for the server). */
  beforePublishing?: () => Promise<void>;
  /** Ends the run early (connecting, warm-up or publishing); a report is still made. */
  signal?: AbortSignal;
  /** Progress lines while the run goes on. */
  progress?: (line: string) => void;
}

/** Defaults of every option that has one. */
export const DEFAULT_OPTIONS: Readonly<LoadOptions> = Object.freeze({
  url: "http://127.0.0.1:4000",
  transport: "sse",
  stream: "public",
  clients: 1000,
  rampMs: 0,
  maxConnecting: 500,
  connectTimeoutMs: 30_000,
  tokens: ["token-alice"],
  rate: 100,
  payloadBytes: 1500,
  author: "local",
  duration: 10,
  warmup: 1,
  drainMs: 5_000,
  redis: "redis://127.0.0.1:6379",
  slow: 0,
  idle: false,
  readBufferBytes: 4096,
});

/** Usage text printed by `--help`. */
export const USAGE = `Usage: deno task bench [options]
  --url URL              streaming server base URL (default http://127.0.0.1:4000)
  --transport sse|ws|mix clients' transport; mix alternates (default sse)
  --stream NAME          stream to listen to (default public); --tag T, --list ID for hashtag/list
  --account ID           account of the tokens: the channel of user, user:notification and
                         direct (default 1, token-alice's, when the token is the default)
  --clients N            listening clients (default 1000)
  --ramp-ms MS           spread connecting over MS (default 0: at once, --max-connecting in flight)
  --max-connecting N     connection attempts in flight (default 500)
  --connect-timeout-ms MS  give up on a connection after MS (default 30000)
  --token TOKEN          access token (default token-alice; repeatable, round-robin)
  --tokens-file FILE     one token per line, assigned round-robin
  --rate N               messages published per second (default 100)
  --payload-bytes N      size of each status JSON (default 1500)
  --author local|remote  author of the statuses (default local)
  --duration S           seconds of publishing, or of holding with --idle (default 10)
  --warmup S             seconds between the last connection and the first message (default 1)
  --drain-ms MS          wait at most MS after the last message for deliveries (default 5000)
  --redis URL            Redis to PUBLISH to (default redis://127.0.0.1:6379)
  --channel NAME         Redis channel (default: the stream's, e.g. timeline:public, timeline:1)
  --server-pid PID       report that process's RSS and CPU from /proc
  --slow N               extra clients that connect and never read (default 0)
  --idle                 connect, hold for --duration, measure; publish nothing
  --read-buffer BYTES    per-client read buffer (default 4096)
  --json FILE            also write the report as JSON
  --quiet                no progress lines on stderr`;

type Setter = (options: LoadOptions, value: string, flag: string) => void;

const VALUE_FLAGS: Record<string, Setter> = {
  "--url": (o, v) => o.url = v,
  "--transport": (o, v, f) => o.transport = oneOf(v, f, ["sse", "ws", "mix"] as const),
  "--stream": (o, v) => o.stream = v,
  "--tag": (o, v) => o.tag = v,
  "--list": (o, v) => o.list = v,
  "--account": (o, v, f) => o.account = accountId(v, f),
  "--clients": (o, v, f) => o.clients = count(v, f),
  "--ramp-ms": (o, v, f) => o.rampMs = count(v, f),
  "--max-connecting": (o, v, f) => o.maxConnecting = count(v, f, 1),
  "--connect-timeout-ms": (o, v, f) => o.connectTimeoutMs = count(v, f, 1),
  "--token": (o, v) => o.tokens.push(v),
  "--tokens-file": (o, v) => o.tokensFile = v,
  "--rate": (o, v, f) => o.rate = positive(v, f),
  "--payload-bytes": (o, v, f) => o.payloadBytes = count(v, f),
  "--author": (o, v, f) => o.author = oneOf(v, f, ["local", "remote"] as const),
  "--duration": (o, v, f) => o.duration = positive(v, f),
  "--warmup": (o, v, f) => o.warmup = nonNegative(v, f),
  "--drain-ms": (o, v, f) => o.drainMs = count(v, f),
  "--redis": (o, v) => o.redis = v,
  "--channel": (o, v) => o.channel = v,
  "--server-pid": (o, v, f) => o.serverPid = count(v, f, 1),
  "--slow": (o, v, f) => o.slow = count(v, f),
  "--read-buffer": (o, v, f) => o.readBufferBytes = count(v, f, 256),
  "--json": (o, v) => o.json = v,
};

/** Parsed command line: the options, and whether progress lines are wanted. */
export interface CommandLine {
  options: LoadOptions;
  quiet: boolean;
}

/** Parses `--name value` / `--name=value`; throws RangeError naming the bad flag or value. */
export function parseArgs(args: readonly string[]): CommandLine | "help" {
  const options: LoadOptions = { ...DEFAULT_OPTIONS, tokens: [] };
  let quiet = false;
  for (let i = 0; i < args.length; i++) {
    const [flag, inline] = args[i].split(/=(.*)/s, 2);
    if (flag === "--help" || flag === "-h") return "help";
    if (flag === "--idle" || flag === "--quiet") {
      if (inline !== undefined) throw new RangeError(`${flag} takes no value`);
      if (flag === "--idle") options.idle = true;
      else quiet = true;
      continue;
    }
    const set = VALUE_FLAGS[flag];
    if (set === undefined) throw new RangeError(`Unknown option ${flag}`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new RangeError(`${flag} needs a value`);
    set(options, value, flag);
  }
  if (options.tokens.length === 0) options.tokens = [...DEFAULT_OPTIONS.tokens];
  if (options.idle || options.channel !== undefined) timelineOf(options);
  else defaultChannel(options);
  return { options, quiet };
}

function oneOf<T extends string>(value: string, flag: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new RangeError(`${flag}: expected one of ${allowed.join(", ")}, got "${value}"`);
}

function count(value: string, flag: string, min = 0): number {
  const n = Number(value);
  if (value.trim() !== "" && Number.isInteger(n) && n >= min) return n;
  throw new RangeError(`${flag}: expected an integer ≥ ${min}, got "${value}"`);
}

function accountId(value: string, flag: string): string {
  if (/^[1-9][0-9]*$/.test(value)) return value;
  throw new RangeError(`${flag}: expected an account id (digits), got "${value}"`);
}

function nonNegative(value: string, flag: string): number {
  const n = Number(value);
  if (value.trim() !== "" && Number.isFinite(n) && n >= 0) return n;
  throw new RangeError(`${flag}: expected a number ≥ 0, got "${value}"`);
}

function positive(value: string, flag: string): number {
  const n = nonNegative(value, flag);
  if (n > 0) return n;
  throw new RangeError(`${flag}: expected a number > 0, got "${value}"`);
}

type StreamOptions = Pick<LoadOptions, "stream" | "tag" | "list">;

/** The stream the options name, as src/timeline.ts parses it; RangeError when it is not one. */
export function timelineOf(options: StreamOptions): Timeline {
  const { stream, tag, list } = options;
  if (stream.startsWith("hashtag") && !tag) throw new RangeError(`--stream ${stream} needs --tag`);
  if (stream === "list" && !list) throw new RangeError("--stream list needs --list");
  try {
    return parseTimeline(stream, { tag, list });
  } catch (error) {
    if (!(error instanceof RequestError)) throw error;
    throw new RangeError(`--stream: ${error.message} "${stream}"`);
  }
}

/** Request path and query for the stream over SSE or WebSocket (token not included). */
export function streamPath(options: StreamOptions, transport: "sse" | "ws"): string {
  const timeline = timelineOf(options);
  const sse = new URL(sseRequestPath(timeline), "http://sluice.invalid");
  if (transport === "sse") return `${sse.pathname}${sse.search}`;
  const params = new URLSearchParams({ stream: timeline.stream });
  for (const [name, value] of sse.searchParams) {
    if (name !== "only_media") params.append(name, value);
  }
  return `/api/v1/streaming?${params}`;
}

/** The account of the default token: token-alice is account 1 in test_data/mastodon-seed.sql. */
const DEFAULT_TOKEN_ACCOUNT = "1";

type ChannelOptions = StreamOptions & Pick<LoadOptions, "account" | "tokens" | "tokensFile">;

function accountOf(options: ChannelOptions): string {
  if (options.account !== undefined) return options.account;
  const [token, ...more] = options.tokens;
  if (!options.tokensFile && more.length === 0 && token === DEFAULT_OPTIONS.tokens[0]) {
    return DEFAULT_TOKEN_ACCOUNT;
  }
  throw new RangeError(
    `--stream ${options.stream}: its channel names the tokens' account: give --account ID or --channel NAME`,
  );
}

/**
 * The Redis channel Rails publishes the stream's statuses to, from
 * src/timeline.ts's table: `timeline:<account>` for `user`, and the
 * account's notification or direct channel; hashtags normalised as Sluice does.
 */
export function defaultChannel(options: ChannelOptions): string {
  const timeline = timelineOf(options);
  const personal = timeline.kind === "user" || timeline.kind === "user:notification" ||
    timeline.kind === "direct";
  const viewer = { accountId: personal ? accountOf(options) : "", scopes: ["read"] };
  return redisChannels(timeline, viewer)[0];
}

/** The tokens of a `--tokens-file`: one per line, blank lines and `#` comments skipped. */
export function parseTokens(text: string, file: string): string[] {
  const tokens = text.split(/\r?\n/).map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"));
  if (tokens.length === 0) throw new RangeError(`--tokens-file: no tokens in ${file}`);
  return tokens;
}
