import { deepEqual, equal } from "node:assert/strict";
import {
  type CompiledFilter,
  compileFilters,
  type FilterRow,
  matchFilters,
  searchableText,
  type StatusLike,
} from "../../src/keyword_filter.ts";
import fixture from "../../test_data/filter-text-cases.json" with { type: "json" };

const NOW = Date.parse("2026-01-15T12:00:00.000Z");

function row(overrides: Partial<FilterRow> = {}): FilterRow {
  return {
    id: "1",
    title: "Spoilers",
    context: ["public"],
    expires_at: null,
    filter_action: 0,
    keyword: "spoiler",
    whole_word: true,
    ...overrides,
  };
}

function regexpOf(keyword: string, whole_word: boolean): RegExp {
  return compileFilters([row({ keyword, whole_word })])[0].regexp;
}

/** The leftmost match of each matching filter, as reported in `keyword_matches`. */
function matchesOf(filters: CompiledFilter[], text: string): string[][] {
  const filtered: { keyword_matches: string[] }[] = JSON.parse(matchFilters(filters, text, NOW));
  return filtered.map((entry) => entry.keyword_matches);
}

Deno.test("searchableText reproduces every fixture status's searchable text", async (t) => {
  for (const [i, { status, text }] of fixture.searchable_text.entries()) {
    await t.step(`case ${i}: ${JSON.stringify(status).slice(0, 60)}`, () => {
      equal(searchableText(status), text);
    });
  }
});

Deno.test("searchableText excludes comments and template contents but keeps script text", () => {
  equal(
    searchableText({ content: "<p>a<!--b--><template>c</template><script>d</script>e</p>" }),
    "\n\nade",
  );
});

Deno.test("searchableText replaces only lower-case <br> forms and adjacent </p><p>", () => {
  equal(searchableText({ content: "a<br>b<br/>c<br  />d<BR>e" }), "\n\na\nb\nc\nde");
  equal(searchableText({ content: "<p>a</p><p>b</p>\n<p>c</p>" }), "\n\na\n\nb\nc");
});

Deno.test("searchableText survives deeply nested markup", () => {
  const depth = 20_000;
  const content = "<span>".repeat(depth) + "deep" + "</span>".repeat(depth);
  equal(searchableText({ content }), "\n\ndeep");
});

Deno.test("searchableText treats missing and mistyped fields as empty and never throws", async (t) => {
  const cases: [string, unknown, string][] = [
    ["content null", { content: null }, "\n\n"],
    ["content a number", { content: 42, spoiler_text: 7 }, "\n\n"],
    ["content an object", { content: { toString: () => "x" } }, "\n\n"],
    ["empty object", {}, "\n\n"],
    ["poll null", { content: "c", poll: null }, "\n\nc"],
    ["poll without options", { content: "c", poll: {} }, "\n\nc"],
    ["poll options not an array", { content: "c", poll: { options: "x" } }, "\n\nc"],
    [
      "poll option null or untitled",
      { content: "c", poll: { options: [null, {}, { title: 3 }, { title: "t" }] } },
      "\n\nc\n\n\n\n\n\n\n\nt",
    ],
    [
      "media description null",
      { content: "c", media_attachments: [{ description: null }] },
      "\n\nc\n\n",
    ],
    ["media entry null", { content: "c", media_attachments: [null] }, "\n\nc\n\n"],
    ["media not an array", { content: "c", media_attachments: { description: "d" } }, "\n\nc"],
    ["status null", null, "\n\n"],
    ["status a string", "<p>x</p>", "\n\n"],
  ];
  for (const [name, status, text] of cases) {
    await t.step(name, () => equal(searchableText(status as StatusLike), text));
  }
});

Deno.test("matchFilters reports the fixture's first match for every keyword case", async (t) => {
  for (const [i, { keywords, text, first_match }] of fixture.keyword_matches.entries()) {
    const label = `case ${i}: ${keywords.map((k) => k.keyword).join("|")} in ${
      JSON.stringify(text)
    }`;
    await t.step(label.slice(0, 100), () => {
      const filters = compileFilters(keywords.map((k) => row(k)));
      deepEqual(matchesOf(filters, text), first_match === null ? [] : [[first_match]]);
    });
  }
});

Deno.test("compileFilters escapes regexp syntax in keywords", () => {
  const specials = ". * + ? ^ $ { } ( ) | [ ] \\";
  const regexp = regexpOf(specials, false);
  equal(regexp.source, String.raw`\. \* \+ \? \^ \$ \{ \} \( \) \| \[ \] \\`);
  equal(regexp.test(`x${specials}y`), true);
  equal(regexpOf("a+b", false).test("aab"), false);
  equal(regexpOf("a-b/c", false).source, new RegExp("a-b/c").source);
});

Deno.test("compileFilters adds \\b only at whole-word ends that are ASCII word characters", () => {
  equal(regexpOf("cat", true).source, String.raw`\bcat\b`);
  equal(regexpOf("#tag", true).source, String.raw`#tag\b`);
  equal(regexpOf("tag!", true).source, String.raw`\btag!`);
  equal(regexpOf("(x)", true).source, String.raw`\(x\)`);
  equal(regexpOf("_x9", true).source, String.raw`\b_x9\b`);
  equal(regexpOf("café", true).source, String.raw`\bcafé`);
  equal(regexpOf("cat", false).source, "cat");
});

Deno.test("whole-word matching uses ASCII word boundaries, so caf matches inside café", () => {
  equal(regexpOf("caf", true).exec("un café")?.[0], "caf");
  equal(regexpOf("cat", true).test("concatenate"), false);
  equal(regexpOf("cat", true).test("a cat."), true);
  equal(regexpOf("cat", false).test("concatenate"), true);
});

Deno.test("compileFilters joins a filter's keywords with | and matches case-insensitively only", () => {
  const [filter] = compileFilters([
    row({ keyword: "foo" }),
    row({ keyword: "bar", whole_word: false }),
  ]);
  equal(filter.regexp.source, String.raw`\bfoo\b|bar`);
  equal(filter.regexp.flags, "i");
  equal(filter.regexp.exec("xBARx")?.[0], "BAR");
});

Deno.test("compileFilters groups rows by filter id in order of first appearance", () => {
  const filters = compileFilters([
    row({ id: "7", title: "seven", keyword: "a" }),
    row({ id: "3", title: "three", keyword: "b" }),
    row({ id: "7", title: "seven", keyword: "c" }),
  ]);
  deepEqual(filters.map((f) => f.id), ["7", "3"]);
  deepEqual(filters.map((f) => f.regexp.source), [String.raw`\ba\b|\bc\b`, String.raw`\bb\b`]);
});

Deno.test("the filter JSON has Mastodon's key order and an ISO date with milliseconds", () => {
  const [filter] = compileFilters([
    row({
      id: "12",
      title: 'No "spoilers"',
      context: ["home", "public"],
      expires_at: new Date("2026-03-01T08:09:10Z"),
      filter_action: 1,
    }),
  ]);
  equal(
    filter.json,
    '{"id":"12","title":"No \\"spoilers\\"","context":["home","public"],' +
      '"expires_at":"2026-03-01T08:09:10.000Z","filter_action":"hide"}',
  );
  equal(filter.expiresAt, Date.parse("2026-03-01T08:09:10Z"));
});

Deno.test("filter_action maps 0, 1, 2 to warn, hide, blur and omits unknown actions", () => {
  const actionOf = (filter_action: number) =>
    JSON.parse(compileFilters([row({ filter_action })])[0].json).filter_action;
  equal(actionOf(0), "warn");
  equal(actionOf(1), "hide");
  equal(actionOf(2), "blur");
  equal(actionOf(3), undefined);
  equal(compileFilters([row({ filter_action: 3 })])[0].json.includes("filter_action"), false);
});

Deno.test("a filter without expiry has expires_at null", () => {
  const [filter] = compileFilters([row()]);
  equal(filter.expiresAt, null);
  equal(JSON.parse(filter.json).expires_at, null);
});

Deno.test("matchFilters builds one entry per matching filter, in order, with the first match", () => {
  const filters = compileFilters([
    row({ id: "1", keyword: "cat", filter_action: 2 }),
    row({ id: "2", keyword: "dog" }),
    row({ id: "3", keyword: "CAT", whole_word: false }),
  ]);
  equal(
    matchFilters(filters, "Cat and cat", NOW),
    `[{"filter":${filters[0].json},"keyword_matches":["Cat"],"status_matches":null},` +
      `{"filter":${filters[2].json},"keyword_matches":["Cat"],"status_matches":null}]`,
  );
  equal(JSON.parse(matchFilters(filters, "a cat", NOW))[0].filter.filter_action, "blur");
});

Deno.test("matchFilters returns [] for empty text or when nothing matches", () => {
  const filters = compileFilters([row({ keyword: "", whole_word: false })]);
  equal(matchFilters(filters, "", NOW), "[]");
  equal(matchFilters(compileFilters([row()]), "nothing here", NOW), "[]");
  equal(matchFilters([], "spoiler", NOW), "[]");
});

Deno.test("matchFilters skips filters that expired before now", () => {
  const filters = compileFilters([
    row({ id: "1", expires_at: new Date(NOW - 1) }),
    row({ id: "2", expires_at: new Date(NOW) }),
    row({ id: "3", expires_at: new Date(NOW + 60_000) }),
  ]);
  const ids = JSON.parse(matchFilters(filters, "a spoiler", NOW)).map(
    (entry: { filter: { id: string } }) => entry.filter.id,
  );
  deepEqual(ids, ["2", "3"]);
});

Deno.test("matchFilters escapes the matched text as a JSON string", () => {
  const filters = compileFilters([row({ keyword: 'say "hi"', whole_word: false })]);
  deepEqual(matchesOf(filters, 'they SAY "HI"'), [['SAY "HI"']]);
});

Deno.test("matchFilters with a memo searches each pattern once and gives the same result", () => {
  const a = compileFilters([row({ id: "1", keyword: "cat" }), row({ id: "2", keyword: "dog" })]);
  const b = compileFilters([row({ id: "3", keyword: "cat" })]);
  const text = "a dog and a Cat";
  const memo = new Map<string, string | null>();
  equal(matchFilters(a, text, NOW, memo), matchFilters(a, text, NOW));
  equal(matchFilters(b, text, NOW, memo), matchFilters(b, text, NOW));
  deepEqual([...memo.values()], ["Cat", "dog"], "one entry per distinct pattern");
  // A memo holding "no match" for a pattern is believed: it must belong to this text.
  const stale = new Map<string, string | null>([[b[0].regexp.source, null]]);
  equal(matchFilters(b, text, NOW, stale), "[]");
});
