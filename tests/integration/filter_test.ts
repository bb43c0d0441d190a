/**
 * Per-viewer filtering against a real PostgreSQL and redis-server, over SSE
 * and WebSocket (docs/protocol.md §8; one round trip per event: docs/compatibility.md §2.4).
 */
import assert from "node:assert/strict";
import { SseReader, WsClient } from "../_support/clients.ts";
import { PgDatabase } from "../../src/db.ts";
import { silentLogger } from "../../src/log.ts";
import { Metrics } from "../../src/metrics.ts";
import { type Services, startServices, startSluice, type TestSluice } from "../_support/stack.ts";

type Author = { id: string; username: string; acct: string };
const CAROL = { id: "3", username: "carol", acct: "carol" }; // blocked by alice
const DAVE = { id: "4", username: "dave", acct: "dave@spam.example" }; // domain-blocked by alice
const EVE = { id: "5", username: "eve", acct: "eve" }; // muted by alice
const FRANK = { id: "6", username: "frank", acct: "frank@social.example" };
const GRACE = { id: "8", username: "grace", acct: "grace@else.example" }; // blocks alice
const BOB = { id: "2", username: "bob", acct: "bob" };

let serial = 0;
function status(
  author: Author,
  extra: Record<string, unknown> = {},
): { id: string; message: string } {
  const id = `11500000000000${String(++serial).padStart(4, "0")}`;
  const payload = {
    id,
    language: "en",
    spoiler_text: "",
    content: "<p>Hello</p>",
    account: author,
    mentions: [],
    ...extra,
  };
  return { id, message: JSON.stringify({ event: "update", payload }) };
}

/** One viewer watching a stream over SSE and WebSocket at once. */
class Watcher {
  #marks = 0;
  #consumed = 0;
  private constructor(readonly sse: SseReader, readonly ws: WsClient) {}

  static async open(app: TestSluice, token: string, stream = "public", query = "") {
    const sse = await SseReader.open(
      `${app.http}/api/v1/streaming/${stream.replace(":", "/")}?access_token=${token}${query}`,
    );
    const ws = await WsClient.open(
      `${app.ws}/api/v1/streaming?access_token=${token}&stream=${stream}${query}`,
    );
    return new Watcher(sse, ws);
  }

  /** Payloads received over both transports up to the next end marker; asserts they agree. */
  async updates(services: Services, channel: string): Promise<Array<Record<string, unknown>>> {
    const mark = `end-${++this.#marks}`;
    await services.client.publish(channel, JSON.stringify({ event: "delete", payload: mark }));
    const from = this.#consumed;
    const at = await this.sse.contains(`data: ${mark}\n\n`, from);
    this.#consumed = at;
    const sseEvents = this.sse.text.slice(from, at).split("\n\n").flatMap((block) => {
      const data = block.split("\n").find((l) => l.startsWith("data: {"));
      return data ? [JSON.parse(data.slice(6))] : [];
    });
    const wsEvents: Array<Record<string, unknown>> = [];
    for (;;) {
      const frame = JSON.parse(await this.ws.next());
      if (frame.payload === mark) break;
      if (frame.event !== "delete") wsEvents.push(JSON.parse(frame.payload));
    }
    assert.deepEqual(wsEvents, sseEvents, "SSE and WebSocket disagree");
    return sseEvents;
  }

  async close() {
    await this.sse.close();
    await this.ws.close();
  }
}

const ids = (events: Array<Record<string, unknown>>) => events.map((e) => e.id);

Deno.test("Public and hashtag updates are filtered per viewer like Mastodon", async (t) => {
  const services = await startServices();
  const sql = (text: string) => services.pg.query(text);
  await sql(`INSERT INTO accounts (id, username, domain) VALUES (8, 'grace', 'else.example');
             INSERT INTO blocks (account_id, target_account_id) VALUES (8, 1)`);
  const app = await startSluice(services);
  const publish = (channel: string, message: string) => services.client.publish(channel, message);
  const watch = async (token: string, stream = "public", query = "") => {
    const channel = stream === "public" ? "timeline:public" : "timeline:hashtag:rust";
    const before = app.listenerCount(channel);
    const watcher = await Watcher.open(app, token, stream, query);
    await app.listeners(channel, before + 2); // its SSE stream and its WebSocket
    return watcher;
  };

  await t.step("blocks, mutes and domain blocks hide statuses from alice only", async () => {
    const alice = await watch("token-alice"), bob = await watch("token-bob");
    const cases = {
      blockedAuthor: status(CAROL),
      authorBlocksViewer: status(GRACE),
      blockedMention: status(FRANK, { mentions: [{ id: "3" }] }),
      mutedAuthor: status(EVE),
      mutedMention: status(BOB, { mentions: [{ id: "5" }] }),
      domainBlocked: status(DAVE),
      fine: status(FRANK),
    };
    for (const s of Object.values(cases)) await publish("timeline:public", s.message);
    assert.deepEqual(ids(await alice.updates(services, "timeline:public")), [cases.fine.id]);
    assert.deepEqual(
      ids(await bob.updates(services, "timeline:public")),
      Object.values(cases).map((s) => s.id),
    );
    await alice.close();
    await bob.close();
  });

  await t.step("languages: not chosen and null are dropped for alice, not for bob", async () => {
    const alice = await watch("token-alice"), bob = await watch("token-bob");
    const de = status(BOB, { language: "de" }), none = status(BOB, { language: null });
    const en = status(BOB);
    for (const s of [de, none, en]) await publish("timeline:public", s.message);
    assert.deepEqual(ids(await alice.updates(services, "timeline:public")), [en.id]);
    assert.deepEqual(ids(await bob.updates(services, "timeline:public")), [de.id, none.id, en.id]);
    await alice.close();
    await bob.close();
  });

  await t.step(
    "feed access settings apply per subscription; the role permission bypasses",
    async () => {
      for (const [setting, hidden] of [["local", "local"], ["remote", "remote"]] as const) {
        await sql(
          `INSERT INTO settings (var, value) VALUES ('${setting}_live_feed_access', E'--- disabled\\n')`,
        );
        await sql("UPDATE users SET role_id = 1 WHERE id = 2");
        const alice = await watch("token-alice"), bob = await watch("token-bob");
        const local = status(BOB), remote = status(FRANK);
        await publish("timeline:public", local.message);
        await publish("timeline:public", remote.message);
        const shown = hidden === "local" ? [remote.id] : [local.id];
        assert.deepEqual(ids(await alice.updates(services, "timeline:public")), shown);
        assert.deepEqual(ids(await bob.updates(services, "timeline:public")), [
          local.id,
          remote.id,
        ]);
        await alice.close();
        await bob.close();
        await sql("DELETE FROM settings; UPDATE users SET role_id = NULL WHERE id = 2");
      }
    },
  );

  await t.step("keyword filters add filtered entries; [] otherwise", async () => {
    await sql(`INSERT INTO custom_filters (id, account_id, phrase, context, action, expires_at)
               VALUES (2, 1, 'Old', '{public}', 1, now() - interval '1 day');
               INSERT INTO custom_filter_keywords (custom_filter_id, keyword, whole_word)
               VALUES (2, 'hello', false)`);
    const alice = await watch("token-alice");
    const hit = status(BOB, { content: "<p>A SPOILER alert</p>" });
    const partial = status(BOB, { content: "<p>spoilers and spoilerish</p>" });
    const expired = status(BOB, { content: "<p>hello, expired filter</p>" });
    for (const s of [hit, partial, expired]) await publish("timeline:public", s.message);
    const [a, b, c] = await alice.updates(services, "timeline:public");
    assert.deepEqual(a.filtered, [{
      filter: {
        id: "1",
        title: "Spoilers",
        context: ["home", "public"],
        expires_at: null,
        filter_action: "warn",
      },
      keyword_matches: ["SPOILER"],
      status_matches: null,
    }]);
    assert.deepEqual(b.filtered, []);
    assert.equal(c.id, expired.id);
    assert.deepEqual(c.filtered, [], "the expired filter on 'hello' does not match");
    assert.equal(Object.keys(a).at(-1), "filtered");
    await alice.close();
  });

  await t.step("filters_changed reloads the filters of open connections", async () => {
    const alice = await watch("token-alice");
    const before = status(BOB, { content: "<p>world</p>" });
    await publish("timeline:public", before.message);
    assert.deepEqual((await alice.updates(services, "timeline:public"))[0].filtered, []);
    await sql("UPDATE custom_filter_keywords SET keyword = 'world' WHERE id = 1");
    const cached = status(BOB, { content: "<p>world</p>" });
    await publish("timeline:public", cached.message);
    assert.deepEqual((await alice.updates(services, "timeline:public"))[0].filtered, []);
    await publish("timeline:system:1", '{"event":"filters_changed"}');
    const after = status(BOB, { content: "<p>world</p>" });
    await publish("timeline:public", after.message);
    const [got] = await alice.updates(services, "timeline:public");
    assert.deepEqual((got.filtered as Array<{ keyword_matches: string[] }>)[0].keyword_matches, [
      "world",
    ]);
    await sql("UPDATE custom_filter_keywords SET keyword = 'spoiler' WHERE id = 1");
    await alice.close();
  });

  await t.step("a payload that already has filtered is forwarded unchanged", async () => {
    const alice = await watch("token-alice");
    const given = status(BOB, { filtered: [{ rails: true }] });
    await publish("timeline:public", given.message);
    const [got] = await alice.updates(services, "timeline:public");
    assert.deepEqual(got.filtered, [{ rails: true }]);
    await alice.close();
  });

  await t.step("hashtag streams are filtered too; user streams are not", async () => {
    const alice = await watch("token-alice", "hashtag", "&tag=Rust");
    const blocked = status(CAROL), fine = status(FRANK);
    await publish("timeline:hashtag:rust", blocked.message);
    await publish("timeline:hashtag:rust", fine.message);
    const got = await alice.updates(services, "timeline:hashtag:rust");
    assert.deepEqual(ids(got), [fine.id]);
    const user = await SseReader.open(`${app.http}/api/v1/streaming/user?access_token=token-alice`);
    await app.listening("timeline:1");
    await publish("timeline:1", blocked.message);
    await user.contains(`"id":"${blocked.id}"`);
    assert.equal(user.text.includes("filtered"), false);
    await user.close();
    await alice.close();
  });

  await t.step(
    "a failing database drops filtered events, counted, and streams stay up",
    async () => {
      const alice = await watch("token-alice"), bob = await watch("token-bob");
      const drops = () => app.sluice.metrics.filterDrops.get({ reason: "database_error" });
      const before = drops();
      await sql("ALTER TABLE blocks RENAME TO blocks_away");
      await publish("timeline:public", status(FRANK).message);
      assert.deepEqual(await alice.updates(services, "timeline:public"), []);
      assert.deepEqual(await bob.updates(services, "timeline:public"), []);
      assert.equal(drops() - before, 4); // two viewers, two transports each
      await sql("ALTER TABLE blocks_away RENAME TO blocks");
      const after = status(FRANK);
      await publish("timeline:public", after.message);
      assert.deepEqual(ids(await alice.updates(services, "timeline:public")), [after.id]);
      await alice.close();
      await bob.close();
    },
  );

  await app.close();
  await services.close();
});

Deno.test("At most one filtering query per event (one for one event), whatever the viewers", async (t) => {
  const services = await startServices();
  const count = 1000;
  const rows = Array.from({ length: count }, (_, i) => 100 + i);
  const last = 100 + count - 1;
  const viewers = `generate_series(100, ${last}) AS g`;
  await services.pg.query(`
    INSERT INTO accounts (id, username, domain) VALUES (99, 'zed', 'remote.example');
    INSERT INTO accounts (id, username) SELECT g, 'v' || g FROM ${viewers};
    INSERT INTO users (id, email, account_id, chosen_languages)
      SELECT g, 'v' || g || '@x', g, CASE WHEN g % 5 = 3 THEN '{de}'::varchar[] END FROM ${viewers};
    INSERT INTO oauth_access_tokens (token, scopes, resource_owner_id)
      SELECT 'token-v' || g, 'read', g FROM ${viewers};
    INSERT INTO blocks (account_id, target_account_id) SELECT g, 99 FROM ${viewers} WHERE g % 5 = 0;
    INSERT INTO mutes (account_id, target_account_id) SELECT g, 99 FROM ${viewers} WHERE g % 5 = 1;
    INSERT INTO account_domain_blocks (account_id, domain)
      SELECT g, 'remote.example' FROM ${viewers} WHERE g % 5 = 2;
  `);
  const app = await startSluice(services);
  const metrics = app.sluice.metrics;

  for (const viewers of [1, 50, 1000]) {
    await t.step(`${viewers} viewer(s) over SSE and WebSocket`, async () => {
      const chosen = rows.slice(0, viewers);
      const readers = await Promise.all(
        chosen.map((id) =>
          id % 2
            ? SseReader.open(`${app.http}/api/v1/streaming/public?access_token=token-v${id}`)
            : WsClient.open(`${app.ws}/api/v1/streaming?access_token=token-v${id}&stream=public`)
        ),
      );
      await app.listeners("timeline:public", viewers);
      const before = metrics.filterRoundTrips.get();
      const zed = status({ id: "99", username: "zed", acct: "zed@remote.example" });
      await services.client.publish("timeline:public", zed.message);
      await services.client.publish("timeline:public", '{"event":"delete","payload":"end"}');
      for (const [i, reader] of readers.entries()) {
        const id = chosen[i];
        const visible = id % 5 === 4;
        let text: string;
        if (reader instanceof SseReader) {
          await reader.contains("data: end\n\n");
          text = reader.text;
        } else {
          const frames = [await reader.next()];
          while (!frames.at(-1)!.includes('"payload":"end"')) frames.push(await reader.next());
          text = frames.join("\n");
        }
        assert.equal(text.includes(zed.id), visible, `viewer ${id}`);
      }
      assert.equal(metrics.filterRoundTrips.get() - before, 1);
      await Promise.all(readers.map((r) => r.close()));
    });
  }

  await t.step("several statuses at once: at most one query each, each decided alone", async () => {
    const chosen = rows.slice(0, 50);
    const readers = await Promise.all(
      chosen.map((id) =>
        SseReader.open(`${app.http}/api/v1/streaming/public?access_token=token-v${id}`)
      ),
    );
    await app.listeners("timeline:public", chosen.length);
    const before = metrics.filterRoundTrips.get();
    const zed = { id: "99", username: "zed", acct: "zed@remote.example" };
    const sent = [zed, BOB, zed, BOB, BOB, zed].map((author) => ({ author, ...status(author) }));
    await Promise.all([
      ...sent.map((s) => services.client.publish("timeline:public", s.message)),
      services.client.publish("timeline:public", '{"event":"delete","payload":"end2"}'),
    ]);
    for (const [i, reader] of readers.entries()) {
      const id = chosen[i];
      await reader.contains("data: end2\n\n");
      const got = sent.filter((s) => reader.text.includes(s.id)).map((s) => s.id);
      const visible = (s: (typeof sent)[number]) =>
        id % 5 === 4 || (s.author === BOB && id % 5 !== 3);
      assert.deepEqual(got, sent.filter(visible).map((s) => s.id), `viewer ${id}`);
      const at = got.map((sid) => reader.text.indexOf(sid));
      assert.deepEqual(at, [...at].sort((a, b) => a - b), `viewer ${id}: Redis order`);
    }
    const queries = metrics.filterRoundTrips.get() - before;
    assert.ok(queries >= 1 && queries <= sent.length, `${queries} queries`);
    await Promise.all(readers.map((r) => r.close()));
  });

  await app.close();
  await services.close();
});

Deno.test("The relationship query answers for several statuses at once, each its own", async () => {
  await using stack = new AsyncDisposableStack();
  const services = await startServices();
  stack.defer(() => services.close());
  await services.pg.query("INSERT INTO blocks (account_id, target_account_id) VALUES (8, 1)");
  const db = new PgDatabase({
    config: {
      host: "127.0.0.1",
      port: services.pg.port,
      user: services.pg.user,
      database: services.pg.database,
      max: 1,
    },
    log: silentLogger,
    metrics: new Metrics(),
  });
  stack.defer(() => db.close());
  const of = (author: Author, mentions: Author[] = []) => {
    const at = author.acct.indexOf("@");
    return {
      authorId: author.id,
      targetIds: [author.id, ...mentions.map((m) => m.id)],
      domain: at < 0 ? null : author.acct.slice(at + 1),
    };
  };
  const excluded = await db.excludedViewers({
    viewerIds: ["1", "2"],
    statuses: [of(CAROL), of(BOB), of(DAVE), of(EVE), of(FRANK, [CAROL]), of(GRACE), of(FRANK)],
  });
  // alice (1) blocks carol, blocks spam.example, mutes eve; grace blocks alice; bob (2) is clear.
  assert.deepEqual(excluded, [["1"], [], ["1"], ["1"], ["1"], ["1"], []]);
});
