/**
 * Finds the raw text of the top-level `payload` value in a JSON message that
 * `JSON.parse` has already accepted, so payload bytes can be forwarded as
 * published instead of re-serialised. Insignificant whitespace is removed
 * (it would break SSE framing); everything else is kept byte for byte. Also
 * splits an object's text before its closing brace, where event.ts appends a
 * key. Private helper of event.ts.
 *
 * @module
 */

const QUOTE = 0x22, BACKSLASH = 0x5c, COLON = 0x3a, COMMA = 0x2c;
const OPEN_BRACE = 0x7b, CLOSE_BRACE = 0x7d, OPEN_BRACKET = 0x5b, CLOSE_BRACKET = 0x5d;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

function skipSpace(text: string, i: number): number {
  while (i < text.length && isSpace(text.charCodeAt(i))) i++;
  return i;
}

/** Index just past the string literal starting at `i` (which is a quote). */
function stringEnd(text: string, i: number): number {
  let j = i + 1;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) throw new SyntaxError("unterminated string");
    let backslashes = 0;
    for (let k = q - 1; k > i && text.charCodeAt(k) === BACKSLASH; k--) backslashes++;
    if (backslashes % 2 === 0) return q + 1;
    j = q + 1;
  }
}

/** Index just past the JSON value starting at `i`; `spaced` tells whether it holds whitespace. */
function valueEnd(text: string, i: number): { end: number; spaced: boolean } {
  const c = text.charCodeAt(i);
  if (c === QUOTE) return { end: stringEnd(text, i), spaced: false };
  if (c !== OPEN_BRACE && c !== OPEN_BRACKET) {
    let j = i;
    while (j < text.length) {
      const d = text.charCodeAt(j);
      if (d === COMMA || d === CLOSE_BRACE || d === CLOSE_BRACKET || isSpace(d)) break;
      j++;
    }
    return { end: j, spaced: false };
  }
  let depth = 0, spaced = false, j = i;
  while (j < text.length) {
    const d = text.charCodeAt(j);
    if (d === QUOTE) {
      j = stringEnd(text, j);
      continue;
    }
    if (d === OPEN_BRACE || d === OPEN_BRACKET) depth++;
    else if (d === CLOSE_BRACE || d === CLOSE_BRACKET) {
      if (--depth === 0) return { end: j + 1, spaced };
    } else if (isSpace(d)) spaced = true;
    j++;
  }
  throw new SyntaxError("unterminated value");
}

/** Removes whitespace outside string literals. */
export function stripJsonSpace(text: string): string {
  let out = "", start = 0, i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEnd(text, i);
    } else if (isSpace(c)) {
      out += text.slice(start, i);
      i = skipSpace(text, i);
      start = i;
    } else i++;
  }
  return out + text.slice(start);
}

/**
 * The JSON text of the last top-level `payload` member of `raw` (an object
 * that JSON.parse accepted), or "" when there is none.
 */
export function payloadSpan(raw: string): string {
  let i = skipSpace(raw, 0) + 1; // past "{"
  let found = "";
  for (;;) {
    i = skipSpace(raw, i);
    if (raw.charCodeAt(i) === CLOSE_BRACE) return found;
    const keyEnd = stringEnd(raw, i);
    const keyText = raw.slice(i, keyEnd);
    const key = keyText.includes("\\") ? JSON.parse(keyText) : keyText.slice(1, -1);
    i = skipSpace(raw, keyEnd);
    if (raw.charCodeAt(i) !== COLON) throw new SyntaxError("expected ':'");
    const start = skipSpace(raw, i + 1);
    const { end, spaced } = valueEnd(raw, start);
    if (key === "payload") {
      const text = raw.slice(start, end);
      found = spaced ? stripJsonSpace(text) : text;
    }
    i = skipSpace(raw, end);
    if (raw.charCodeAt(i) === COMMA) i++;
  }
}

/** A JSON object text up to (not including) its closing brace, whitespace around it trimmed. */
export interface ObjectBody {
  text: string;
  /** "," when the object has members, else "". */
  separator: string;
}

/** Splits a JSON object text before its closing brace; throws SyntaxError for anything else. */
export function objectBody(json: string): ObjectBody {
  const start = skipSpace(json, 0);
  let close = json.length - 1;
  while (close > start && isSpace(json.charCodeAt(close))) close--;
  if (close <= start || json[start] !== "{" || json[close] !== "}") {
    throw new SyntaxError("payload is not a JSON object");
  }
  let last = close - 1;
  while (last > start && isSpace(json.charCodeAt(last))) last--;
  return { text: json.slice(start, last + 1), separator: last === start ? "" : "," };
}
