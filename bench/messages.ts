/**
 * Benchmark messages: realistic Mastodon `update` events as Rails publishes
 * them to Redis (`{"event":"update","payload":{…status…}}`), each carrying a
 * send-time marker `BENCHTS<16 digits: µs since the epoch>` in its `content`.
 * The marker is plain ASCII letters and digits, so it survives JSON string
 * escaping, the WebSocket double encoding and HTML escaping unchanged; load
 * clients find it by scanning bytes. The JSON is built once as a template;
 * each message is three string concatenations.
 *
 * @module
 */

/** The bytes that open every marker. */
export const MARKER_PREFIX = "BENCHTS";
/** Digits after the prefix: µs since the epoch, zero-padded. */
export const MARKER_DIGITS = 16;

/** Who wrote the benchmark statuses: a local account or a remote (federated) one. */
export type Author = "local" | "remote";

/** How the messages look. */
export interface MessageOptions {
  /** Target size in bytes of the status JSON (`payload`); its content is padded up to it. */
  payloadBytes: number;
  author: Author;
}

/** Builds the Redis message for status number `seq` sent at `micros` (µs since the epoch). */
export type MessageFactory = (seq: number, micros: number) => string;

const ID_HOLE = "@@BENCH_ID@@";
const MARKER_HOLE = "@@BENCH_MARKER@@";
const PAD_HOLE = "@@BENCH_PAD@@";
/** Filler without `B`, so marker scans skip it quickly. */
const FILLER = "lorem ipsum dolor sit amet, consectetur adipiscing elit; sed do eiusmod tempor. ";

const ACCOUNTS: Record<Author, Record<string, unknown>> = {
  local: account("2", "bob", "bob", "Bob", "https://peer.test/@bob"),
  remote: account(
    "78",
    "federationbot",
    "federationbot@mastodon.host",
    "Federation Bot",
    "https://mastodon.host/@federationbot",
  ),
};

function account(id: string, username: string, acct: string, name: string, url: string) {
  const media = "https://peer.test/system/accounts/avatars/original/missing.png";
  return {
    id,
    username,
    acct,
    display_name: name,
    locked: false,
    bot: false,
    discoverable: true,
    indexable: false,
    group: false,
    created_at: "2025-01-01T00:00:00.000Z",
    note: "<p>Streaming load test account.</p>",
    url,
    uri: url.replace("/@", "/users/"),
    avatar: media,
    avatar_static: media,
    header: "https://peer.test/headers/original/missing.png",
    header_static: "https://peer.test/headers/original/missing.png",
    followers_count: 16636,
    following_count: 179,
    statuses_count: 50554,
    last_status_at: "2025-12-20",
    hide_collections: null,
    noindex: false,
    emojis: [],
    roles: [],
    fields: [],
  };
}

function status(author: Author): Record<string, unknown> {
  const acct = ACCOUNTS[author];
  return {
    id: ID_HOLE,
    created_at: "2025-12-20T10:00:00.000Z",
    in_reply_to_id: null,
    in_reply_to_account_id: null,
    sensitive: false,
    spoiler_text: "",
    visibility: "public",
    language: "en",
    uri: `${acct.uri}/statuses/${ID_HOLE}`,
    url: `${acct.url}/${ID_HOLE}`,
    replies_count: 0,
    reblogs_count: 0,
    favourites_count: 0,
    quotes_count: 0,
    edited_at: null,
    content: `<p>Load test status ${MARKER_HOLE} ${PAD_HOLE}</p>`,
    reblog: null,
    application: { name: "Web", website: null },
    account: acct,
    media_attachments: [],
    mentions: [],
    tags: [],
    emojis: [],
    quote: null,
    card: null,
    poll: null,
  };
}

/** `BENCHTS` and the 16-digit µs timestamp. */
export function formatMarker(micros: number): string {
  return MARKER_PREFIX + String(Math.max(0, Math.floor(micros))).padStart(MARKER_DIGITS, "0");
}

/** The 18-digit status id of message `seq` (Mastodon ids are snowflake-sized strings). */
export function statusId(seq: number): string {
  return "1159" + String(seq).padStart(14, "0");
}

/** Returns a factory of `update` messages whose payload JSON is `payloadBytes` long (or the minimum). */
export function createMessageFactory(options: MessageOptions): MessageFactory {
  const json = JSON.stringify({ event: "update", payload: status(options.author) });
  const sample = json.replaceAll(ID_HOLE, statusId(0)).replace(MARKER_HOLE, formatMarker(0));
  const payloadOverhead = JSON.stringify({ event: "update", payload: null }).length - 4;
  const baseBytes = new TextEncoder().encode(sample.replace(PAD_HOLE, "")).length -
    payloadOverhead;
  const padding = padText(options.payloadBytes - baseBytes);
  const [beforeMarker, afterMarker] = json.replace(PAD_HOLE, padding).split(MARKER_HOLE);
  const head = beforeMarker.split(ID_HOLE);
  const tail = afterMarker.split(ID_HOLE);
  return (seq, micros) => {
    const id = statusId(seq);
    return head.join(id) + formatMarker(micros) + tail.join(id);
  };
}

function padText(bytes: number): string {
  if (bytes <= 0) return "";
  return FILLER.repeat(Math.ceil(bytes / FILLER.length)).slice(0, bytes);
}
