import { deepEqual, equal, throws } from "node:assert/strict";
import { RequestError } from "../../src/errors.ts";
import {
  feedKind,
  hasRequiredScope,
  isTruthy,
  METRICS_CHANNEL_LABELS,
  normalizeHashtag,
  parseTimeline,
  redisChannels,
  requiredScopes,
  sseRequestPath,
  STREAM_NAMES,
  streamFromPath,
  streamLabel,
  subscriptionKey,
  systemChannels,
  type Timeline,
} from "../../src/timeline.ts";

const viewer = { accountId: "42", scopes: ["read"] };
const noParams = {};

function channelsOf(
  stream: string,
  params: Record<string, unknown> = noParams,
  scopes: string[] = ["read"],
): string[] {
  return redisChannels(parseTimeline(stream, params), { accountId: "42", scopes });
}

function throwsRequestError(fn: () => unknown, message: string): void {
  throws(fn, (err) => err instanceof RequestError && err.message === message);
}

Deno.test("there are exactly Mastodon's twelve stream names", () => {
  deepEqual([...STREAM_NAMES].sort(), [
    "direct",
    "hashtag",
    "hashtag:local",
    "list",
    "public",
    "public:local",
    "public:local:media",
    "public:media",
    "public:remote",
    "public:remote:media",
    "user",
    "user:notification",
  ]);
});

Deno.test("metrics channel labels are system plus every stream name", () => {
  deepEqual([...METRICS_CHANNEL_LABELS].sort(), ["system", ...STREAM_NAMES].sort());
  equal(METRICS_CHANNEL_LABELS[0], "system");
});

Deno.test("each stream subscribes to Mastodon's Redis channels", async (t) => {
  const rows: [string, Record<string, unknown>, string[]][] = [
    ["user", {}, ["timeline:42", "timeline:42:notifications"]],
    ["user:notification", {}, ["timeline:42:notifications"]],
    ["public", {}, ["timeline:public"]],
    ["public:local", {}, ["timeline:public:local"]],
    ["public:remote", {}, ["timeline:public:remote"]],
    ["public:media", {}, ["timeline:public:media"]],
    ["public:local:media", {}, ["timeline:public:local:media"]],
    ["public:remote:media", {}, ["timeline:public:remote:media"]],
    ["hashtag", { tag: "Café" }, ["timeline:hashtag:cafe"]],
    ["hashtag:local", { tag: "Café" }, ["timeline:hashtag:cafe:local"]],
    ["list", { list: "7" }, ["timeline:list:7"]],
    ["direct", {}, ["timeline:direct:42"]],
  ];
  for (const [stream, params, expected] of rows) {
    await t.step(`${stream} → ${expected.join(", ")}`, () => {
      deepEqual(channelsOf(stream, params), expected);
    });
  }
});

Deno.test("user includes notifications only with read or read:notifications", async (t) => {
  const rows: [string[], string[]][] = [
    [["read"], ["timeline:42", "timeline:42:notifications"]],
    [["read:notifications", "read:statuses"], ["timeline:42", "timeline:42:notifications"]],
    [["read:statuses"], ["timeline:42"]],
    [["read:statuses", "write", "follow"], ["timeline:42"]],
  ];
  for (const [scopes, expected] of rows) {
    await t.step(`scopes ${scopes.join(" ")} → ${expected.join(", ")}`, () => {
      deepEqual(channelsOf("user", {}, scopes), expected);
    });
  }
});

Deno.test("a list channel uses the list parameter as given", () => {
  deepEqual(channelsOf("list", { list: 12 }), ["timeline:list:12"]);
  deepEqual(channelsOf("list", { list: "0" }), ["timeline:list:0"]);
  deepEqual(channelsOf("list", { list: "abc" }), ["timeline:list:abc"]);
});

Deno.test("a tag that normalises to nothing is accepted with an empty channel suffix", () => {
  deepEqual(channelsOf("hashtag", { tag: "!!!" }), ["timeline:hashtag:"]);
  deepEqual(channelsOf("hashtag:local", { tag: "🎉" }), ["timeline:hashtag::local"]);
});

Deno.test("each SSE path selects its stream", async (t) => {
  const rows: [string, string][] = [
    ["/api/v1/streaming/user", "user"],
    ["/api/v1/streaming/user/notification", "user:notification"],
    ["/api/v1/streaming/public", "public"],
    ["/api/v1/streaming/public/local", "public:local"],
    ["/api/v1/streaming/public/remote", "public:remote"],
    ["/api/v1/streaming/hashtag", "hashtag"],
    ["/api/v1/streaming/hashtag/local", "hashtag:local"],
    ["/api/v1/streaming/direct", "direct"],
    ["/api/v1/streaming/list", "list"],
  ];
  for (const [path, stream] of rows) {
    await t.step(`${path} → ${stream}`, () => {
      equal(streamFromPath(path, new URLSearchParams()), stream);
    });
  }
});

Deno.test("a truthy only_media selects the media variant of the three public paths", async (t) => {
  const rows: [string, string][] = [
    ["/api/v1/streaming/public", "public:media"],
    ["/api/v1/streaming/public/local", "public:local:media"],
    ["/api/v1/streaming/public/remote", "public:remote:media"],
  ];
  for (const [path, stream] of rows) {
    for (const value of ["1", "true", "yes", "False", "Off", "t"]) {
      await t.step(`${path}?only_media=${value} → ${stream}`, () => {
        equal(streamFromPath(path, new URLSearchParams({ only_media: value })), stream);
      });
    }
  }
});

Deno.test("a falsy or missing only_media keeps the plain public stream", async (t) => {
  const path = "/api/v1/streaming/public/local";
  for (const value of ["", "0", "f", "F", "false", "FALSE", "off", "OFF"]) {
    await t.step(`only_media=${JSON.stringify(value)} → public:local`, () => {
      equal(streamFromPath(path, new URLSearchParams({ only_media: value })), "public:local");
    });
  }
  await t.step("no only_media → public:local", () => {
    equal(streamFromPath(path, new URLSearchParams("other=1")), "public:local");
  });
});

Deno.test("a repeated only_media is truthy, as Mastodon's array-valued query is", () => {
  const path = "/api/v1/streaming/public";
  equal(streamFromPath(path, new URLSearchParams("only_media=1&only_media=0")), "public:media");
  equal(streamFromPath(path, new URLSearchParams("only_media=0&only_media=0")), "public:media");
  equal(streamFromPath(path, new URLSearchParams("only_media=0")), "public");
});

Deno.test("only_media is ignored on every other path", async (t) => {
  const query = new URLSearchParams({ only_media: "1" });
  const rows: [string, string][] = [
    ["/api/v1/streaming/user", "user"],
    ["/api/v1/streaming/hashtag", "hashtag"],
    ["/api/v1/streaming/hashtag/local", "hashtag:local"],
    ["/api/v1/streaming/list", "list"],
    ["/api/v1/streaming/direct", "direct"],
  ];
  for (const [path, stream] of rows) {
    await t.step(
      `${path}?only_media=1 → ${stream}`,
      () => equal(streamFromPath(path, query), stream),
    );
  }
});

Deno.test("SSE paths Mastodon does not serve select no stream", async (t) => {
  const paths = [
    "/api/v1/streaming/user/",
    "/api/v1/streaming/public/",
    "/api/v1/streaming",
    "/api/v1/streaming/",
    "/api/v1/streaming/public/media",
    "/api/v1/streaming/public/local/media",
    "/api/v1/streaming/Public",
    "/API/V1/STREAMING/USER",
    "/api/v1/streaming/nope",
    "/api/v1/streaming/health",
    "/api/v1/streaming/constructor",
    "/",
  ];
  for (const path of paths) {
    await t.step(`${path} → undefined`, () => {
      equal(streamFromPath(path, new URLSearchParams({ only_media: "1" })), undefined);
    });
  }
});

Deno.test("isTruthy follows Mastodon's utils", async (t) => {
  const rows: [unknown, boolean][] = [
    [true, true],
    [1, true],
    ["1", true],
    ["yes", true],
    ["False", true],
    ["Off", true],
    [[], true],
    [["0"], true],
    [{}, true],
    [false, false],
    [0, false],
    [-0, false],
    [NaN, false],
    ["", false],
    [null, false],
    [undefined, false],
    ["0", false],
    ["f", false],
    ["F", false],
    ["false", false],
    ["FALSE", false],
    ["off", false],
    ["OFF", false],
  ];
  for (const [value, expected] of rows) {
    await t.step(`${Deno.inspect(value)} → ${expected}`, () => equal(isTruthy(value), expected));
  }
});

Deno.test("parseTimeline describes each stream", async (t) => {
  const rows: [string, Record<string, unknown>, Timeline][] = [
    ["user", {}, { kind: "user", stream: "user" }],
    ["user:notification", {}, { kind: "user:notification", stream: "user:notification" }],
    ["direct", {}, { kind: "direct", stream: "direct" }],
    ["public", {}, { kind: "public", stream: "public", local: false, remote: false, media: false }],
    ["public:media", {}, {
      kind: "public",
      stream: "public:media",
      local: false,
      remote: false,
      media: true,
    }],
    ["public:local", {}, {
      kind: "public",
      stream: "public:local",
      local: true,
      remote: false,
      media: false,
    }],
    ["public:local:media", {}, {
      kind: "public",
      stream: "public:local:media",
      local: true,
      remote: false,
      media: true,
    }],
    ["public:remote", {}, {
      kind: "public",
      stream: "public:remote",
      local: false,
      remote: true,
      media: false,
    }],
    ["public:remote:media", {}, {
      kind: "public",
      stream: "public:remote:media",
      local: false,
      remote: true,
      media: true,
    }],
    ["hashtag", { tag: "Foo" }, { kind: "hashtag", stream: "hashtag", tag: "Foo", local: false }],
    ["hashtag:local", { tag: "Foo" }, {
      kind: "hashtag",
      stream: "hashtag:local",
      tag: "Foo",
      local: true,
    }],
    ["list", { list: 3 }, { kind: "list", stream: "list", list: 3 }],
  ];
  for (const [stream, params, expected] of rows) {
    await t.step(stream, () => deepEqual(parseTimeline(stream, params), expected));
  }
});

Deno.test("parseTimeline uses the first element when stream is an array", () => {
  deepEqual(parseTimeline(["hashtag:local", "ignored"], { tag: "x" }), {
    kind: "hashtag",
    stream: "hashtag:local",
    tag: "x",
    local: true,
  });
  throwsRequestError(() => parseTimeline([], {}), "Unknown stream type");
});

Deno.test("parseTimeline rejects unknown stream names with 400 Unknown stream type", async (t) => {
  const names = [
    "bogus",
    "system",
    "Public",
    "public:allow_local_only",
    "",
    undefined,
    null,
    5,
    { toString: () => "user" },
  ];
  for (const name of names) {
    await t.step(Deno.inspect(name), () => {
      throwsRequestError(() => parseTimeline(name, { tag: "x", list: "1" }), "Unknown stream type");
    });
  }
});

Deno.test("hashtag streams without a truthy tag are rejected with 400", async (t) => {
  for (const stream of ["hashtag", "hashtag:local"]) {
    for (const tag of [undefined, "", 0, null, false]) {
      await t.step(`${stream} with tag ${Deno.inspect(tag)}`, () => {
        throwsRequestError(() => parseTimeline(stream, { tag }), "Missing tag name parameter");
      });
    }
  }
});

Deno.test("a truthy tag that is not a string is a TypeError (500)", async (t) => {
  for (const tag of [["a", "b"], 5, true, { name: "a" }]) {
    await t.step(Deno.inspect(tag), () => {
      throws(() => parseTimeline("hashtag", { tag }), TypeError);
    });
  }
});

Deno.test("the list stream without a truthy list is rejected with 400", async (t) => {
  for (const list of [undefined, "", 0, null, false]) {
    await t.step(`list ${Deno.inspect(list)}`, () => {
      throwsRequestError(() => parseTimeline("list", { list }), "Missing list name parameter");
    });
  }
});

Deno.test("the list parameter is passed through as given", async (t) => {
  for (const list of ["1", 1, "0", "abc", ["1", "2"]]) {
    await t.step(Deno.inspect(list), () => {
      deepEqual(parseTimeline("list", { list }), { kind: "list", stream: "list", list });
    });
  }
});

Deno.test("hashtags are normalised as Mastodon's streaming server does", async (t) => {
  const rows: [string, string][] = [
    ["Foo", "foo"],
    ["Café", "cafe"],
    ["ＴＥＳＴ", "test"],
    ["#foo-bar", "foobar"],
    ["日本語", "日本語"],
    ["İstanbul", "istanbul"],
    ["Straße", "straße"],
    ["ǅ", "dz"],
    ["ﬁ", "fi"],
    ["a\u30fbb", "ab"],
    ["x\u200cy", "x\u200cy"],
  ];
  for (const [tag, expected] of rows) {
    await t.step(`${JSON.stringify(tag)} → ${JSON.stringify(expected)}`, () => {
      equal(normalizeHashtag(tag), expected);
    });
  }
});

Deno.test("hashtag folding maps letters without a decomposition to ASCII", () => {
  equal(normalizeHashtag("đøłħŧŋıðĸ"), "dolhtnidk");
  equal(normalizeHashtag("ĐØŁĦŦŊ"), "dolhtn");
});

Deno.test("hashtag normalisation keeps letters, numbers, _, U+00B7 and U+200C only", () => {
  equal(normalizeHashtag("a_b·c"), "a_b·c");
  equal(normalizeHashtag("١٢٣x²"), "١٢٣x2");
  equal(normalizeHashtag("hello world!🎉\u0301?"), "helloworld");
  equal(normalizeHashtag("e\u0301"), "e");
  equal(normalizeHashtag("\ud800a"), "a");
});

Deno.test("user:notification needs read or read:notifications, every other stream read or read:statuses", async (t) => {
  const rows: [unknown, string[]][] = [
    ["user:notification", ["read", "read:notifications"]],
    [["user:notification"], ["read", "read:notifications"]],
    ...STREAM_NAMES.filter((name) => name !== "user:notification")
      .map((name): [unknown, string[]] => [name, ["read", "read:statuses"]]),
    ["bogus", ["read", "read:statuses"]],
    [undefined, ["read", "read:statuses"]],
  ];
  for (const [stream, expected] of rows) {
    await t.step(`${Deno.inspect(stream)} needs one of ${expected.join(", ")}`, () => {
      deepEqual([...requiredScopes(stream)], expected);
    });
  }
});

Deno.test("a token passes the scope check with any one required scope", async (t) => {
  const rows: [string[], unknown, boolean][] = [
    [["read"], "user", true],
    [["read:statuses"], "public", true],
    [["write", "read:statuses"], "hashtag", true],
    [["read:notifications"], "user", false],
    [["read:notifications"], "user:notification", true],
    [["read"], "user:notification", true],
    [["read:statuses"], "user:notification", false],
    [["read:statuses"], "bogus", true],
    [["write", "follow", "push"], "bogus", false],
    [["read:accounts"], "list", false],
    [[], "direct", false],
  ];
  for (const [scopes, stream, expected] of rows) {
    await t.step(`${scopes.join(" ") || "(none)"} for ${String(stream)} → ${expected}`, () => {
      equal(hasRequiredScope(scopes, stream), expected);
    });
  }
});

Deno.test("stream labels echo the stream name and the client's own tag and list", async (t) => {
  const rows: [string, Record<string, unknown>, string][] = [
    ["user", {}, `["user"]`],
    ["user:notification", {}, `["user:notification"]`],
    ["public", {}, `["public"]`],
    ["public:local:media", {}, `["public:local:media"]`],
    ["direct", {}, `["direct"]`],
    ["hashtag", { tag: "Mastodon" }, `["hashtag","Mastodon"]`],
    ["hashtag:local", { tag: 'Café "x"' }, `["hashtag:local","Café \\"x\\""]`],
    ["list", { list: "1" }, `["list","1"]`],
    ["list", { list: 1 }, `["list",1]`],
  ];
  for (const [stream, params, expected] of rows) {
    await t.step(`${stream} ${JSON.stringify(params)} → ${expected}`, () => {
      equal(streamLabel(parseTimeline(stream, params)), expected);
    });
  }
});

Deno.test("the subscription key joins the channels with semicolons", () => {
  equal(
    subscriptionKey(["timeline:1", "timeline:1:notifications"]),
    "timeline:1;timeline:1:notifications",
  );
  equal(subscriptionKey(["timeline:hashtag:foo"]), "timeline:hashtag:foo");
});

Deno.test("hashtag spellings that normalise alike share one subscription key", () => {
  const key = (tag: string) =>
    subscriptionKey(redisChannels(parseTimeline("hashtag", { tag }), viewer));
  equal(key("Foo"), key("foo"));
  equal(key("Café"), key("cafe"));
});

Deno.test("public and hashtag streams are filtered per viewer, the others are not", async (t) => {
  const expected: Record<string, "public" | "hashtag" | undefined> = {
    user: undefined,
    "user:notification": undefined,
    public: "public",
    "public:media": "public",
    "public:local": "public",
    "public:local:media": "public",
    "public:remote": "public",
    "public:remote:media": "public",
    hashtag: "hashtag",
    "hashtag:local": "hashtag",
    list: undefined,
    direct: undefined,
  };
  for (const stream of STREAM_NAMES) {
    await t.step(`${stream} → ${expected[stream]}`, () => {
      equal(feedKind(parseTimeline(stream, { tag: "x", list: "1" })), expected[stream]);
    });
  }
});

Deno.test("every connection listens on its access-token and account system channels", () => {
  deepEqual(systemChannels({ accessTokenId: "9", accountId: "42" }), [
    "timeline:access_token:9",
    "timeline:system:42",
  ]);
});

Deno.test("sseRequestPath gives the SSE path and query of every stream, and streamFromPath reads it back", async (t) => {
  const rows: [string, Record<string, unknown>, string][] = [
    ["user", {}, "/api/v1/streaming/user"],
    ["user:notification", {}, "/api/v1/streaming/user/notification"],
    ["public", {}, "/api/v1/streaming/public"],
    ["public:media", {}, "/api/v1/streaming/public?only_media=true"],
    ["public:local", {}, "/api/v1/streaming/public/local"],
    ["public:local:media", {}, "/api/v1/streaming/public/local?only_media=true"],
    ["public:remote", {}, "/api/v1/streaming/public/remote"],
    ["public:remote:media", {}, "/api/v1/streaming/public/remote?only_media=true"],
    ["hashtag", { tag: "Caf\u00e9 Ünï" }, "/api/v1/streaming/hashtag?tag=Caf%C3%A9+%C3%9Cn%C3%AF"],
    ["hashtag:local", { tag: "Cats" }, "/api/v1/streaming/hashtag/local?tag=Cats"],
    ["list", { list: "7" }, "/api/v1/streaming/list?list=7"],
    ["direct", {}, "/api/v1/streaming/direct"],
  ];
  deepEqual(rows.map(([stream]) => stream).toSorted(), [...STREAM_NAMES].toSorted());
  for (const [stream, params, expected] of rows) {
    await t.step(`${stream} → ${expected}`, () => {
      const timeline = parseTimeline(stream, params);
      const path = sseRequestPath(timeline);
      equal(path, expected);
      const url = new URL(path, "http://sluice.test");
      equal(streamFromPath(url.pathname, url.searchParams), stream);
      deepEqual(parseTimeline(stream, Object.fromEntries(url.searchParams)), timeline);
    });
  }
});
