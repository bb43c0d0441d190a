/**
 * Per-viewer filtering of `update` / `status.update` on public and hashtag
 * streams (docs/protocol.md §8), shared by SSE and WebSocket. The facts that
 * need PostgreSQL are fetched once for every viewer of the channel, for one
 * event or a batch of queued ones in a single query
 * ({@link EventFilter.prepareMany}); the decision per viewer is the pure
 * {@link decide}. filter.ts never touches a socket.
 *
 * @module
 */
import type { FeedAccess, FilterDatabase } from "./db.ts";
import type { StreamEvent } from "./event.ts";
import {
  type CompiledFilter,
  compileFilters,
  matchFilters,
  type MatchMemo,
  searchableText,
} from "./keyword_filter.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";

/** Why a viewer did not get an event. */
export type DropReason =
  | "feed_access"
  | "language"
  | "relationship"
  | "database_error"
  | "invalid_status";

/** A connection's keyword-filter cache: undefined until loaded, reset by `filters_changed`. */
export class FilterCache {
  compiled?: CompiledFilter[];
  /** The load in flight (its failed account ids), shared by events prepared meanwhile. */
  loading?: Promise<ReadonlySet<string>>;
  /** Bumped on invalidation, so a load that raced it is not stored. */
  generation = 0;
  invalidate(): void {
    this.compiled = undefined;
    this.loading = undefined;
    this.generation++;
  }
}

/** What the filter needs to know about one viewer's subscription. */
export interface FilterViewer {
  readonly accountId: string;
  readonly chosenLanguages: readonly string[] | null;
  readonly access: FeedAccess;
  readonly filters: FilterCache;
}

/** The fields of a status that decisions use, read once per event. */
export interface StatusFacts {
  local: boolean;
  language: unknown;
  authorId: string;
  /** The author and every mentioned account (numeric ids only). */
  targetIds: string[];
  /** The domain of a remote author's acct, else null. */
  domain: string | null;
  /** The payload already carries `filtered` (Rails applied filters). */
  hasFiltered: boolean;
}

/** Facts shared by every viewer of one event. */
export class EventFacts {
  #text?: string;
  #now?: number;
  /** Keyword searches of the text, shared by viewers with the same keywords. */
  readonly #matches: MatchMemo = new Map();
  /** Each viewer's outcome: subscriptions sharing a viewer get one decision. */
  readonly #decisions = new Map<FilterViewer, StreamEvent | DropReason>();

  constructor(
    readonly event: StreamEvent,
    readonly status: StatusFacts,
    /** Viewers (account ids) to whom the status must not be shown; null when unknown. */
    readonly excluded: ReadonlySet<string> | null,
    /** Accounts whose keyword filters could not be loaded. */
    readonly filtersFailed: ReadonlySet<string>,
  ) {}

  /** When the event's viewers are decided (filter expiry): read once for all of them. */
  get now(): number {
    return this.#now ??= Date.now();
  }

  /** {@link decide} for `viewer`, made once per event for every subscription sharing it. */
  decision(viewer: FilterViewer): StreamEvent | DropReason {
    let outcome = this.#decisions.get(viewer);
    if (outcome === undefined) {
      this.#decisions.set(viewer, outcome = decide(this, viewer, this.now));
    }
    return outcome;
  }

  /** The searchable text, computed at most once per event. */
  text(): string {
    return this.#text ??= searchableText(this.event.payload as Record<string, unknown>);
  }

  /** The `filtered` array of a viewer's keyword filters (compiled ones) for this status. */
  filtered(filters: CompiledFilter[], now: number): string {
    return filters.length === 0 ? "[]" : matchFilters(filters, this.text(), now, this.#matches);
  }

  /** The event with `filtered` appended; viewers with equal results share it. */
  withFiltered(filteredJson: string): StreamEvent {
    return this.event.withLastKey("filtered", filteredJson);
  }
}

/** The facts of an event whose database facts could not be had: filtered viewers miss it. */
export function unavailableFacts(event: StreamEvent): EventFacts {
  return new EventFacts(event, statusFacts(event.payload) ?? INVALID, null, new Set());
}

const FILTERED_EVENTS = new Set(["update", "status.update"]);
const NUMERIC = /^\d{1,19}$/;

/** Reads the decision-relevant fields of a status payload. */
export function statusFacts(payload: unknown): StatusFacts | undefined {
  if (typeof payload !== "object" || payload === null) return undefined;
  const status = payload as Record<string, unknown>;
  const account = status.account as Record<string, unknown> | undefined;
  if (typeof account !== "object" || account === null) return undefined;
  const authorId = String(account.id);
  if (!NUMERIC.test(authorId)) return undefined;
  const mentions = Array.isArray(status.mentions) ? status.mentions : [];
  const mentioned = mentions.map((m) => String((m as Record<string, unknown>)?.id));
  const acct = String(account.acct ?? "");
  const at = acct.indexOf("@");
  return {
    local: account.username === account.acct,
    language: status.language ?? null,
    authorId,
    targetIds: [authorId, ...mentioned.filter((id) => NUMERIC.test(id))],
    domain: at >= 0 ? acct.slice(at + 1) : null,
    hasFiltered: Object.hasOwn(status, "filtered"),
  };
}

/** The checks that need no database: feed access and language (docs/protocol.md §8.2, §8.3). */
function precheck(status: StatusFacts, viewer: FilterViewer): DropReason | undefined {
  if (status.local ? viewer.access.localDisabled : viewer.access.remoteDisabled) {
    return "feed_access";
  }
  const chosen = viewer.chosenLanguages;
  if (chosen !== null && !chosen.includes(status.language as string)) return "language";
  return undefined;
}

/** One viewer's outcome: the event to send, or why not. */
export function decide(
  facts: EventFacts,
  viewer: FilterViewer,
  now: number,
): StreamEvent | DropReason {
  if (facts.status === INVALID) return "invalid_status";
  const early = precheck(facts.status, viewer);
  if (early !== undefined) return early;
  if (facts.excluded === null) return "database_error";
  if (facts.excluded.has(viewer.accountId)) return "relationship";
  if (facts.status.hasFiltered) return facts.event;
  if (facts.filtersFailed.has(viewer.accountId)) return "database_error";
  return facts.withFiltered(facts.filtered(viewer.filters.compiled ?? [], now));
}

/** One event and the viewers it is filtered for. */
export interface FactsRequest {
  readonly event: StreamEvent;
  readonly viewers: readonly FilterViewer[];
}

/** Fetches the database facts of events for all their viewers at once. */
export class EventFilter {
  readonly #db: FilterDatabase;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  #outage = false;

  constructor(options: { db: FilterDatabase; log: Logger; metrics: Metrics }) {
    this.#db = options.db;
    this.#log = options.log;
    this.#metrics = options.metrics;
  }

  /** Whether an event is filtered per viewer at all. */
  applies(event: StreamEvent): boolean {
    return event.deliverable && FILTERED_EVENTS.has(event.event);
  }

  /** The facts of one event: {@link EventFilter.prepareMany} with one item. */
  async prepare(event: StreamEvent, viewers: readonly FilterViewer[]): Promise<EventFacts> {
    const [facts] = await this.prepareMany([{ event, viewers }]);
    return facts;
  }

  /**
   * The facts of several events, in their order: one relationship query for
   * every viewer that passes the pure checks of any of them, and one
   * keyword-filter load for those whose cache is empty. Never throws:
   * failures become facts that drop the events for the viewers concerned.
   */
  async prepareMany(items: readonly FactsRequest[]): Promise<EventFacts[]> {
    const statuses = items.map(({ event }) => statusFacts(event.payload));
    const ids = new Set<string>();
    const uncached = new Set<FilterViewer>();
    const asked: StatusFacts[] = [];
    items.forEach(({ viewers }, i) => {
      const status = statuses[i];
      if (status === undefined) return;
      const candidates = viewers.filter((v) => precheck(status, v) === undefined);
      if (candidates.length > 0) asked.push(status);
      for (const v of candidates) {
        ids.add(v.accountId);
        if (!status.hasFiltered && !v.filters.compiled) uncached.add(v);
      }
    });
    const [excluded, filtersFailed] = await Promise.all([
      this.#excluded(asked, [...ids]),
      this.#loadFilters([...uncached]),
    ]);
    return items.map(({ event }, i) => {
      const status = statuses[i];
      if (status === undefined) return new EventFacts(event, INVALID, null, new Set());
      const set = excluded === null ? null : excluded.get(status) ?? new Set<string>();
      return new EventFacts(event, status, set, filtersFailed);
    });
  }

  /** The excluded viewers of each asked status, in one query; null when it failed. */
  async #excluded(
    statuses: StatusFacts[],
    ids: string[],
  ): Promise<Map<StatusFacts, ReadonlySet<string>> | null> {
    if (statuses.length === 0) return new Map();
    this.#metrics.filterRoundTrips.inc();
    try {
      const excluded = await this.#db.excludedViewers({ viewerIds: ids, statuses });
      this.#recovered();
      return new Map(statuses.map((status, i) => [status, new Set(excluded[i])]));
    } catch (err) {
      this.#failed(err);
      return null;
    }
  }

  /** Loads the caches of `viewers`, joining loads already in flight; returns failed ids. */
  async #loadFilters(viewers: FilterViewer[]): Promise<ReadonlySet<string>> {
    if (viewers.length === 0) return new Set();
    const waits = new Set<Promise<ReadonlySet<string>>>();
    const fresh: FilterViewer[] = [];
    for (const viewer of viewers) {
      if (viewer.filters.loading) waits.add(viewer.filters.loading);
      else fresh.push(viewer);
    }
    if (fresh.length > 0) {
      const load = this.#load(fresh);
      for (const viewer of fresh) viewer.filters.loading = load;
      waits.add(load.finally(() => {
        for (const viewer of fresh) {
          if (viewer.filters.loading === load) viewer.filters.loading = undefined;
        }
      }));
    }
    const failed = new Set<string>();
    for (const ids of await Promise.all(waits)) for (const id of ids) failed.add(id);
    return failed;
  }

  async #load(viewers: FilterViewer[]): Promise<ReadonlySet<string>> {
    const generations = viewers.map((v) => v.filters.generation);
    const ids = [...new Set(viewers.map((v) => v.accountId))];
    this.#metrics.filterCacheLoads.inc();
    try {
      const rows = await this.#db.filterRows(ids);
      viewers.forEach((viewer, i) => {
        if (viewer.filters.generation !== generations[i] || viewer.filters.compiled) return;
        viewer.filters.compiled = compileFilters(
          rows.filter((r) => r.accountId === viewer.accountId),
        );
      });
      return new Set();
    } catch (err) {
      this.#failed(err);
      return new Set(ids);
    }
  }

  #failed(err: unknown): void {
    if (this.#outage) return;
    this.#outage = true;
    this.#log.error("PostgreSQL failed while filtering; events are dropped for filtered viewers", {
      err: err as Error,
    });
  }

  #recovered(): void {
    if (!this.#outage) return;
    this.#outage = false;
    this.#log.info("PostgreSQL answers filtering queries again");
  }
}

/** The facts of a payload that is not a status with an account (dropped, counted). */
const INVALID: StatusFacts = Object.freeze({
  local: false,
  language: null,
  authorId: "",
  targetIds: [],
  domain: null,
  hasFiltered: false,
});
