/**
 * Who is connecting: the token from the request (header, query, subprotocol,
 * in Mastodon's order) and the viewer behind it. Concurrent lookups of the
 * same token share one database query. auth.ts never decides what a viewer
 * may subscribe to (see access.ts).
 *
 * @module
 */
import type { Database, TokenRow } from "./db.ts";
import { AuthenticationError } from "./errors.ts";

/** An authenticated connection's identity. */
export type Viewer = Readonly<TokenRow>;

/** Where the token was found; a subprotocol token is echoed in the 101 response. */
export interface FoundToken {
  token: string;
  source: "header" | "query" | "subprotocol";
}

const BEARER = /^Bearer /;

/**
 * The token of a request (§2.1): `Authorization` (minus a leading `Bearer `),
 * else `access_token` from the query, else the raw `Sec-WebSocket-Protocol`.
 * A repeated `access_token` yields no usable token (Mastodon's lookup fails).
 */
export function findToken(headers: Headers, query: URLSearchParams): FoundToken | undefined {
  const authorization = headers.get("authorization");
  if (authorization) return { token: authorization.replace(BEARER, ""), source: "header" };
  const fromQuery = query.getAll("access_token");
  if (fromQuery.length > 1) return { token: "", source: "query" };
  if (fromQuery[0]) return { token: fromQuery[0], source: "query" };
  const protocol = headers.get("sec-websocket-protocol");
  if (protocol) return { token: protocol, source: "subprotocol" };
  return undefined;
}

/** Resolves tokens to viewers, coalescing concurrent lookups of one token. */
export class Authenticator {
  readonly #db: Pick<Database, "tokenRow">;
  readonly #inFlight = new Map<string, Promise<TokenRow | undefined>>();

  constructor(options: { db: Pick<Database, "tokenRow"> }) {
    this.#db = options.db;
  }

  /**
   * The viewer for a token. Throws AuthenticationError "Missing access token"
   * or "Invalid access token"; database failures propagate (→ 500).
   */
  async authenticate(found: FoundToken | undefined): Promise<Viewer> {
    if (found === undefined) throw new AuthenticationError("Missing access token");
    if (found.token === "") throw new AuthenticationError("Invalid access token");
    const row = await this.#lookup(found.token);
    if (row === undefined) throw new AuthenticationError("Invalid access token");
    return row;
  }

  #lookup(token: string): Promise<TokenRow | undefined> {
    let pending = this.#inFlight.get(token);
    if (pending === undefined) {
      pending = this.#db.tokenRow(token).finally(() => this.#inFlight.delete(token));
      this.#inFlight.set(token, pending);
    }
    return pending;
  }
}
