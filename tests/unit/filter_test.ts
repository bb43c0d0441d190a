import assert from "node:assert/strict";
import type { AccountFilterRow, FilterDatabase, RelationshipQuery } from "../../src/db.ts";
import { parseEvent, type StreamEvent } from "../../src/event.ts";
import {
  decide,
  EventFacts,
  EventFilter,
  FilterCache,
  type FilterViewer,
  statusFacts,
} from "../../src/filter.ts";
import { compileFilters } from "../../src/keyword_filter.ts";
import { silentLogger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics.ts";

const OPEN = { localDisabled: false, remoteDisabled: false };

function status(overrides: Record<string, unknown> = {}): StreamEvent {
  const payload = {
    id: "100",
    language: "en",
    content: "<p>Hello world</p>",
    spoiler_text: "",
    account: { id: "2", username: "bob", acct: "bob" },
    mentions: [],
    ...overrides,
  };
  return parseEvent(JSON.stringify({ event: "update", payload }));
}

function viewer(accountId: string, extra: Partial<FilterViewer> = {}): FilterViewer {
  const filters = new FilterCache();
  filters.compiled = [];
  return { accountId, chosenLanguages: null, access: OPEN, filters, ...extra };
}

function facts(event: StreamEvent, excluded: string[] | null = [], failed: string[] = []) {
  return new EventFacts(
    event,
    statusFacts(event.payload)!,
    excluded && new Set(excluded),
    new Set(failed),
  );
}

const payloadOf = (outcome: StreamEvent | string) => {
  assert.notEqual(typeof outcome, "string", `dropped: ${outcome}`);
  return (outcome as StreamEvent).payloadJson;
};

Deno.test("statusFacts reads locality, language, targets and domain once", () => {
  const local = statusFacts(status({ mentions: [{ id: "3" }, { id: "x" }] }).payload)!;
  assert.deepEqual(local, {
    local: true,
    language: "en",
    authorId: "2",
    targetIds: ["2", "3"],
    domain: null,
    hasFiltered: false,
  });
  const remote = statusFacts(
    status({ account: { id: "4", username: "dave", acct: "dave@Spam.example" }, language: null })
      .payload,
  )!;
  assert.equal(remote.local, false);
  assert.equal(remote.domain, "Spam.example");
  assert.equal(remote.language, null);
  assert.equal(statusFacts({ id: "1" }), undefined);
  assert.equal(statusFacts({ account: { id: "abc" } }), undefined);
});

Deno.test("Feed access drops local or remote statuses for viewers without the permission", () => {
  const local = facts(status());
  const remote = facts(
    status({ account: { id: "6", username: "frank", acct: "frank@x.example" } }),
  );
  const noLocal = viewer("1", { access: { localDisabled: true, remoteDisabled: false } });
  const noRemote = viewer("1", { access: { localDisabled: false, remoteDisabled: true } });
  assert.equal(decide(local, noLocal, 0), "feed_access");
  payloadOf(decide(remote, noLocal, 0));
  assert.equal(decide(remote, noRemote, 0), "feed_access");
  payloadOf(decide(local, noRemote, 0));
});

Deno.test("Language: not chosen is dropped, null is dropped when languages are chosen", () => {
  const en = viewer("1", { chosenLanguages: ["en"] });
  assert.equal(decide(facts(status({ language: "de" })), en, 0), "language");
  assert.equal(decide(facts(status({ language: null })), en, 0), "language");
  payloadOf(decide(facts(status({ language: "en" })), en, 0));
  payloadOf(decide(facts(status({ language: null })), viewer("2"), 0));
  assert.equal(decide(facts(status()), viewer("1", { chosenLanguages: [] }), 0), "language");
});

Deno.test("Relationships: an excluded viewer is dropped, others pass", () => {
  const f = facts(status(), ["1"]);
  assert.equal(decide(f, viewer("1"), 0), "relationship");
  payloadOf(decide(f, viewer("5"), 0));
});

Deno.test("A database failure drops the event for the viewers it could not decide", () => {
  assert.equal(decide(facts(status(), null), viewer("1"), 0), "database_error");
  const partial = facts(status(), [], ["1"]);
  assert.equal(decide(partial, viewer("1"), 0), "database_error");
  payloadOf(decide(partial, viewer("2"), 0));
});

Deno.test("filtered is appended as the last key: [] without matches, shared bytes", () => {
  const f = facts(status());
  const a = decide(f, viewer("1"), 0), b = decide(f, viewer("5"), 0);
  assert.equal(a, b);
  assert.match(payloadOf(a), /,"mentions":\[\],"filtered":\[\]\}$/);
});

Deno.test("Keyword filters match whole words and report the first match", () => {
  const rows = [{
    id: "5",
    title: "Spoilers",
    context: ["home", "public"],
    expires_at: null,
    filter_action: 0,
    keyword: "spoiler",
    whole_word: true,
  }];
  const withFilter = viewer("1");
  withFilter.filters.compiled = compileFilters(rows);
  const hit = decide(facts(status({ content: "<p>A SPOILER here</p>" })), withFilter, 0);
  assert.ok(
    payloadOf(hit).endsWith(
      ',"filtered":[{"filter":{"id":"5","title":"Spoilers","context":["home","public"],' +
        '"expires_at":null,"filter_action":"warn"},"keyword_matches":["SPOILER"],"status_matches":null}]}',
    ),
  );
  const miss = decide(facts(status({ content: "<p>spoilers</p>" })), withFilter, 0);
  assert.ok(payloadOf(miss).endsWith(',"filtered":[]}'));
});

Deno.test("Expired filters are skipped", () => {
  const v = viewer("1");
  v.filters.compiled = compileFilters([{
    id: "5",
    title: "Old",
    context: ["public"],
    expires_at: new Date(1000),
    filter_action: 1,
    keyword: "hello",
    whole_word: false,
  }]);
  assert.ok(payloadOf(decide(facts(status()), v, 500)).includes('"keyword_matches":["Hello"]'));
  assert.ok(payloadOf(decide(facts(status()), v, 2000)).endsWith(',"filtered":[]}'));
});

Deno.test("A payload that already has filtered is forwarded as it is", () => {
  const event = status({ filtered: [{ x: 1 }] });
  assert.equal(decide(facts(event), viewer("1"), 0), event);
});

Deno.test("Checks apply in Mastodon's order: feed access, language, relationships", () => {
  const blocked = viewer("1", {
    chosenLanguages: ["de"],
    access: { localDisabled: true, remoteDisabled: false },
  });
  assert.equal(decide(facts(status(), ["1"]), blocked, 0), "feed_access");
  assert.equal(
    decide(facts(status(), ["1"]), { ...blocked, access: OPEN }, 0),
    "language",
  );
});

class FakeDb implements FilterDatabase {
  queries: RelationshipQuery[] = [];
  loads: string[][] = [];
  fail = false;
  constructor(readonly excluded: string[], readonly rows: AccountFilterRow[] = []) {}
  excludedViewers(query: RelationshipQuery): Promise<string[][]> {
    this.queries.push(query);
    if (this.fail) return Promise.reject(new Error("down"));
    // A viewer in `excluded` is excluded from the statuses that mention or are by "7" or "2".
    return Promise.resolve(
      query.statuses.map((s) =>
        s.targetIds.some((t) => t === "2" || t === "7")
          ? this.excluded.filter((id) => query.viewerIds.includes(id))
          : []
      ),
    );
  }
  filterRows(ids: readonly string[]): Promise<AccountFilterRow[]> {
    this.loads.push([...ids]);
    return Promise.resolve(this.rows.filter((r) => ids.includes(r.accountId)));
  }
}

Deno.test("prepare asks once for every viewer that passes the pure checks", async () => {
  const db = new FakeDb(["3"]);
  const metrics = new Metrics();
  const filter = new EventFilter({ db, log: silentLogger, metrics });
  const viewers = ["1", "2", "3", "3"].map((id) => viewer(id));
  viewers.push(viewer("9", { chosenLanguages: ["fr"] }));
  const result = await filter.prepare(status({ mentions: [{ id: "7" }] }), viewers);
  assert.equal(db.queries.length, 1);
  assert.deepEqual(db.queries[0].viewerIds, ["1", "2", "3"]);
  const [asked] = db.queries[0].statuses;
  assert.deepEqual([asked.authorId, asked.targetIds, asked.domain], ["2", ["2", "7"], null]);
  assert.deepEqual([...result.excluded!], ["3"]);
  assert.equal(metrics.filterRoundTrips.get(), 1);
});

Deno.test("prepare loads keyword filters once for every uncached viewer", async () => {
  const row = {
    accountId: "1",
    id: "5",
    title: "t",
    context: [],
    expires_at: null,
    filter_action: 0,
    keyword: "world",
    whole_word: true,
  };
  const db = new FakeDb([], [row]);
  const filter = new EventFilter({ db, log: silentLogger, metrics: new Metrics() });
  const a = viewer("1"), b = viewer("2");
  a.filters.compiled = undefined;
  b.filters.compiled = undefined;
  await filter.prepare(status(), [a, b]);
  assert.deepEqual(db.loads, [["1", "2"]]);
  assert.equal((a.filters.compiled as unknown[] | undefined)?.length, 1);
  assert.deepEqual(b.filters.compiled, []);
  await filter.prepare(status(), [a, b]);
  assert.equal(db.loads.length, 1);
  a.filters.invalidate();
  await filter.prepare(status(), [a, b]);
  assert.deepEqual(db.loads[1], ["1"]);
});

Deno.test("prepare turns a database failure into facts, never an exception", async () => {
  const db = new FakeDb([]);
  db.fail = true;
  const filter = new EventFilter({ db, log: silentLogger, metrics: new Metrics() });
  const result = await filter.prepare(status(), [viewer("1")]);
  assert.equal(result.excluded, null);
});

Deno.test("prepare makes no query when no viewer passes the pure checks", async () => {
  const db = new FakeDb([]);
  const filter = new EventFilter({ db, log: silentLogger, metrics: new Metrics() });
  await filter.prepare(status({ language: "de" }), [viewer("1", { chosenLanguages: ["en"] })]);
  assert.equal(db.queries.length, 0);
});

Deno.test("events prepared concurrently share one keyword-filter load per viewer", async () => {
  const db = new FakeDb([]);
  const filter = new EventFilter({ db, log: silentLogger, metrics: new Metrics() });
  const a = viewer("1"), b = viewer("2");
  a.filters.compiled = undefined;
  b.filters.compiled = undefined;
  await Promise.all([
    filter.prepare(status(), [a]),
    filter.prepare(status(), [a, b]),
    filter.prepare(status(), [b]),
  ]);
  assert.deepEqual(db.loads, [["1"], ["2"]]);
  assert.deepEqual(a.filters.compiled, []);
  assert.equal(a.filters.loading, undefined, "nothing left in flight");
});

Deno.test("prepareMany fetches the facts of several events in one query, each its own", async () => {
  const db = new FakeDb(["3"]);
  const metrics = new Metrics();
  const filter = new EventFilter({ db, log: silentLogger, metrics });
  const viewers = [viewer("1"), viewer("3")];
  const frank = { id: "6", username: "frank", acct: "frank@x.example" };
  const [byBob, byFrank, invalid] = await filter.prepareMany([
    { event: status(), viewers },
    { event: status({ account: frank }), viewers },
    { event: status({ account: null }), viewers },
  ]);
  assert.equal(db.queries.length, 1);
  assert.equal(metrics.filterRoundTrips.get(), 1);
  assert.deepEqual(db.queries[0].viewerIds, ["1", "3"]);
  assert.deepEqual(db.queries[0].statuses.map((s) => s.authorId), ["2", "6"]);
  assert.deepEqual([...byBob.excluded!], ["3"]);
  assert.deepEqual([...byFrank.excluded!], []);
  assert.equal(decide(invalid, viewers[0], 0), "invalid_status");
});

Deno.test("prepareMany turns a failed query into a database_error for every event", async () => {
  const db = new FakeDb([]);
  db.fail = true;
  const filter = new EventFilter({ db, log: silentLogger, metrics: new Metrics() });
  const facts = await filter.prepareMany([
    { event: status(), viewers: [viewer("1")] },
    { event: status(), viewers: [viewer("2")] },
  ]);
  assert.deepEqual(facts.map((f) => decide(f, viewer("1"), 0)), [
    "database_error",
    "database_error",
  ]);
});
