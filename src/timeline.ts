/**
 * The stream-name ↔ Redis-channel table: SSE paths and stream names, their
 * parameters and validation, hashtag normalisation, the Redis channels of a
 * subscription, scopes per stream and the labels clients and metrics see
 * (docs/protocol.md §1.4, §2.3, §3.1–§3.4, §6.3, §6.5, §7, §10.3).
 * Pure functions only: timeline.ts never does I/O, never touches Redis,
 * PostgreSQL or a socket, and never applies `REDIS_NAMESPACE`.
 *
 * @module
 */
import { RequestError } from "./errors.ts";

/** The twelve stream names of upstream Mastodon (docs/protocol.md §3.1). */
export const STREAM_NAMES = [
  "user",
  "user:notification",
  "public",
  "public:media",
  "public:local",
  "public:local:media",
  "public:remote",
  "public:remote:media",
  "hashtag",
  "hashtag:local",
  "list",
  "direct",
] as const;

/** One of {@link STREAM_NAMES}. */
export type StreamName = (typeof STREAM_NAMES)[number];

/** The public stream names (`public`, `public:local:media`, …). */
export type PublicStreamName = Extract<StreamName, `public${string}`>;

/** Metrics `channel` label of every connection's system channels (docs/protocol.md §7, §10.3). */
const SYSTEM_LABEL = "system";

const isFeed = (name: StreamName) => name.startsWith("public") || name.startsWith("hashtag");

/** Every `channel` label of `connected_channels`: system, personal, feeds (docs/protocol.md §10.3). */
export const METRICS_CHANNEL_LABELS: readonly string[] = Object.freeze([
  SYSTEM_LABEL,
  ...STREAM_NAMES.filter((name) => !isFeed(name)),
  ...STREAM_NAMES.filter(isFeed),
]);

/** A validated stream subscription; `stream` is its name for labels and metrics. */
export type Timeline =
  | { readonly kind: "user"; readonly stream: "user" }
  | { readonly kind: "user:notification"; readonly stream: "user:notification" }
  | {
    readonly kind: "public";
    readonly stream: PublicStreamName;
    readonly local: boolean;
    readonly remote: boolean;
    readonly media: boolean;
  }
  | {
    readonly kind: "hashtag";
    readonly stream: "hashtag" | "hashtag:local";
    /** The tag as the client spelled it (normalised only for the channel). */
    readonly tag: string;
    readonly local: boolean;
  }
  | {
    readonly kind: "list";
    readonly stream: "list";
    /** The parameter as given: a string, a JSON number, or anything else truthy. */
    readonly list: unknown;
  }
  | { readonly kind: "direct"; readonly stream: "direct" };

const FALSE_VALUES: readonly unknown[] = [false, 0, "0", "f", "F", "false", "FALSE", "off", "OFF"];

/** Mastodon's `isTruthy`: truthy and not one of its "false" spellings (docs/protocol.md §1.4). */
export function isTruthy(value: unknown): boolean {
  return Boolean(value) && !FALSE_VALUES.includes(value);
}

const SSE_PATHS: ReadonlyMap<string, readonly [StreamName, StreamName?]> = new Map([
  ["/api/v1/streaming/user", ["user"]],
  ["/api/v1/streaming/user/notification", ["user:notification"]],
  ["/api/v1/streaming/public", ["public", "public:media"]],
  ["/api/v1/streaming/public/local", ["public:local", "public:local:media"]],
  ["/api/v1/streaming/public/remote", ["public:remote", "public:remote:media"]],
  ["/api/v1/streaming/hashtag", ["hashtag"]],
  ["/api/v1/streaming/hashtag/local", ["hashtag:local"]],
  ["/api/v1/streaming/direct", ["direct"]],
  ["/api/v1/streaming/list", ["list"]],
]);

/**
 * The stream an SSE path asks for, or `undefined` for any other path (docs/protocol.md §1.4).
 * Exact and case-sensitive; `only_media` picks the media variants.
 */
export function streamFromPath(path: string, query: URLSearchParams): StreamName | undefined {
  const row = SSE_PATHS.get(path);
  if (row === undefined) return undefined;
  const [plain, media] = row;
  // A repeated key is an array in Mastodon's query parser, and arrays are truthy.
  const onlyMedia = query.getAll("only_media");
  const truthy = onlyMedia.length > 1 || isTruthy(onlyMedia[0]);
  return media !== undefined && truthy ? media : plain;
}

const FOLD_FROM =
  "ÀÁÂÃÄÅàáâãäåĀāĂăĄąÇçĆćĈĉĊċČčÐðĎďĐđÈÉÊËèéêëĒēĔĕĖėĘęĚěĜĝĞğĠġĢģĤĥĦħÌÍÎÏìíîïĨĩĪīĬĭĮįİıĴĵĶķĸĹĺĻļĽľĿŀŁłÑñŃńŅņŇňŉŊŋÒÓÔÕÖØòóôõöøŌōŎŏŐőŔŕŖŗŘřŚśŜŝŞşŠšſŢţŤťŦŧÙÚÛÜùúûüŨũŪūŬŭŮůŰűŲųŴŵÝýÿŶŷŸŹźŻżŽž";
const FOLD_TO =
  "AAAAAAaaaaaaAaAaAaCcCcCcCcCcDdDdDdEEEEeeeeEeEeEeEeEeGgGgGgGgHhHhIIIIiiiiIiIiIiIiIiJjKkkLlLlLlLlLlNnNnNnNnnNnOOOOOOooooooOoOoOoRrRrRrSsSsSsSssTtTtTtUUUUuuuuUuUuUuUuUuUuWwYyyYyYZzZzZz";
const FOLD = new Map([...FOLD_FROM].map((char, i) => [char, FOLD_TO[i]]));
const FOLDABLE = new RegExp(`[${FOLD_FROM}]`, "g");
const NOT_HASHTAG_CHAR = /[^\p{L}\p{N}_\u00b7\u200c]/gu;

/**
 * The tag as it appears in a Redis channel name (docs/protocol.md §3.4): NFKC, lower case,
 * ASCII folding, then only letters, numbers, `_`, U+00B7 and U+200C kept.
 */
export function normalizeHashtag(tag: string): string {
  return tag
    .normalize("NFKC")
    .toLowerCase()
    .replace(FOLDABLE, (char) => FOLD.get(char) ?? char)
    .replace(NOT_HASHTAG_CHAR, "");
}

/** A WebSocket `stream` may be an array; Mastodon uses its first element. */
function firstParam(value: unknown): unknown {
  return Array.isArray(value) ? value[0] : value;
}

function isStreamName(value: unknown): value is StreamName {
  return (STREAM_NAMES as readonly unknown[]).includes(value);
}

/**
 * Validates a stream name and its parameters (docs/protocol.md §3.3). Throws RequestError
 * with Mastodon's messages; a truthy non-string `tag` throws TypeError (500).
 */
export function parseTimeline(stream: unknown, params: Record<string, unknown>): Timeline {
  const name = firstParam(stream);
  if (!isStreamName(name)) throw new RequestError("Unknown stream type");
  switch (name) {
    case "user":
      return { kind: "user", stream: name };
    case "user:notification":
      return { kind: "user:notification", stream: name };
    case "direct":
      return { kind: "direct", stream: name };
    case "hashtag":
    case "hashtag:local":
      return {
        kind: "hashtag",
        stream: name,
        tag: tagParam(params.tag),
        local: name !== "hashtag",
      };
    case "list":
      if (!params.list) throw new RequestError("Missing list name parameter");
      return { kind: "list", stream: name, list: params.list };
    default:
      return {
        kind: "public",
        stream: name,
        local: name.startsWith("public:local"),
        remote: name.startsWith("public:remote"),
        media: name.endsWith(":media"),
      };
  }
}

function tagParam(tag: unknown): string {
  if (!tag) throw new RequestError("Missing tag name parameter");
  if (typeof tag !== "string") throw new TypeError(`Hashtag must be a string, got ${typeof tag}`);
  return tag;
}

/** Whether a token with these scopes receives notifications on `user` (docs/protocol.md §3.2). */
function readsNotifications(scopes: readonly string[]): boolean {
  return scopes.includes("read") || scopes.includes("read:notifications");
}

/** The Redis channels (without namespace) a subscription listens on (docs/protocol.md §3.2). */
export function redisChannels(
  timeline: Timeline,
  viewer: { readonly accountId: string; readonly scopes: readonly string[] },
): string[] {
  const home = `timeline:${viewer.accountId}`;
  switch (timeline.kind) {
    case "user":
      return readsNotifications(viewer.scopes) ? [home, `${home}:notifications`] : [home];
    case "user:notification":
      return [`${home}:notifications`];
    case "public":
      return [`timeline:${timeline.stream}`];
    case "hashtag": {
      const channel = `timeline:hashtag:${normalizeHashtag(timeline.tag)}`;
      return [timeline.local ? `${channel}:local` : channel];
    }
    case "list":
      return [`timeline:list:${String(timeline.list)}`];
    case "direct":
      return [`timeline:direct:${viewer.accountId}`];
  }
}

const NOTIFICATION_SCOPES: readonly string[] = Object.freeze(["read", "read:notifications"]);
const STATUS_SCOPES: readonly string[] = Object.freeze(["read", "read:statuses"]);

/** Scopes of which a token needs one, for any stream name (docs/protocol.md §2.3). */
export function requiredScopes(stream: unknown): readonly string[] {
  return firstParam(stream) === "user:notification" ? NOTIFICATION_SCOPES : STATUS_SCOPES;
}

/** Whether a token's scopes include one of {@link requiredScopes} (docs/protocol.md §2.3). */
export function hasRequiredScope(scopes: readonly string[], stream: unknown): boolean {
  const required = requiredScopes(stream);
  return scopes.some((scope) => required.includes(scope));
}

/** JSON of the WebSocket `stream` label, client's own tag and list (docs/protocol.md §6.5). */
export function streamLabel(timeline: Timeline): string {
  switch (timeline.kind) {
    case "hashtag":
      return JSON.stringify([timeline.stream, timeline.tag]);
    case "list":
      return JSON.stringify([timeline.stream, timeline.list]);
    default:
      return JSON.stringify([timeline.stream]);
  }
}

/** Channels joined with `;`: equal keys are one subscription (docs/protocol.md §3.2). */
export function subscriptionKey(channels: readonly string[]): string {
  return channels.join(";");
}

/** The feed kind of streams filtered per viewer (docs/protocol.md §8.1), else `undefined`. */
export function feedKind(timeline: Timeline): "public" | "hashtag" | undefined {
  return timeline.kind === "public" || timeline.kind === "hashtag" ? timeline.kind : undefined;
}

/** The two system channels every connection listens on (docs/protocol.md §7). */
export function systemChannels(
  viewer: { readonly accessTokenId: string; readonly accountId: string },
): [string, string] {
  return [`timeline:access_token:${viewer.accessTokenId}`, `timeline:system:${viewer.accountId}`];
}

/**
 * The SSE path and query that ask for `timeline` (docs/protocol.md §1.4), the inverse of
 * {@link streamFromPath}: `only_media=true` picks a media variant, and the
 * client's own `tag` or `list` goes along.
 */
export function sseRequestPath(timeline: Timeline): string {
  const query = new URLSearchParams();
  let path = "";
  for (const [candidate, [plain, media]] of SSE_PATHS) {
    if (timeline.stream === plain || timeline.stream === media) path = candidate;
    if (timeline.stream === media) query.set("only_media", "true");
  }
  if (timeline.kind === "hashtag") query.set("tag", timeline.tag);
  if (timeline.kind === "list") query.set("list", String(timeline.list));
  return query.size > 0 ? `${path}?${query}` : path;
}
