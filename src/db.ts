/**
 * Every SQL statement Sluice runs, behind the small {@link Database}
 * interface so the rest of the code (and its unit tests) never sees a pool.
 * Ids are strings, as node-postgres returns bigint columns. A server
 * certificate that TLS rejects surfaces as a TlsCertificateError saying what
 * to set.
 *
 * @module
 */
import { pg, type Pool } from "../deps.ts";
import type { PostgresConfig } from "./config.ts";
import { certificateError, type TrustSource } from "./tls.ts";
import type { Logger } from "./log.ts";
import type { FilterRow } from "./keyword_filter.ts";
import type { Metrics } from "./metrics.ts";

/** The row behind an access token (docs/protocol.md §2.2). */
export interface TokenRow {
  accessTokenId: string;
  accountId: string;
  scopes: string[];
  chosenLanguages: string[] | null;
  permissions: number;
}

/** Which sides of a feed are disabled for a viewer without the view-feeds permission. */
export interface FeedAccess {
  localDisabled: boolean;
  remoteDisabled: boolean;
}

/** The accounts of one status that the relationship rules look at. */
export interface StatusRelations {
  authorId: string;
  /** The author and the mentioned accounts. */
  targetIds: readonly string[];
  /** The author's domain when remote, else null. */
  domain: string | null;
}

/** The relationship question of several statuses, asked for many viewers at once. */
export interface RelationshipQuery {
  viewerIds: readonly string[];
  statuses: readonly StatusRelations[];
}

/** One keyword-filter row with the account it belongs to. */
export interface AccountFilterRow extends FilterRow {
  accountId: string;
}

/** The queries behind per-viewer filtering. */
export interface FilterDatabase {
  /**
   * Viewers who block the author or a mentioned account, whom the author
   * blocks, who mute the author or a mentioned account, or who block the
   * author's domain (docs/protocol.md §8.4), per status (in the order of
   * `query.statuses`), in one query for all viewers and statuses.
   */
  excludedViewers(query: RelationshipQuery): Promise<string[][]>;
  /** The unexpired keyword filters of these accounts (docs/protocol.md §8.5), in one query. */
  filterRows(accountIds: readonly string[]): Promise<AccountFilterRow[]>;
}

/** What the server asks PostgreSQL. */
export interface Database extends FilterDatabase {
  /** The rows of those tokens that are valid (not unknown, revoked, disabled or suspended). */
  tokenRows(tokens: readonly string[]): Promise<Map<string, TokenRow>>;
  /** Whether the list exists and belongs to the account (any error: false). */
  ownsList(listId: unknown, accountId: string): Promise<boolean>;
  /** The feed-access settings of a feed kind (docs/protocol.md §8.2). */
  feedAccess(kind: "public" | "hashtag"): Promise<FeedAccess>;
  /** Resolves when PostgreSQL answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

const TOKEN_SQL = `SELECT oauth_access_tokens.token, oauth_access_tokens.id,
  users.account_id, users.chosen_languages,
  oauth_access_tokens.scopes, COALESCE(user_roles.permissions, 0) AS permissions
FROM oauth_access_tokens
INNER JOIN users ON oauth_access_tokens.resource_owner_id = users.id
INNER JOIN accounts ON accounts.id = users.account_id
LEFT OUTER JOIN user_roles ON user_roles.id = users.role_id
WHERE oauth_access_tokens.token = ANY($1::text[])
  AND oauth_access_tokens.revoked_at IS NULL
  AND users.disabled IS FALSE
  AND accounts.suspended_at IS NULL`;

const LIST_SQL = "SELECT id FROM lists WHERE id = $1 AND account_id = $2 LIMIT 1";
const SETTINGS_SQL = "SELECT var, value FROM settings WHERE var IN ($1, $2)";
const DISABLED = "--- disabled\n";

/**
 * Relationships between viewers ($1) and the accounts of several statuses:
 * viewers who block or mute a target ($2, authors and mentions; kind `t`),
 * whom an author ($3) blocks (`a`), who block a domain ($4, `d`). Each row
 * names the account or domain it is keyed by, so one query serves any number
 * of statuses and the caller assembles each status's set. One index-driven
 * branch per rule; rows may repeat (the caller dedupes).
 */
const EXCLUDED_SQL = `SELECT 't' AS kind, target_account_id::text AS key, account_id::text AS id
  FROM blocks WHERE target_account_id = ANY($2::bigint[]) AND account_id = ANY($1::bigint[])
UNION ALL SELECT 'a', account_id::text, target_account_id::text FROM blocks
  WHERE account_id = ANY($3::bigint[]) AND target_account_id = ANY($1::bigint[])
UNION ALL SELECT 't', target_account_id::text, account_id::text FROM mutes
  WHERE target_account_id = ANY($2::bigint[]) AND account_id = ANY($1::bigint[])
UNION ALL SELECT 'd', domain, account_id::text FROM account_domain_blocks
  WHERE domain = ANY($4::text[]) AND account_id = ANY($1::bigint[])`;

const FILTERS_SQL = `SELECT filter.account_id::text AS account_id, filter.id::text AS id,
  filter.phrase AS title, filter.context AS context, filter.expires_at AS expires_at,
  filter.action AS filter_action, keyword.keyword AS keyword, keyword.whole_word AS whole_word
FROM custom_filter_keywords keyword
JOIN custom_filters filter ON keyword.custom_filter_id = filter.id
WHERE filter.account_id = ANY($1::bigint[])
  AND (filter.expires_at IS NULL OR filter.expires_at > NOW())
ORDER BY filter.id, keyword.id`;

/** {@link Database} over a node-postgres pool. */
export class PgDatabase implements Database {
  readonly pool: Pool;
  readonly #metrics: Metrics;
  readonly #feedAccess = new Map<string, Promise<FeedAccess>>();
  readonly #server: { host: string; port: number };
  readonly #trust: TrustSource;

  constructor(options: { config: PostgresConfig; log: Logger; metrics: Metrics }) {
    // NODE_EXTRA_CA_CERTS needs no option: Deno adds it to node:tls's roots, as Node does.
    const { max, extraCa, ...connection } = options.config;
    this.#server = { host: connection.host ?? "localhost", port: connection.port ?? 5432 };
    this.#trust = connection.ssl && connection.ssl.ca !== undefined
      ? { kind: "sslrootcert" }
      : { kind: "default", extraCa };
    this.pool = new pg.Pool({
      ...connection,
      max,
      connectionTimeoutMillis: 15_000,
      application_name: "",
    });
    // An idle client losing its server must not take the process down.
    this.pool.on(
      "error",
      (err: Error) => options.log.warn("PostgreSQL idle client error", { err }),
    );
    this.#metrics = options.metrics;
  }

  async tokenRows(tokens: readonly string[]): Promise<Map<string, TokenRow>> {
    this.#metrics.dbRoundTrips.inc({ purpose: "token" });
    const { rows } = await this.#explained(this.pool.query({
      name: "sluice_token_rows",
      text: TOKEN_SQL,
      values: [tokens],
    }));
    const found = new Map<string, TokenRow>();
    for (const row of rows) {
      if (found.has(row.token)) continue; // the token index is unique; keep the first anyway
      found.set(row.token, {
        accessTokenId: String(row.id),
        accountId: String(row.account_id),
        scopes: String(row.scopes ?? "").split(" "),
        chosenLanguages: Array.isArray(row.chosen_languages) ? row.chosen_languages : null,
        permissions: Number(row.permissions),
      });
    }
    return found;
  }

  async ownsList(listId: unknown, accountId: string): Promise<boolean> {
    if (typeof listId !== "string" && typeof listId !== "number") return false;
    this.#metrics.dbRoundTrips.inc({ purpose: "list" });
    try {
      const { rows } = await this.pool.query(LIST_SQL, [listId, accountId]);
      return rows.length > 0;
    } catch {
      return false; // e.g. a non-numeric id: Mastodon answers "not authorized"
    }
  }

  /** Concurrent reads of one kind share a query (a connection storm asks once). */
  feedAccess(kind: "public" | "hashtag"): Promise<FeedAccess> {
    let pending = this.#feedAccess.get(kind);
    if (pending === undefined) {
      pending = this.#readFeedAccess(kind);
      this.#feedAccess.set(kind, pending);
      const forget = () => this.#feedAccess.delete(kind);
      pending.then(forget, forget);
    }
    return pending;
  }

  async #readFeedAccess(kind: "public" | "hashtag"): Promise<FeedAccess> {
    const [local, remote] = kind === "hashtag"
      ? ["local_topic_feed_access", "remote_topic_feed_access"]
      : ["local_live_feed_access", "remote_live_feed_access"];
    this.#metrics.dbRoundTrips.inc({ purpose: "feed_access" });
    const { rows } = await this.#explained(
      this.pool.query<{ var: string; value: string | null }>(SETTINGS_SQL, [local, remote]),
    );
    const value = (name: string) => rows.find((r) => r.var === name)?.value;
    return { localDisabled: value(local) === DISABLED, remoteDisabled: value(remote) === DISABLED };
  }

  async excludedViewers(query: RelationshipQuery): Promise<string[][]> {
    const { statuses } = query;
    const unique = (values: Iterable<string>) => [...new Set(values)];
    const domains = statuses.flatMap((s) => s.domain === null ? [] : [s.domain]);
    const { rows } = await this.#explained(
      this.pool.query<{ kind: string; key: string; id: string }>({
        name: "sluice_excluded_viewers", // prepared once per connection
        text: EXCLUDED_SQL,
        values: [
          query.viewerIds,
          unique(statuses.flatMap((s) => s.targetIds)),
          unique(statuses.map((s) => s.authorId)),
          unique(domains),
        ],
      }),
    );
    const by = new Map<string, string[]>();
    for (const { kind, key, id } of rows) {
      const k = `${kind}:${key}`;
      const ids = by.get(k);
      if (ids === undefined) by.set(k, [id]);
      else ids.push(id);
    }
    return statuses.map((s) => {
      const keys = [...s.targetIds.map((t) => `t:${t}`), `a:${s.authorId}`];
      if (s.domain !== null) keys.push(`d:${s.domain}`);
      return unique(keys.flatMap((k) => by.get(k) ?? []));
    });
  }

  async filterRows(accountIds: readonly string[]): Promise<AccountFilterRow[]> {
    const { rows } = await this.#explained(this.pool.query(FILTERS_SQL, [accountIds]));
    return rows.map((r) => ({
      accountId: r.account_id,
      id: r.id,
      title: r.title,
      context: r.context ?? [],
      expires_at: r.expires_at,
      filter_action: Number(r.filter_action),
      keyword: r.keyword,
      whole_word: Boolean(r.whole_word),
    }));
  }

  async ping(): Promise<void> {
    await this.#explained(this.pool.query("SELECT 1"));
  }

  /** `query`, with a rejected server certificate explained (TlsCertificateError). */
  #explained<T>(query: Promise<T>): Promise<T> {
    return query.catch((err) => {
      throw certificateError(err, this.#server, this.#trust) ?? err;
    });
  }

  /** Pool statistics for the pg_pool_* gauges. */
  stats(): { total: number; idle: number; waiting: number } {
    return {
      total: this.pool.totalCount,
      idle: this.pool.idleCount,
      waiting: this.pool.waitingCount,
    };
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
