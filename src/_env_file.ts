/**
 * Env files: dotenv syntax, and Mastodon's rule for which file to read
 * (`--env-file`, else `.env.production` or `.env`) under the process
 * variables. Private helper of config.ts. It reads only through the getter
 * and file reader it is given: it never touches `Deno.env` or the file
 * system itself, and never logs.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";

/** Reads one variable; undefined when it is not set. */
export type Getter = (name: string) => string | undefined;

/** Reads a text file; undefined when it does not exist. */
export type TextFileReader = (path: string) => string | undefined;

/**
 * One dotenv entry, the grammar shared by Node's and Ruby's dotenv: optional
 * `export`, a key, `=` (or `: `), then a single-, double- or backtick-quoted
 * value (may span lines) or a bare value ending at `#` or end of line, then
 * an optional `# comment`.
 */
const ENV_ENTRY =
  /^\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?$/gm;

/** Parses dotenv syntax (as Node's dotenv 17 does); a later duplicate key wins. */
export function readEnvFile(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  for (const match of text.replace(/\r\n?/g, "\n").matchAll(ENV_ENTRY)) {
    vars.set(match[1], unquote((match[2] ?? "").trim()));
  }
  return vars;
}

function unquote(value: string): string {
  const quote = value[0];
  const quoted = value.length >= 2 && `"'\``.includes(quote) && value.endsWith(quote);
  const inner = quoted ? value.slice(1, -1) : value;
  return quote === '"' ? inner.replaceAll("\\n", "\n").replaceAll("\\r", "\r") : inner;
}

/**
 * Process variables over an env file, by Mastodon's rule: the explicit
 * `envFile` (which must exist), else `.env.production` when NODE_ENV is
 * `production`, else `.env`; a missing default file is fine.
 */
export function environment(
  options: { get: Getter; readTextFile: TextFileReader; envFile?: string },
): Getter {
  const { get, readTextFile, envFile } = options;
  const path = envFileName(get, envFile);
  const text = readTextFile(path);
  if (text === undefined && envFile !== undefined) {
    throw new ConfigError(`Cannot read env file ${JSON.stringify(envFile)}: no such file`);
  }
  const file = readEnvFile(text ?? "");
  return (name) => get(name) ?? file.get(name);
}

/** The env file Mastodon's rule picks: `envFile`, else `.env.production` or `.env` by NODE_ENV. */
export function envFileName(get: Getter, envFile?: string): string {
  return envFile ?? (get("NODE_ENV") === "production" ? ".env.production" : ".env");
}
