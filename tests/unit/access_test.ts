import assert from "node:assert/strict";
import { Access, PERMISSION_VIEW_FEEDS } from "../../src/access.ts";
import type { FeedAccess } from "../../src/db.ts";
import { AuthenticationError, RequestError } from "../../src/errors.ts";
import { accessDb, viewer } from "../_support/fakes.ts";

/** An Access whose database records what it was asked. */
function setup(access: FeedAccess = { localDisabled: true, remoteDisabled: false }) {
  const asked: string[] = [];
  const db = accessDb({
    ownsList: (id, account) => {
      asked.push(`list ${String(id)} of ${account}`);
      return Promise.resolve(String(id) === "7" && account === "1");
    },
    feedAccess: (kind) => {
      asked.push(`feed ${kind}`);
      return Promise.resolve(access);
    },
  });
  return { access: new Access({ db }), asked };
}

Deno.test("Access resolves a stream into its channels, key and WebSocket label", async () => {
  const { access, asked } = setup();
  const user = await access.resolve(viewer(), "user", {});
  assert.deepEqual(user.channels, ["timeline:1", "timeline:1:notifications"]);
  assert.equal(user.key, "timeline:1;timeline:1:notifications");
  assert.equal(user.label, '["user"]');
  assert.equal(user.filter, undefined, "the home stream is not filtered per viewer");
  const tag = await access.resolve(viewer(), "hashtag:local", { tag: "Café" });
  assert.deepEqual(tag.channels, ["timeline:hashtag:cafe:local"]);
  assert.equal(tag.label, '["hashtag:local","Café"]');
  assert.deepEqual(asked, ["feed hashtag"]);
});

Deno.test("Access gives public and hashtag streams the feed access settings", async () => {
  const { access } = setup({ localDisabled: true, remoteDisabled: false });
  const resolved = await access.resolve(viewer(), "public", {});
  assert.deepEqual(resolved.filter, { access: { localDisabled: true, remoteDisabled: false } });
});

Deno.test("The view-feeds role permission bypasses the feed access settings without a query", async () => {
  const { access, asked } = setup({ localDisabled: true, remoteDisabled: true });
  const resolved = await access.resolve(
    viewer({ permissions: PERMISSION_VIEW_FEEDS }),
    "public",
    {},
  );
  assert.deepEqual(resolved.filter, { access: { localDisabled: false, remoteDisabled: false } });
  assert.deepEqual(asked, []);
});

Deno.test("Access refuses a stream the token's scopes do not cover, before any query", async () => {
  const { access, asked } = setup();
  await assert.rejects(
    access.resolve(viewer({ scopes: ["write"] }), "list", { list: "7" }),
    new AuthenticationError("Access token does not have the required scopes"),
  );
  assert.deepEqual(asked, []);
});

Deno.test("Unsubscribing skips the scope check", async () => {
  const { access } = setup();
  const resolved = await access.resolve(viewer({ scopes: ["write"] }), "direct", {}, {
    checkScopes: false,
  });
  assert.deepEqual(resolved.channels, ["timeline:direct:1"]);
});

Deno.test("Lists must belong to the viewer", async () => {
  const { access, asked } = setup();
  const own = await access.resolve(viewer(), "list", { list: "7" });
  assert.deepEqual(own.channels, ["timeline:list:7"]);
  await assert.rejects(
    access.resolve(viewer(), "list", { list: "8" }),
    new AuthenticationError("Not authorized to stream this list"),
  );
  assert.deepEqual(asked, ["list 7 of 1", "list 8 of 1"]);
});

Deno.test("Unknown streams and missing parameters are request errors", async () => {
  const { access } = setup();
  await assert.rejects(access.resolve(viewer(), "nonsense", {}), RequestError);
  await assert.rejects(access.resolve(viewer(), "hashtag", {}), RequestError);
});

Deno.test("A database failure propagates (a 500 for the caller)", async () => {
  const access = new Access({
    db: accessDb({ feedAccess: () => Promise.reject(new Error("database down")) }),
  });
  await assert.rejects(access.resolve(viewer(), "public:local", {}), /database down/);
});

Deno.test("A stream resolved twice to the same result is the same object; a different one is not", async () => {
  let access: FeedAccess = { localDisabled: false, remoteDisabled: false };
  const resolver = new Access({
    db: accessDb({ feedAccess: () => Promise.resolve({ ...access }) }),
  });
  const first = await resolver.resolve(viewer(), "public", {});
  assert.equal(await resolver.resolve(viewer(), "public", {}), first);
  assert.notEqual(await resolver.resolve(viewer(), "public:local", {}), first);
  access = { localDisabled: true, remoteDisabled: false };
  const changed = await resolver.resolve(viewer(), "public", {});
  assert.notEqual(changed, first);
  assert.deepEqual(changed.filter?.access, access);
});
