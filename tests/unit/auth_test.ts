import assert from "node:assert/strict";
import { Authenticator, MAX_BATCHES_IN_FLIGHT } from "../../src/auth.ts";
import type { TokenRow } from "../../src/db.ts";
import { AuthenticationError } from "../../src/errors.ts";

function row(token: string): TokenRow {
  return {
    accessTokenId: token,
    accountId: token,
    scopes: ["read"],
    chosenLanguages: null,
    permissions: 0,
  };
}

/** A database whose answers come when the test releases them. */
function heldDb() {
  const queries: Array<{ tokens: string[]; release: () => void; fail: () => void }> = [];
  return {
    queries,
    tokenRows(tokens: readonly string[]): Promise<Map<string, TokenRow>> {
      const { promise, resolve, reject } = Promise.withResolvers<Map<string, TokenRow>>();
      const found = tokens.filter((t) => t.startsWith("ok")).map((t) => [t, row(t)] as const);
      queries.push({
        tokens: [...tokens],
        release: () => resolve(new Map(found)),
        fail: () => reject(new Error("database down")),
      });
      return promise;
    },
  };
}

const header = (token: string) => ({ token, source: "header" as const });

Deno.test("Missing and empty tokens are refused without a query", async () => {
  const db = heldDb();
  const auth = new Authenticator({ db });
  await assert.rejects(
    auth.authenticate(undefined),
    new AuthenticationError("Missing access token"),
  );
  await assert.rejects(
    auth.authenticate(header("")),
    new AuthenticationError("Invalid access token"),
  );
  assert.equal(db.queries.length, 0);
});

Deno.test("Lookups of one token share a query; unknown tokens are invalid", async () => {
  const db = heldDb();
  const auth = new Authenticator({ db });
  const a = auth.authenticate(header("ok-1"));
  const b = auth.authenticate(header("ok-1"));
  const bad = auth.authenticate(header("nope"));
  assert.deepEqual(db.queries.map((q) => q.tokens), [["ok-1"], ["nope"]]);
  db.queries.forEach((q) => q.release());
  assert.equal((await a).accountId, "ok-1");
  assert.equal(await b, await a);
  await assert.rejects(bad, new AuthenticationError("Invalid access token"));
});

Deno.test("A storm of distinct tokens is batched once every query slot is busy", async () => {
  const db = heldDb();
  const auth = new Authenticator({ db });
  const tokens = Array.from({ length: 100 }, (_, i) => `ok-${i}`);
  const viewers = Promise.all(tokens.map((t) => auth.authenticate(header(t))));
  assert.equal(db.queries.length, MAX_BATCHES_IN_FLIGHT, "the first ones go alone");
  db.queries[0].release();
  await new Promise((resolve) => setTimeout(resolve, 0)); // the released slot takes the rest
  assert.equal(db.queries.length, MAX_BATCHES_IN_FLIGHT + 1);
  assert.equal(db.queries.at(-1)!.tokens.length, 100 - MAX_BATCHES_IN_FLIGHT, "the rest in one");
  db.queries.slice(1).forEach((q) => q.release());
  assert.deepEqual((await viewers).map((v) => v.accountId), tokens);
});

Deno.test("A failed query rejects every lookup in its batch, and the next lookup asks again", async () => {
  const db = heldDb();
  const auth = new Authenticator({ db });
  const first = auth.authenticate(header("ok-1"));
  db.queries[0].fail();
  await assert.rejects(first, /database down/);
  const again = auth.authenticate(header("ok-1"));
  assert.equal(db.queries.length, 2);
  db.queries[1].release();
  assert.equal((await again).accountId, "ok-1");
});

Deno.test("Connections of one token share one viewer object; a changed row is a new one", async () => {
  const rows = new Map([["ok", row("ok")]]);
  const auth = new Authenticator({
    db: { tokenRows: () => Promise.resolve(new Map([...rows].map(([t, r]) => [t, { ...r }]))) },
  });
  const first = await auth.authenticate(header("ok"));
  const second = await auth.authenticate(header("ok"));
  assert.equal(second, first, "one object for two separate lookups of an unchanged row");
  rows.set("ok", { ...row("ok"), scopes: ["read", "write"] });
  const changed = await auth.authenticate(header("ok"));
  assert.notEqual(changed, first);
  assert.deepEqual(changed.scopes, ["read", "write"]);
  assert.deepEqual(first.scopes, ["read"], "the earlier connection keeps its own row");
});
