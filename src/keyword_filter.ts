/**
 * Keyword (custom) filters for public and hashtag updates (docs/protocol.md §8.5, §8.6):
 * the searchable text of a status, the per-filter regular expressions built
 * from the viewer's filter rows, and the `filtered` array those produce
 * (event.ts appends it to the payload's JSON text without re-serialising it).
 * This module is pure: it never queries PostgreSQL and never caches per viewer.
 *
 * @module
 */
import { type DefaultTreeAdapterMap, parseFragment } from "../deps.ts";

/** The fields of a status payload that feed its searchable text; any of them may be missing or odd. */
export interface StatusLike {
  spoiler_text?: unknown;
  content?: unknown;
  poll?: { options?: unknown } | null | unknown;
  media_attachments?: unknown;
}

/** One row of the filter query of docs/protocol.md §8.5 (a filter joined with one keyword). */
export interface FilterRow {
  id: string;
  title: string;
  context: string[];
  expires_at: Date | null;
  filter_action: number;
  keyword: string;
  whole_word: boolean;
}

/** A viewer's filter ready for matching: its keywords as one regexp and its `filter` JSON. */
export interface CompiledFilter {
  id: string;
  /** Expiry in epoch milliseconds, or null for never. */
  expiresAt: number | null;
  regexp: RegExp;
  /** The encoded `{"id":…,"title":…,"context":[…],"expires_at":…,"filter_action":…}` object. */
  json: string;
}

const FILTER_ACTIONS: readonly string[] = ["warn", "hide", "blur"];
const REGEXP_SPECIALS = /[.*+?^${}()|[\]\\]/g;
const ASCII_WORD_CHAR = /[A-Za-z0-9_]/;
const BR_TAG = /<br\s*\/?>/g;
const PARAGRAPH_BREAK = /<\/p><p>/g;

type ParentNode = DefaultTreeAdapterMap["parentNode"];
type ChildNode = DefaultTreeAdapterMap["childNode"];

function stringOrEmpty(value: unknown): string {
  return typeof value === "string" ? value : "";
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** `map(f)` over an array field, nothing when the field is not an array. */
function mapArray(value: unknown, f: (item: unknown) => string): string[] {
  return Array.isArray(value) ? value.map(f) : [];
}

/** The raw (HTML) parts of a status in docs/protocol.md §8.6 order, non-strings as "". */
function htmlParts(status: unknown): string[] {
  if (!isObject(status)) return ["", ""];
  const poll = status.poll;
  return [
    stringOrEmpty(status.spoiler_text),
    stringOrEmpty(status.content),
    ...(isObject(poll)
      ? mapArray(poll.options, (o) => isObject(o) ? stringOrEmpty(o.title) : "")
      : []),
    ...mapArray(
      status.media_attachments,
      (m) => isObject(m) ? stringOrEmpty(m.description) : "",
    ),
  ];
}

/** DOM `textContent` of a parsed fragment: text nodes in document order, comments and template contents excluded. */
function textContent(root: ParentNode): string {
  const parts: string[] = [];
  const stack: ChildNode[] = [...root.childNodes].reverse();
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    if (node.nodeName === "#text" && "value" in node) parts.push(node.value);
    else if ("childNodes" in node) {
      for (let i = node.childNodes.length - 1; i >= 0; i--) stack.push(node.childNodes[i]);
    }
  }
  return parts.join("");
}

/** The text keyword filters match against (docs/protocol.md §8.6); never throws on odd payloads. */
export function searchableText(status: StatusLike): string {
  const html = htmlParts(status).join("\n\n")
    .replace(BR_TAG, "\n")
    .replace(PARAGRAPH_BREAK, "\n\n");
  return textContent(parseFragment(html));
}

/** One keyword as a regexp alternative: escaped, with `\b` at ASCII word-char ends when whole_word. */
function keywordPattern(keyword: string, wholeWord: boolean): string {
  const escaped = keyword.replace(REGEXP_SPECIALS, "\\$&");
  if (!wholeWord) return escaped;
  const start = ASCII_WORD_CHAR.test(escaped.charAt(0)) ? "\\b" : "";
  const end = ASCII_WORD_CHAR.test(escaped.charAt(escaped.length - 1)) ? "\\b" : "";
  return start + escaped + end;
}

/** The `filter` object of a filtered entry, key order as Mastodon; unknown actions omit `filter_action`. */
function filterJson(row: FilterRow): string {
  return JSON.stringify({
    id: row.id,
    title: row.title,
    context: row.context,
    expires_at: row.expires_at === null ? null : row.expires_at.toJSON(),
    filter_action: FILTER_ACTIONS[row.filter_action],
  });
}

function expiryMillis(expiresAt: Date | null): number | null {
  const ms = expiresAt === null ? NaN : expiresAt.getTime();
  return Number.isNaN(ms) ? null : ms;
}

/** Groups filter rows by filter id (first-appearance order) into compiled filters. */
export function compileFilters(rows: FilterRow[]): CompiledFilter[] {
  const groups = new Map<string, { first: FilterRow; patterns: string[] }>();
  for (const row of rows) {
    const pattern = keywordPattern(row.keyword, row.whole_word);
    const group = groups.get(row.id);
    if (group) group.patterns.push(pattern);
    else groups.set(row.id, { first: row, patterns: [pattern] });
  }
  return [...groups.values()].map(({ first, patterns }) => ({
    id: first.id,
    expiresAt: expiryMillis(first.expires_at),
    regexp: new RegExp(patterns.join("|"), "i"),
    json: filterJson(first),
  }));
}

/**
 * First matches of regular expressions on one text, by pattern: viewers whose
 * filters have the same keywords share one search of the text.
 */
export type MatchMemo = Map<string, string | null>;

/**
 * JSON text of the `filtered` array for `text`: one entry per unexpired
 * matching filter, first match only. `memo` must belong to this `text`.
 */
export function matchFilters(
  filters: CompiledFilter[],
  text: string,
  now: number,
  memo?: MatchMemo,
): string {
  if (text === "") return "[]";
  const entries: string[] = [];
  for (const filter of filters) {
    if (filter.expiresAt !== null && filter.expiresAt < now) continue;
    let match = memo?.get(filter.regexp.source);
    if (match === undefined) {
      match = filter.regexp.exec(text)?.[0] ?? null;
      memo?.set(filter.regexp.source, match);
    }
    if (match === null) continue;
    entries.push(
      `{"filter":${filter.json},"keyword_matches":[${
        JSON.stringify(match)
      }],"status_matches":null}`,
    );
  }
  return `[${entries.join(",")}]`;
}
