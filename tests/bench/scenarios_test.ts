import assert from "node:assert/strict";
import type { LoadReport } from "../../bench/loadgen/report.ts";
import {
  BENCH_AUTHOR,
  expectedDeliveries,
  FIRST_VIEWER_ID,
  profileCounts,
  seedStatements,
  viewerProfile,
  viewerToken,
} from "../../bench/scenarios/seed.ts";
import {
  type Ladder,
  limitingRun,
  nextRate,
  rssHalves,
  runStatus,
  saturation,
  utilisation,
  verdict,
} from "../../bench/scenarios/analysis.ts";
import { FULL } from "../../bench/scenarios/plan.ts";
import { HAND_RUN_MARKER, keepHandRun, renderResults } from "../../bench/scenarios/render.ts";
import { type RunRecord, type ScenarioResults, shellJoin } from "../../bench/scenarios/report.ts";
import { parsePubsubClients } from "../../bench/scenarios/samplers.ts";
import { slowCaseRate } from "../../bench/scenarios/f_slow.ts";
import { CASES, targetRows } from "../../bench/scenarios/cases.ts";
import { idleMemory } from "../../bench/scenarios/a_idle.ts";
import { parseCli, readEarlier } from "../../bench/scenarios.ts";
import { mergeResults, parseEarlier } from "../../bench/scenarios/merge.ts";
import { createMessageFactory } from "../../bench/messages.ts";
import { compileFilters, matchFilters, searchableText } from "../../src/keyword_filter.ts";

// --- seed ---------------------------------------------------------------------------------------

Deno.test("seed: one account, user and token per viewer, in statements small enough for psql -c", () => {
  const statements = seedStatements(1000);
  for (const sql of statements) {
    assert.match(sql, /^INSERT INTO \w+ \([\w, ]+\) VALUES\n/);
    assert.ok(sql.endsWith(";"));
    assert.ok(new TextEncoder().encode(sql).length < 64 * 1024, "below one argv string");
  }
  const rows = (table: string) =>
    statements.filter((sql) => sql.startsWith(`INSERT INTO ${table} `))
      .reduce((n, sql) => n + sql.split("\n").length - 1, 0);
  assert.equal(rows("accounts"), 1001, "the viewers and the remote author");
  assert.equal(rows("users"), 1000);
  assert.equal(rows("oauth_access_tokens"), 1000);
  const all = statements.join("\n");
  assert.ok(all.includes(`(${BENCH_AUTHOR.id}, 'federationbot', 'mastodon.host')`));
  assert.ok(all.includes(`(${FIRST_VIEWER_ID}, 'bench-viewer-0001', 'read', ${FIRST_VIEWER_ID})`));
  assert.ok(all.includes(`(${FIRST_VIEWER_ID + 999}, 'bench-viewer-1000', 'read',`));
  assert.equal(new Set(Array.from({ length: 1000 }, (_, i) => viewerToken(i))).size, 1000);
});

Deno.test("seed: relations name the author, its domain, or the viewer the author blocks", () => {
  const all = seedStatements(20).join("\n");
  const id = (i: number) => FIRST_VIEWER_ID + i;
  const blocks = all.slice(all.indexOf("INSERT INTO blocks"));
  assert.ok(blocks.includes(`(${id(0)}, 78)`), "viewer 0 blocks the author");
  assert.ok(blocks.includes(`(78, ${id(3)})`), "the author blocks viewer 3");
  const mutes = all.slice(all.indexOf("INSERT INTO mutes"));
  assert.ok(mutes.includes(`(${id(1)}, 78)`));
  assert.ok(all.includes(`(${id(2)}, 'mastodon.host')`));
  assert.ok(all.includes(`(${id(4)}, 'viewer5@bench.test', ${id(4)}, false, '{de,fr}')`));
  assert.match(all, /INSERT INTO custom_filter_keywords/);
});

Deno.test("seed: a quarter of the viewers never get the bench statuses", () => {
  const counts = profileCounts(1000);
  const excluded = [...counts.values()].filter((k) => !k.delivered)
    .reduce((n, k) => n + k.count, 0);
  assert.equal(excluded, 250);
  assert.equal(expectedDeliveries(1000, 1000, 10), 7500);
  assert.equal(expectedDeliveries(200, 1000, 4), 600, "the first 200 viewers, 150 reached");
  assert.equal(expectedDeliveries(2000, 1000, 1), 1500, "tokens reused round-robin");
  assert.equal(expectedDeliveries(3, 1000, 5), 0, "viewers 0-2 are all excluded");
});

Deno.test("seed: the author and language match bench/messages.ts with --author remote", () => {
  const message = JSON.parse(createMessageFactory({ payloadBytes: 1500, author: "remote" })(1, 0));
  const account = message.payload.account;
  assert.equal(account.id, String(BENCH_AUTHOR.id));
  assert.equal(account.acct, `${BENCH_AUTHOR.username}@${BENCH_AUTHOR.domain}`);
  assert.equal(message.payload.language, BENCH_AUTHOR.language);
  assert.ok(!viewerProfile(4).chosenLanguages?.includes(BENCH_AUTHOR.language));
  assert.ok(viewerProfile(14).chosenLanguages?.includes(BENCH_AUTHOR.language));
});

Deno.test("seed: keyword filters match the bench status text exactly when they say so", () => {
  const message = JSON.parse(createMessageFactory({ payloadBytes: 1500, author: "remote" })(1, 0));
  const text = searchableText(message.payload);
  const keywords = Array.from({ length: 20 }, (_, i) => viewerProfile(i).keywords).flat();
  assert.ok(keywords.some((k) => k.matches) && keywords.some((k) => !k.matches));
  for (const k of keywords) {
    const filters = compileFilters([{
      ...{ id: "1", title: "t", context: ["public"], expires_at: null },
      ...{ filter_action: k.action, keyword: k.keyword, whole_word: k.wholeWord },
    }]);
    const matched = matchFilters(filters, text, Date.now()) !== "[]";
    assert.equal(matched, k.matches, `${k.keyword} (whole word: ${k.wholeWord})`);
  }
});

// --- saturation ---------------------------------------------------------------------------------

function report(overrides: {
  published?: number;
  seconds?: number;
  delivered?: number;
  expected?: number;
  p99?: number | null;
  max?: number;
  failed?: number;
  established?: number;
  serverCpu?: number;
  loadgenCpu?: number;
  window?: number;
}): LoadReport {
  const o = { published: 100, seconds: 1, delivered: 100_000, expected: 100_000, ...overrides };
  return {
    startedAt: "2026-01-01T00:00:00.000Z",
    target: {
      ...{ url: "http://127.0.0.1:1", stream: "user", channel: "timeline:1", transport: "sse" },
      ...{ clients: 1000, slow: 0, idle: false, rate: 100, payloadBytes: 1500 },
    },
    connections: {
      attempted: 1000,
      established: o.established ?? 1000,
      failed: o.failed ?? 0,
      byTransport: {
        sse: { attempted: 1000, established: 1000 },
        ws: { attempted: 0, established: 0 },
      },
      failures: {},
      connectMs: { p50: 5, p99: 9, max: 10 },
      establishAllMs: 400,
    },
    slow: { attempted: 0, opened: 0, cutByServer: 0, stillOpen: 0 },
    publishing: { published: o.published, errors: 0, seconds: o.seconds, minReceivers: 1 },
    deliveries: {
      expected: o.expected,
      delivered: o.delivered,
      missing: Math.max(0, o.expected - o.delivered),
      perSecond: o.delivered / o.seconds,
    },
    latencyMs: {
      ...{ p50: 2, p90: 4, p99: o.p99 === undefined ? 8 : o.p99, max: o.max ?? 10 },
      ...{ mean: 3, samples: o.delivered },
    },
    disconnects: { total: 0, sse: 0, ws: 0, closeCodes: {} },
    windowSeconds: o.window ?? o.seconds + 0.5,
    server: {
      pid: 1,
      ...{ rssBaselineBytes: 50e6, rssIdleBytes: 60e6, rssPeakBytes: 70e6, rssEndBytes: 65e6 },
      rssPerConnectionBytes: 10_240,
      cpuSecondsWindow: o.serverCpu ?? 0.5,
      cpuSecondsTotal: 1,
    },
    loadgen: { cpuSecondsWindow: o.loadgenCpu ?? 0.3, cpuSecondsTotal: 1, rssPeakBytes: 1e8 },
  };
}

let nextId = 0;
function run(over: Partial<RunRecord> & { r?: Parameters<typeof report>[0] | null }): RunRecord {
  const { r, ...rest } = over;
  return {
    id: `x${++nextId}`,
    caseId: "b",
    server: "sluice",
    transport: "sse",
    variant: "",
    clients: 1000,
    rate: 100,
    port: 4000,
    serverPid: 1,
    command: "deno run bench/loadgen.ts --rate 100",
    report: r === null ? null : report(r ?? {}),
    subscriber: { maxOutputBytes: 0, connections: 1 },
    ...rest,
  };
}

Deno.test("runStatus: kept up, behind, slow, publisher short, connect failures, failed", () => {
  assert.equal(runStatus(run({})), "kept up");
  assert.equal(runStatus(run({ r: { delivered: 97_000 } })), "behind");
  assert.equal(runStatus(run({ r: { delivered: 98_000 } })), "kept up", "98 % is enough");
  assert.equal(runStatus(run({ r: { p99: 1001 } })), "slow");
  assert.equal(runStatus(run({ r: { p99: null } })), "slow");
  assert.equal(runStatus(run({ r: { published: 80 } })), "publisher short");
  assert.equal(runStatus(run({ r: { failed: 3 } })), "connect failures");
  assert.equal(runStatus(run({ r: { established: 990 } })), "connect failures");
  assert.equal(runStatus(run({ r: null, error: "boom" })), "failed");
});

Deno.test("runStatus: a seeded expectation replaces the loadgen's", () => {
  assert.equal(runStatus(run({ r: { delivered: 75_000 }, expected: 75_000 })), "kept up");
  assert.equal(runStatus(run({ r: { delivered: 70_000 }, expected: 75_000 })), "behind");
});

const LADDER: Ladder = { start: 20, factor: 1.5, maxSteps: 9, minGap: 1.25 };

Deno.test("nextRate climbs, then bisects once the gap is wide, then stops", () => {
  assert.equal(nextRate([], LADDER), 20);
  assert.equal(nextRate([{ rate: 20, ok: true }], LADDER), 30);
  const climbed = [{ rate: 20, ok: true }, { rate: 30, ok: true }, { rate: 45, ok: false }];
  assert.equal(nextRate(climbed, LADDER), 37, "geometric mean of 30 and 45");
  assert.equal(nextRate([...climbed, { rate: 37, ok: true }], LADDER), undefined, "45/37 < 1.25");
  assert.equal(nextRate([...climbed, { rate: 37, ok: false }], LADDER), undefined, "37/30 < 1.25");
});

Deno.test("nextRate steps down when the first rate fails, and respects maxSteps", () => {
  assert.equal(nextRate([{ rate: 20, ok: false }], LADDER), 8.9);
  assert.equal(nextRate([{ rate: 1.5, ok: false }], LADDER), undefined, "below 1 msg/s");
  const full = Array.from({ length: 9 }, (_, i) => ({ rate: i + 1, ok: true }));
  assert.equal(nextRate(full, LADDER), undefined);
});

Deno.test("saturation is the best run that kept up; the limit is the next failing one", () => {
  const runs = [
    run({ rate: 20, r: { published: 20, delivered: 20_000, expected: 20_000 } }),
    run({ rate: 30, r: { published: 30, delivered: 30_000, expected: 30_000 } }),
    run({ rate: 45, r: { published: 45, delivered: 40_000, expected: 45_000 } }),
    run({ rate: 37, r: { published: 37, delivered: 37_000, expected: 37_000, p99: 1500 } }),
  ];
  assert.equal(saturation(runs)?.rate, 30);
  assert.equal(limitingRun(runs)?.rate, 37);
  assert.equal(saturation([run({ r: { delivered: 1 } })]), undefined);
});

Deno.test("utilisation counts publishing plus the worst latency, capped by the window", () => {
  const u = utilisation(
    run({ r: { seconds: 5, max: 1000, window: 8, serverCpu: 6, loadgenCpu: 3 } }),
  );
  assert.equal(u.server, 1);
  assert.equal(u.loadgen, 0.5);
  const capped = utilisation(run({ r: { seconds: 5, max: 9000, window: 6, serverCpu: 3 } }));
  assert.equal(capped.server, 0.5);
});

Deno.test("verdict says met or by how much a figure missed", () => {
  assert.equal(verdict(0.85, 0.8, "min"), "met");
  assert.equal(verdict(0.6, 0.8, "min"), "missed by 25 %");
  assert.equal(verdict(30, 20, "max"), "missed by 50 %");
  assert.equal(verdict(null, 20, "max"), "not measured");
});

Deno.test("rssHalves takes the largest sample in each half of the window", () => {
  const samples = [[0, 1], [10, 5], [40, 7], [60, 9], [90, 8], [200, 99]] as const;
  assert.deepEqual(rssHalves(samples, 10, 100), { first: 7, second: 9 });
  assert.equal(rssHalves(samples, 100, 150), null);
});

Deno.test("shellJoin quotes only what the shell would misread", () => {
  assert.equal(
    shellJoin(["deno", "run", "--url", "http://127.0.0.1:4000"]),
    "deno run --url http://127.0.0.1:4000",
  );
  assert.equal(shellJoin(["bash", "-c", "ulimit -n 1; exec x"]), "bash -c 'ulimit -n 1; exec x'");
  assert.equal(shellJoin(["it's"]), `'it'\\''s'`);
});

// --- command line -------------------------------------------------------------------------------

Deno.test("parseCli: cases, quick, out and json", () => {
  assert.deepEqual(parseCli([]), {
    cases: ["a", "b", "c", "d", "e", "f", "g"],
    quick: false,
    out: "bench/RESULTS.md",
    json: undefined,
    merge: false,
  });
  const cli = parseCli(["--only", "f, b", "--quick", "--out", "x.md", "--json", "x.json"]);
  assert.deepEqual(cli, {
    cases: ["b", "f"],
    quick: true,
    out: "x.md",
    json: "x.json",
    merge: false,
  });
  assert.equal((parseCli(["--only", "b,c", "--merge"]) as { merge: boolean }).merge, true);
  assert.equal(parseCli(["--help"]), "help");
  assert.throws(() => parseCli(["--only", "b,z"]), RangeError);
  assert.throws(() => parseCli(["--bogus"]), TypeError);
});

Deno.test("parsePubsubClients reads id and omem from CLIENT LIST", () => {
  const list =
    "id=7 addr=127.0.0.1:5 fd=8 name= age=1 flags=P sub=1 obl=0 oll=0 omem=0 cmd=subscribe\n" +
    "id=12 addr=127.0.0.1:6 fd=9 name= age=1 flags=P sub=1 obl=0 oll=3 omem=20504 cmd=subscribe";
  assert.deepEqual(parsePubsubClients(list), [
    { id: "7", outputBytes: 0 },
    { id: "12", outputBytes: 20504 },
  ]);
  assert.deepEqual(parsePubsubClients(""), []);
});

// --- rendering ----------------------------------------------------------------------------------

function results(runs: RunRecord[]): ScenarioResults {
  return {
    quick: false,
    cases: ["a", "b", "c", "d", "e", "f"],
    startedAt: "2026-01-01T00:00:00.000Z",
    elapsedSeconds: 600,
    machine: {
      ...{ cpuModel: "Test CPU", cores: 2, memoryBytes: 24 * 2 ** 30, kernel: "6.1.0" },
      ...{ deno: "2.9.6", date: "2026-01-01T00:00:00.000Z", commit: "abc1234", loadAverage: "0.1" },
    },
    pinned: true,
    invocation: "deno run -A bench/scenarios.ts",
    commands: {
      sluice: "SLUICE-CMD",
      ceiling: "CEILING-CMD",
      loadgen: "LOADGEN-CMD",
      services: "SVC",
    },
    redisOutputBufferLimit: "pubsub 33554432 8388608 60",
    seed: { viewers: 1000, kinds: [{ kind: "blocks author", count: 50, delivered: false }] },
    notes: ["a note"],
    runs,
  };
}

function sampleRuns(): RunRecord[] {
  const bRun = (server: "sluice" | "ceiling", transport: "sse" | "ws", rate: number, ok: boolean) =>
    run({
      id: `b-${server}-${transport}-${rate}`,
      server,
      transport,
      rate,
      command: `loadgen --transport ${transport} --rate ${rate}`,
      r: { published: rate, delivered: ok ? rate * 1000 : rate * 900, expected: rate * 1000 },
    });
  return [
    run({ id: "a1", caseId: "a", rate: null, clients: 10_000, r: {} }),
    run({ id: "a2", caseId: "a", rate: null, clients: 10_000, server: "ceiling", r: {} }),
    bRun("sluice", "sse", 40, true),
    bRun("sluice", "sse", 60, false),
    bRun("ceiling", "sse", 50, true),
    bRun("ceiling", "sse", 75, false),
    run({
      id: "c1",
      caseId: "c",
      rate: 20,
      expected: 15_000,
      r: { published: 20, delivered: 15_000 },
    }),
    run({ id: "d1", caseId: "d", rate: 10, r: { p99: 12 } }),
    run({ id: "e1", caseId: "e", rate: null, variant: "same token", clients: 5000, r: {} }),
    run({ id: "f1", caseId: "f", variant: "", r: { p99: 10 } }),
    run({
      id: "f2",
      caseId: "f",
      variant: "slow",
      r: { p99: 30 },
      rssHalves: { first: 100e6, second: 101e6 },
    }),
  ];
}

Deno.test("renderResults: machine, setup, targets with verdicts, every case and command", () => {
  const md = renderResults(results(sampleRuns()));
  assert.match(md, /^# Sluice benchmark results\n/);
  assert.match(md, /\| Test CPU \| 2 \| 24\.0 GiB \| 6\.1\.0 \| 2\.9\.6 \| abc1234 \| 0\.1 \|/);
  for (const text of ["SLUICE-CMD", "CEILING-CMD", "LOADGEN-CMD", "SVC", "- a note"]) {
    assert.ok(md.includes(text), text);
  }
  for (
    const heading of [
      "a. Idle",
      "b. Unfiltered",
      "c. Filtered",
      "d. Latency",
      "e. Connection",
      "f. Slow",
    ]
  ) {
    assert.match(md, new RegExp(`^## ${heading}`, "m"));
  }
  assert.match(
    md,
    /\| b\. unfiltered SSE ≥ 0\.8 × ceiling \| 0\.80 \(40,000 vs 50,000 deliveries\/s\) \| met \|/,
  );
  assert.match(
    md,
    /\| c\. filtered SSE ≥ 0\.6 × Sluice unfiltered \| 0\.38 .* \| missed by 38 % \|/,
  );
  assert.match(
    md,
    /\| a\. idle SSE ≤ 25 KB per connection at 10,000 \| 10\.0 KB at 10,000 \| met \|/,
  );
  assert.match(md, /\| d\. p99 ≤ 20 ms .* SSE \| 12\.0 ms at 1,000 clients \| met \|/);
  assert.match(
    md,
    /\| e\. 5,000 connections ≤ 1\.5 s, SSE, same token \| 400 ms for 5,000, 0 failed \| met \|/,
  );
  assert.match(
    md,
    /\| f\. SSE: RSS plateaus with slow clients \| 1\.0 % growth in 2nd half; 0 of 0 slow cut \| met \|/,
  );
  assert.match(
    md,
    /\| f\. SSE: normal p99 within 2× .* \| 3\.00 \(30\.0 ms vs 10\.0 ms\) \| missed by 50 % \|/,
  );
  assert.match(md, /b-sluice-sse-60 sluice port 4000 pid 1: loadgen --transport sse --rate 60/);
  assert.match(md, /\| sse \| 40,000 \| 50,000 \| 0\.80 \|/);
  assert.match(md, /34–40k deliveries\/s SSE, 20–26k WS/);
});

Deno.test("renderResults flags quick runs and missing taskset", () => {
  const md = renderResults({ ...results([]), quick: true, pinned: false });
  assert.match(md, /quick smoke run/);
  assert.match(md, /`taskset` was not found: nothing is pinned/);
  assert.deepEqual(targetRows([]), []);
});

Deno.test("slowCaseRate leaves headroom for the normal and the slow clients together", () => {
  const plan = { ...FULL, slowClients: 1000, slowRate: 100 };
  const ladder = (server: "sluice" | "ceiling", transport: "sse" | "ws", ok: number) => [
    run({ server, transport, rate: ok, r: { published: ok, delivered: ok * 1000 } }),
    run({ server, transport, rate: ok * 1.5, r: { p99: 1500 } }),
  ];
  const runs = [
    ...ladder("sluice", "sse", 345),
    ...ladder("ceiling", "sse", 345),
    ...ladder("sluice", "ws", 230),
    ...ladder("ceiling", "ws", 230),
  ];
  const notes: string[] = [];
  // 60 % of 230,000 deliveries/s shared by 2,000 clients: 69 msg/s.
  assert.equal(slowCaseRate({ plan, runs, notes }), 69);
  assert.match(notes[0], /69 msg\/s instead of 100: with 2000 clients/);
  assert.equal(slowCaseRate({ plan, runs: [], notes: [] }), 100, "no ladder: the plan's rate");
});

Deno.test("every registered case has its own letter, runs in registry order and renders its own section", () => {
  const ids = CASES.map((c) => c.id);
  assert.deepEqual(ids, ["a", "b", "c", "d", "e", "f", "g"]);
  assert.deepEqual((parseCli([]) as { cases: string[] }).cases, ids);
  const all = sampleRuns();
  const r = results(all);
  for (const c of CASES) {
    const runs = all.filter((run) => run.caseId === c.id);
    const section = c.section(runs, all, r);
    assert.match(section[0], new RegExp(`^## ${c.id}\\. `), c.id);
    assert.ok(c.targets(all).every((t) => t.target.startsWith(`${c.id}. `)), c.id);
  }
  assert.ok(renderResults(r).includes(CASES[5].section(all.slice(-2), all, r).join("\n")));
});

// --- merge --------------------------------------------------------------------------------------

/** A results object of `cases` from `runs`, on `cpuModel`, dated `date`, at `commit`. */
function resultsOf(
  runs: RunRecord[],
  cases: string[],
  o: { date: string; commit: string; seconds: number; cpuModel?: string; cores?: number },
): ScenarioResults {
  const base = results(runs.filter((run) => cases.includes(run.caseId)));
  return {
    ...base,
    cases,
    startedAt: o.date,
    elapsedSeconds: o.seconds,
    invocation: `deno run -A bench/scenarios.ts --only ${cases.join(",")} --json r.json`,
    notes: [`note of ${o.commit}`],
    machine: {
      ...base.machine,
      ...{
        date: o.date,
        commit: o.commit,
        cpuModel: o.cpuModel ?? "Test CPU",
        cores: o.cores ?? 2,
      },
    },
  };
}

const FIRST = { date: "2026-01-01T00:00:00.000Z", commit: "abc1234", seconds: 600 };
const SECOND = { date: "2026-02-01T10:30:00.000Z", commit: "def5678", seconds: 300 };

/** Case b and c runs of a second run: Sluice at 48 msg/s, the ceiling at 50, c at 24. */
function rerunBC(): RunRecord[] {
  const b = (server: "sluice" | "ceiling", rate: number, ok: boolean, n: number) =>
    run({
      id: `b${n}`,
      server,
      rate,
      command: `loadgen-new --rate ${rate}`,
      r: { published: rate, delivered: ok ? rate * 1000 : rate * 900, expected: rate * 1000 },
    });
  return [
    b("sluice", 48, true, 1),
    b("sluice", 72, false, 2),
    b("ceiling", 50, true, 3),
    b("ceiling", 75, false, 4),
    run({
      id: "c1",
      caseId: "c",
      rate: 24,
      expected: 18_000,
      command: "loadgen-new c",
      r: { published: 24, delivered: 18_000 },
    }),
  ];
}

Deno.test("mergeResults replaces the cases that ran and keeps the other cases' records", () => {
  const earlier = resultsOf(sampleRuns(), ["a", "b", "c", "d", "e", "f"], FIRST);
  const current = resultsOf(rerunBC(), ["b", "c"], SECOND);
  const merged = mergeResults(earlier, current);
  assert.deepEqual(merged.cases, ["a", "b", "c", "d", "e", "f"]);
  assert.deepEqual(
    merged.runs.map((r) => r.id),
    ["a1", "a2", "b1", "b2", "b3", "b4", "c1", "d1", "e1", "f1", "f2"],
  );
  assert.ok(merged.runs.filter((r) => r.caseId === "b").every((r) => r.command.includes("-new")));
  assert.ok(merged.runs.filter((r) => r.caseId === "c").every((r) => r.command.includes("-new")));
  assert.deepEqual(merged.origins?.map((o) => o.kept), [["b", "c"], ["a", "d", "e", "f"]]);
  assert.equal(merged.machine.commit, "def5678");
  // Merging again keeps each case with its own run.
  const third = { ...SECOND, date: "2026-03-01T00:00:00.000Z", commit: "0123abc" };
  const twice = mergeResults(merged, resultsOf(sampleRuns(), ["a"], third));
  assert.deepEqual(twice.origins?.map((o) => o.kept), [["a"], ["b", "c"], ["d", "e", "f"]]);
  assert.deepEqual(twice.origins?.map((o) => o.machine.commit), ["0123abc", "def5678", "abc1234"]);
  assert.deepEqual(twice.origins?.map((o) => o.notes), [
    ["note of 0123abc"],
    ["note of def5678"],
    ["note of abc1234"],
  ]);
  assert.equal(mergeResults(earlier, { ...current, cases: [], runs: [] }), earlier, "none ran");
});

Deno.test("merged RESULTS.md says which cases come from which run, and renders kept ones from their records", () => {
  const earlier = resultsOf(sampleRuns(), ["a", "b", "c", "d", "e", "f"], FIRST);
  const md = renderResults(mergeResults(earlier, resultsOf(rerunBC(), ["b", "c"], SECOND)));
  assert.ok(
    md.includes(
      "Cases b, c: this run (2026-02-01T10:30:00.000Z, commit def5678, Test CPU, 2 cores, 300 s); " +
        "cases a, d, e, f: earlier run (2026-01-01T00:00:00.000Z, commit abc1234, Test CPU, " +
        "2 cores, 600 s for cases a, b, c, d, e, f).",
    ),
    md.slice(0, 1200),
  );
  assert.match(md, /--only b,c --json r\.json` on 2026-02-01T10:30:00\.000Z, which re-ran only/);
  assert.doesNotMatch(md, /Different machine/);
  assert.ok(md.includes(
    "- Case f (the earlier run of 2026-01-01 00:00 UTC at commit abc1234): its publishing rate " +
      "(at most 60 % of the lowest saturation measured in case b) was derived from case b of that " +
      "run, not from the case b figures shown here (this run).",
  ));
  assert.doesNotMatch(md, /Case c \(/, "b and c ran together: nothing to say about c");
  // Targets: b and c from this run's records, the others from the kept ones, each labelled.
  assert.match(
    md,
    /\| b\. unfiltered SSE ≥ 0\.8 × ceiling \| 0\.96 \(48,000 vs 50,000 .* \| this run \|/,
  );
  assert.match(md, /\| c\. filtered SSE .* \| 0\.38 \(18,000 vs 48,000 .* \| this run \|/);
  assert.match(
    md,
    /\| a\. idle SSE .* \| 10\.0 KB at 10,000 \| met \| the earlier run of 2026-01-01 00:00 UTC at commit abc1234 \|/,
  );
  assert.match(
    md,
    /\| f\. SSE: normal p99 within 2× .* \| 3\.00 \(30\.0 ms vs 10\.0 ms\) \| missed/,
  );
  assert.match(
    md,
    /^## a\. Idle.*\n\n_Runs kept from the earlier run of 2026-01-01T00:00:00\.000Z/m,
  );
  assert.match(
    md,
    /^## b\. Unfiltered.*\n\n_Runs of this run \(2026-02-01T10:30:00\.000Z, commit def5678\)\._$/m,
  );
  assert.match(
    md,
    /^## f\. Slow.*\n\n_Runs kept .*_ _Case f \(the earlier run .* \(this run\)\._$/m,
  );
  assert.match(md, /loadgen-new --rate 72/);
  assert.doesNotMatch(md, /loadgen --transport sse --rate 60/, "the earlier b runs are gone");
  assert.match(md, /- This run: note of def5678\n- The earlier run of .*: note of abc1234\n/);
  assert.match(md, /^\| a, d, e, f \(the earlier run of .*\) \| Test CPU \| 2 \| 24\.0 GiB \|/m);
});

Deno.test("merged RESULTS.md warns when the machines differ and says what c took from a kept b", () => {
  const earlier = resultsOf(sampleRuns(), ["a", "b", "c", "d", "e", "f"], FIRST);
  const current = resultsOf(rerunBC(), ["c"], { ...SECOND, cpuModel: "Other CPU", cores: 4 });
  const merged = mergeResults(earlier, current);
  const md = renderResults(merged);
  assert.ok(md.includes(
    "- **Different machine:** cases a, b, d, e, f come from a run on Test CPU (2 cores, " +
      "2026-01-01T00:00:00.000Z), this run is on Other CPU (4 cores): figures from the two are " +
      "not comparable.",
  ));
  assert.match(
    md,
    /Case c: this run \(.*, Other CPU, 4 cores, 300 s\); cases a, b, d, e, f: earlier/,
  );
  assert.ok(md.includes(
    "Case c (this run) ran without case b: the first rate of its ladders (half of case b's " +
      "Sluice saturation) had no case b figure of its own run, so the plan's default was used.",
  ));
  assert.ok(md.includes(
    "Case c (this run): its ratios to the unfiltered figures of case b (section and targets) set " +
      "it against case b of the earlier run of 2026-01-01 00:00 UTC at commit abc1234.",
  ));
  assert.match(
    md,
    /\| c\. filtered SSE .* \| 0\.45 \(18,000 vs 40,000 .* \| missed by 25 % \| this run \|/,
  );
  assert.match(md, /^\| c \(this run\) \| Other CPU \| 4 \|/m);
  // The same machine: no warning.
  const same = mergeResults(earlier, resultsOf(rerunBC(), ["c"], SECOND));
  assert.ok(!same.notes.some((note) => note.includes("Different machine")));
});

Deno.test("--merge refuses to start without a readable earlier --json file, in one line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const refusals: [string | undefined, RegExp, ErrorConstructor][] = [
      [undefined, /^--merge needs --json FILE/, RangeError],
      [
        `${dir}/missing.json`,
        /^--merge: cannot read the earlier results .*missing\.json: /,
        RangeError,
      ],
      [`${dir}`, /^--merge: cannot read the earlier results /, RangeError],
    ];
    await Deno.writeTextFile(`${dir}/broken.json`, '{\n  "runs": [');
    refusals.push([`${dir}/broken.json`, /^--merge: .*broken\.json is not JSON/, TypeError]);
    await Deno.writeTextFile(`${dir}/other.json`, JSON.stringify({ runs: [] }));
    refusals.push([
      `${dir}/other.json`,
      /is not the --json output of a scenario run \(no cases\)$/,
      TypeError,
    ]);
    for (const [path, message, type] of refusals) {
      await assert.rejects(readEarlier(path), (error: Error) => {
        assert.ok(error instanceof type, `${path}: ${error.name}`);
        assert.match(error.message, message);
        assert.ok(!error.message.includes("\n"), error.message);
        return true;
      });
    }
    const earlier = resultsOf(sampleRuns(), ["a", "b"], FIRST);
    await Deno.writeTextFile(`${dir}/ok.json`, JSON.stringify(earlier));
    assert.deepEqual(await readEarlier(`${dir}/ok.json`), earlier);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const unknown = JSON.stringify({ ...results([]), cases: ["a", "z"] });
  assert.throws(() => parseEarlier(unknown, "x.json"), /\(unknown case "z"\)$/);
});

Deno.test("mergeResults: cases kept beside a re-run b say what they took from the earlier b", () => {
  const earlier = resultsOf(sampleRuns(), ["a", "b", "c", "d", "e", "f"], FIRST);
  const merged = mergeResults(earlier, resultsOf(rerunBC(), ["b"], SECOND));
  const earlierRun = "the earlier run of 2026-01-01 00:00 UTC at commit abc1234";
  assert.deepEqual(merged.notes, [
    `Case c (${earlierRun}): the first rate of its ladders (half of case b's Sluice saturation) ` +
    "was derived from case b of that run, not from the case b figures shown here (this run).",
    `Case c (${earlierRun}): its ratios to the unfiltered figures of case b (section and ` +
    "targets) set it against case b of this run.",
    `Case f (${earlierRun}): its publishing rate (at most 60 % of the lowest saturation ` +
    "measured in case b) was derived from case b of that run, not from the case b figures " +
    "shown here (this run).",
  ]);
});

Deno.test("Case a shows Sluice's own share per connection and per added connection", () => {
  const idle = (server: "sluice" | "ceiling", clients: number, idleBytes: number) => {
    const record = run({ caseId: "a", server, transport: "ws", clients, rate: null, r: {} });
    const s = record.report!.server!;
    s.rssBaselineBytes = 50 * 2 ** 20;
    s.rssIdleBytes = idleBytes;
    s.rssPerConnectionBytes = (idleBytes - s.rssBaselineBytes) / clients;
    return record;
  };
  const MB = 2 ** 20;
  const runs = [
    idle("sluice", 1000, 50 * MB + 30 * 1024 * 1000),
    idle("ceiling", 1000, 50 * MB + 20 * 1024 * 1000),
    idle("sluice", 5000, 50 * MB + 30 * 1024 * 1000 + 21 * 1024 * 4000),
    idle("ceiling", 5000, 50 * MB + 20 * 1024 * 1000 + 20 * 1024 * 4000),
  ];
  const md = idleMemory.section(runs, runs, results(runs)).join("\n");
  assert.match(md, /\| ws \| 1,000 \| 30\.0 KB \| 20\.0 KB \| 10\.0 KB \| 1\.50 \|/);
  assert.match(md, /\| ws \| 1,000 → 5,000 \| 21\.0 KB \| 20\.0 KB \| 1\.0 KB \|/);
  const own = idleMemory.targets(runs).find((t) => t.target.includes("own idle WS"));
  assert.equal(own?.figure, "2.8 KB at 5,000");
  assert.match(own?.verdict ?? "", /^missed by 40 %$/);
});

Deno.test("Rewriting RESULTS.md keeps the hand-run sections from the marker on, and only those", () => {
  const previous = `# old render\n\nold tables\n\n${HAND_RUN_MARKER}\n\n## Hand-run\n\nfigures\n`;
  assert.equal(
    keepHandRun("# new render\n\nnew tables\n", previous),
    `# new render\n\nnew tables\n\n${HAND_RUN_MARKER}\n\n## Hand-run\n\nfigures\n`,
  );
  assert.equal(keepHandRun("# new\n", "# old, no marker\n"), "# new\n");
  assert.equal(keepHandRun("# new\n", undefined), "# new\n");
});
