/**
 * Who is connecting: the token from the request (header, query, subprotocol,
 * in Mastodon's order) and the viewer behind it. Concurrent lookups of the
 * same token share one database query, and lookups that arrive while
 * {@link MAX_BATCHES_IN_FLIGHT} queries are running wait and go together in
 * the next one, so a reconnect storm costs a few queries, not one per client.
 * auth.ts never decides what a viewer may subscribe to (see access.ts).
 *
 * @module
 */
import { Interner } from "./_interner.ts";
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
 * The token of a request (docs/protocol.md §2.1): `Authorization` (minus a leading `Bearer `),
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

/** Token queries running at once; later lookups wait and are batched. */
export const MAX_BATCHES_IN_FLIGHT = 4;
/** Tokens asked in one query at most. */
const MAX_BATCH = 500;

interface Waiting {
  resolve(row: TokenRow | undefined): void;
  reject(err: unknown): void;
}

/** Resolves tokens to viewers, coalescing and batching concurrent lookups. */
export class Authenticator {
  readonly #db: Pick<Database, "tokenRows">;
  readonly #inFlight = new Map<string, Promise<TokenRow | undefined>>();
  /** Tokens waiting for a query slot, in arrival order. */
  readonly #waiting = new Map<string, Waiting>();
  #running = 0;
  /** One viewer object per identical row, shared by every connection of that token. */
  readonly #viewers = new Interner<Viewer>();

  constructor(options: { db: Pick<Database, "tokenRows"> }) {
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
    return this.#viewers.intern(JSON.stringify(row), row);
  }

  #lookup(token: string): Promise<TokenRow | undefined> {
    const pending = this.#inFlight.get(token);
    if (pending !== undefined) return pending;
    const { promise, resolve, reject } = Promise.withResolvers<TokenRow | undefined>();
    this.#inFlight.set(token, promise);
    const forget = () => this.#inFlight.delete(token);
    promise.then(forget, forget);
    this.#waiting.set(token, { resolve, reject });
    this.#pump();
    return promise;
  }

  /** Starts queries for waiting tokens while slots are free. */
  #pump(): void {
    while (this.#running < MAX_BATCHES_IN_FLIGHT && this.#waiting.size > 0) {
      const batch = new Map<string, Waiting>();
      for (const [token, waiting] of this.#waiting) {
        if (batch.size === MAX_BATCH) break;
        batch.set(token, waiting);
        this.#waiting.delete(token);
      }
      this.#running++;
      this.#db.tokenRows([...batch.keys()]).then(
        (rows) => {
          for (const [token, waiting] of batch) waiting.resolve(rows.get(token));
        },
        (err) => {
          for (const waiting of batch.values()) waiting.reject(err);
        },
      ).finally(() => {
        this.#running--;
        this.#pump();
      });
    }
  }
}
