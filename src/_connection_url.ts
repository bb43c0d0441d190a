/**
 * Splits connection URLs (`postgres://…`, `redis://…`, `unix://…`) into
 * their parts by hand, for config.ts: WHATWG `URL` rejects forms that
 * connection strings use, such as an empty host after credentials
 * (`postgres://user@/db?host=/run/postgresql`). Private helper of config.ts.
 * It never puts the URL itself into an error message, since it may hold a
 * password.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";

/** A connection URL's parts, percent-decoded (except the port and the query). */
export interface UrlParts {
  /** Lower-cased, without the colon. */
  scheme: string;
  username: string;
  password: string;
  /** Without the brackets of an IPv6 literal. */
  host: string;
  port: string;
  path: string;
  query: URLSearchParams;
}

/** scheme:[//[userinfo@]host[:port]]path[?query][#fragment]; userinfo ends at its last `@`. */
const URL_SHAPE =
  /^([a-z][a-z0-9+.-]*):(?:\/\/(?:([^/?#]*)@)?(\[[^\]]*\]|[^:/?#]*)(?::([^/?#]*))?)?([^?#]*)(?:\?([^#]*))?(?:#[\s\S]*)?$/i;

/** Splits `text`, the value of variable `name`; throws a ConfigError naming the variable. */
export function splitUrl(name: string, text: string): UrlParts {
  const match = URL_SHAPE.exec(text);
  if (match === null) {
    throw new ConfigError(
      `Cannot parse ${name}: expected scheme://[user[:password]@]host[:port][/path]`,
    );
  }
  const [, scheme, userinfo = "", host = "", port = "", path, query = ""] = match;
  const colon = userinfo.indexOf(":");
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw new ConfigError(`Cannot parse ${name}: invalid percent-encoding`);
    }
  };
  return {
    scheme: scheme.toLowerCase(),
    username: decode(colon === -1 ? userinfo : userinfo.slice(0, colon)),
    password: colon === -1 ? "" : decode(userinfo.slice(colon + 1)),
    host: decode(host.replace(/^\[(.*)\]$/, "$1")),
    port,
    path: decode(path),
    query: new URLSearchParams(query),
  };
}
