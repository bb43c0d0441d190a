/**
 * The viewers of the filtered fan-out case (bench/scenarios.ts case c): a
 * deterministic mix of 1,000 local accounts, each with a user and an access
 * token, whose rows block, mute or domain-block the benchmark's remote author,
 * are blocked by it, choose languages that exclude the status's, or carry
 * keyword filters that match (or not) the load generator's status text. The
 * one table {@link viewerProfile} decides both the SQL and how many
 * deliveries each viewer should get, so the two cannot drift apart. Pure: it
 * only builds SQL text.
 *
 * @module
 */

/**
 * The statuses of `bench/messages.ts` with `--author remote`: account 78,
 * `federationbot@mastodon.host`, language `en`, content "Load test status
 * BENCHTS<16 digits> lorem ipsum dolor sit amet, co" (at 1.5 KB; the filler
 * grows with `--payload-bytes`).
 */
export const BENCH_AUTHOR = Object.freeze({
  id: 78,
  username: "federationbot",
  domain: "mastodon.host",
  language: "en",
});

/** The first viewer's account, user and token id (ids above the seed's). */
export const FIRST_VIEWER_ID = 10_001;

/** A keyword filter of one viewer; `matches` says whether the bench status text trips it. */
export interface KeywordSeed {
  keyword: string;
  wholeWord: boolean;
  /** 0 warn, 1 hide: neither drops the status on the server (it gains `filtered`). */
  action: 0 | 1;
  matches: boolean;
}

/** What a viewer's rows say and whether the bench statuses reach it. */
export interface ViewerProfile {
  /** Short label of the category, for the report. */
  kind: string;
  blocksAuthor?: boolean;
  mutesAuthor?: boolean;
  blocksDomain?: boolean;
  blockedByAuthor?: boolean;
  /** Blocks, mutes and domain-blocks that do not concern the author. */
  unrelatedRelations?: boolean;
  /** null: all languages. */
  chosenLanguages: string[] | null;
  keywords: KeywordSeed[];
  /** Whether every bench status is delivered to this viewer. */
  delivered: boolean;
}

/** Keywords tried against the bench status text (the marker's digits end no word). */
const MATCHING: KeywordSeed[] = [
  { keyword: "lorem", wholeWord: true, action: 0, matches: true },
  { keyword: "Load test", wholeWord: true, action: 1, matches: true },
  { keyword: "benchts", wholeWord: false, action: 0, matches: true },
  { keyword: "STATUS", wholeWord: true, action: 1, matches: true },
];
const NOT_MATCHING: KeywordSeed[] = [
  { keyword: "cryptocurrency", wholeWord: true, action: 1, matches: false },
  { keyword: "spoiler", wholeWord: true, action: 0, matches: false },
  { keyword: "BENCHTS", wholeWord: true, action: 0, matches: false },
  { keyword: "#elephant", wholeWord: false, action: 1, matches: false },
];

/** Twenty categories, repeated: 5 of 20 (25 %) never get the bench statuses. */
const CATEGORIES: readonly (() => ViewerProfile)[] = [
  () => excluded("blocks author", { blocksAuthor: true }),
  () => excluded("mutes author", { mutesAuthor: true }),
  () => excluded("blocks author's domain", { blocksDomain: true }),
  () => excluded("blocked by author", { blockedByAuthor: true }),
  () => ({ ...plain("languages exclude en", ["de", "fr"]), delivered: false }),
  ...[0, 1, 2, 3].map((k) => () => ({
    ...plain("matching keyword filter"),
    keywords: [MATCHING[k]],
  })),
  ...[0, 1, 2, 3].map((k) => () => ({
    ...plain("non-matching keyword filter"),
    keywords: [NOT_MATCHING[k]],
  })),
  () => ({ ...plain("matching + non-matching filters"), keywords: [MATCHING[0], NOT_MATCHING[0]] }),
  () => plain("languages include en", ["en", "de"]),
  () => plain("languages en", ["en"]),
  () => ({ ...plain("unrelated blocks/mutes/domain block"), unrelatedRelations: true }),
  () => ({
    ...plain("unrelated relations + filter"),
    unrelatedRelations: true,
    keywords: [NOT_MATCHING[1]],
  }),
  () => plain("no rows"),
  () => plain("no rows"),
];

function plain(kind: string, chosenLanguages: string[] | null = null): ViewerProfile {
  return { kind, chosenLanguages, keywords: [], delivered: true };
}

function excluded(kind: string, rows: Partial<ViewerProfile>): ViewerProfile {
  return { ...plain(kind), ...rows, delivered: false };
}

/** The profile of viewer number `index` (0-based). */
export function viewerProfile(index: number): ViewerProfile {
  return CATEGORIES[index % CATEGORIES.length]();
}

/** The access token of viewer number `index`. */
export function viewerToken(index: number): string {
  return `bench-viewer-${String(index + 1).padStart(4, "0")}`;
}

/**
 * Deliveries the filtered run should make: clients take tokens round-robin
 * (`tokens[k % tokens.length]`, as the load generator does), each viewer gets
 * every one of the `published` statuses unless its profile excludes them.
 */
export function expectedDeliveries(clients: number, viewers: number, published: number): number {
  let reached = 0;
  for (let k = 0; k < clients; k++) if (viewerProfile(k % viewers).delivered) reached++;
  return reached * published;
}

/** How many viewers of each kind there are among the first `viewers`. */
export function profileCounts(viewers: number): Map<string, { count: number; delivered: boolean }> {
  const counts = new Map<string, { count: number; delivered: boolean }>();
  for (let i = 0; i < viewers; i++) {
    const { kind, delivered } = viewerProfile(i);
    const entry = counts.get(kind) ?? { count: 0, delivered };
    entry.count++;
    counts.set(kind, entry);
  }
  return counts;
}

const ROWS_PER_STATEMENT = 250;

function quote(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

function insert(table: string, columns: string, rows: string[]): string[] {
  const statements: string[] = [];
  for (let at = 0; at < rows.length; at += ROWS_PER_STATEMENT) {
    const values = rows.slice(at, at + ROWS_PER_STATEMENT).join(",\n  ");
    statements.push(`INSERT INTO ${table} (${columns}) VALUES\n  ${values};`);
  }
  return statements;
}

/**
 * SQL statements that add `viewers` accounts, users and tokens with their
 * relations and filters (plus the remote author's account row) to a database
 * holding test_data/mastodon-seed.sql. Each statement stays well below the
 * size of one command-line argument, so each can go to `psql -c`.
 */
export function seedStatements(viewers: number): string[] {
  const a = BENCH_AUTHOR;
  const accounts = [`(${a.id}, ${quote(a.username)}, ${quote(a.domain)})`];
  const users: string[] = [];
  const tokens: string[] = [];
  const blocks: string[] = [];
  const mutes: string[] = [];
  const domainBlocks: string[] = [];
  const filters: string[] = [];
  const keywords: string[] = [];
  for (let i = 0; i < viewers; i++) {
    const id = FIRST_VIEWER_ID + i;
    const p = viewerProfile(i);
    const languages = p.chosenLanguages === null ? "NULL" : quote(`{${p.chosenLanguages}}`);
    accounts.push(`(${id}, 'viewer${i + 1}', NULL)`);
    users.push(`(${id}, 'viewer${i + 1}@bench.test', ${id}, false, ${languages})`);
    tokens.push(`(${id}, ${quote(viewerToken(i))}, 'read', ${id})`);
    if (p.blocksAuthor) blocks.push(`(${id}, ${a.id})`);
    if (p.blockedByAuthor) blocks.push(`(${a.id}, ${id})`);
    if (p.mutesAuthor) mutes.push(`(${id}, ${a.id})`);
    if (p.blocksDomain) domainBlocks.push(`(${id}, ${quote(a.domain)})`);
    if (p.unrelatedRelations) {
      blocks.push(`(${id}, 3)`);
      mutes.push(`(${id}, 5)`);
      domainBlocks.push(`(${id}, 'spam.example')`);
    }
    p.keywords.forEach((k, n) => {
      const filterId = id * 10 + n;
      filters.push(
        `(${filterId}, ${id}, ${quote(`Bench ${k.keyword}`)}, '{home,public}', ${k.action})`,
      );
      keywords.push(`(${filterId}, ${quote(k.keyword)}, ${k.wholeWord})`);
    });
  }
  return [
    ...insert("accounts", "id, username, domain", accounts),
    ...insert("users", "id, email, account_id, disabled, chosen_languages", users),
    ...insert("oauth_access_tokens", "id, token, scopes, resource_owner_id", tokens),
    ...insert("blocks", "account_id, target_account_id", blocks),
    ...insert("mutes", "account_id, target_account_id", mutes),
    ...insert("account_domain_blocks", "account_id, domain", domainBlocks),
    ...insert("custom_filters", "id, account_id, phrase, context, action", filters),
    ...insert("custom_filter_keywords", "custom_filter_id, keyword, whole_word", keywords),
  ];
}
