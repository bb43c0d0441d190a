/**
 * The scenario results (bench/scenarios.ts): what one run recorded, the
 * verdicts drawn from a load report (kept up or not, the next rate of a
 * saturation ladder, CPU utilisation, who saturated), the targets, and the
 * whole bench/RESULTS.md rendered as Markdown. Pure: no I/O, no clock.
 *
 * @module
 */
import type { LoadReport } from "./_loadgen_report.ts";

/** The two servers under test. */
export type ServerKind = "sluice" | "ceiling";
/** The standard cases, a to f. */
export type CaseId = "a" | "b" | "c" | "d" | "e" | "f";

/** One load generator run against a fresh server process. */
export interface RunRecord {
  /** Case letter and sequence number, e.g. "b3". */
  id: string;
  caseId: CaseId;
  server: ServerKind;
  transport: "sse" | "ws" | "mix";
  /** What sets the run apart within its case ("same token", "slow clients", …); "" if nothing. */
  variant: string;
  clients: number;
  /** Messages per second asked of the publisher; null for idle runs. */
  rate: number | null;
  port: number | null;
  serverPid: number | null;
  /** The load generator's command line, exactly as run. */
  command: string;
  report: LoadReport | null;
  /** Why the run produced no report. */
  error?: string;
  /** Deliveries expected given the viewers' filters (case c); otherwise the loadgen's figure applies. */
  expected?: number;
  /**
   * The server's Redis subscriber, sampled every second: the largest output
   * buffer Redis held for it, and how many subscriber connections were seen
   * (more than one: Redis dropped it, e.g. at the pubsub output-buffer limit).
   */
  subscriber: { maxOutputBytes: number; connections: number } | null;
  /** Server RSS sampled during publishing (case f): max of the first and of the second half. */
  rssHalves?: { first: number; second: number } | null;
}

/** The machine the figures come from. */
export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryBytes: number;
  kernel: string;
  deno: string;
  date: string;
  commit: string;
  loadAverage: string;
}

/** Everything a scenario run produced; also the `--json` output. */
export interface ScenarioResults {
  quick: boolean;
  cases: CaseId[];
  startedAt: string;
  elapsedSeconds: number;
  machine: MachineInfo;
  /** taskset was found: servers on core 0, load generator and services on core 1. */
  pinned: boolean;
  /** The scenario script's own command line. */
  invocation: string;
  /** Command templates: Sluice, the ceiling, the load generator, Redis and PostgreSQL. */
  commands: Record<"sluice" | "ceiling" | "loadgen" | "services", string>;
  /** Redis `client-output-buffer-limit` as configured. */
  redisOutputBufferLimit: string;
  /** Viewers seeded for cases c and e, and a count per kind of viewer. */
  seed: { viewers: number; kinds: { kind: string; count: number; delivered: boolean }[] };
  notes: string[];
  runs: RunRecord[];
}

/** How a fan-out run ended, best first. */
export type RunStatus =
  | "kept up"
  | "behind"
  | "slow"
  | "publisher short"
  | "connect failures"
  | "failed";

/** Delivered below this share of expected: behind. */
export const KEEP_UP_SHARE = 0.98;
/** p99 latency above this: too slow. */
export const MAX_P99_MS = 1000;
/** Published below this share of the asked rate: the publisher (loadgen) is the limit. */
export const PUBLISHER_SHARE = 0.9;
/** CPU utilisation from which a process counts as saturated. */
export const BUSY = 0.85;

/** Deliveries the run should have made: the seeded expectation, else the loadgen's. */
export function expectedOf(run: RunRecord): number {
  return run.expected ?? run.report?.deliveries.expected ?? 0;
}

/** Whether a publishing run kept up, and if not, why. */
export function runStatus(run: RunRecord): RunStatus {
  const r = run.report;
  if (r === null || r.publishing === null) return "failed";
  if (r.connections.failed > 0 || r.connections.established < run.clients) {
    return "connect failures";
  }
  const asked = run.rate ?? 0;
  const achieved = r.publishing.seconds > 0 ? r.publishing.published / r.publishing.seconds : 0;
  if (achieved < PUBLISHER_SHARE * asked) return "publisher short";
  const expected = expectedOf(run);
  if (expected === 0 || r.deliveries.delivered < KEEP_UP_SHARE * expected) return "behind";
  if (r.latencyMs.p99 === null || r.latencyMs.p99 > MAX_P99_MS) return "slow";
  return "kept up";
}

/** How a saturation ladder climbs: first rate, step factor, most runs, finest gap to bisect. */
export interface Ladder {
  start: number;
  factor: number;
  maxSteps: number;
  /** Stop bisecting once the first failing rate is within this factor of the best passing one. */
  minGap: number;
}

function roundRate(rate: number): number {
  return rate >= 10 ? Math.round(rate) : Math.round(rate * 10) / 10;
}

/**
 * The next rate to try, or undefined when the ladder is done: climb by
 * `factor` while runs keep up, then bisect (geometric mean) between the best
 * passing and the lowest failing rate above it until they are `minGap` apart;
 * if the first rate already fails, step down.
 */
export function nextRate(
  tried: readonly { rate: number; ok: boolean }[],
  ladder: Ladder,
): number | undefined {
  if (tried.length >= ladder.maxSteps) return undefined;
  if (tried.length === 0) return ladder.start;
  const rates = new Set(tried.map((t) => t.rate));
  const good = tried.filter((t) => t.ok).map((t) => t.rate);
  const bad = tried.filter((t) => !t.ok).map((t) => t.rate);
  let next: number;
  if (good.length === 0) {
    next = roundRate(Math.min(...bad) / (ladder.factor * ladder.factor));
    if (next < 1) return undefined;
  } else {
    const best = Math.max(...good);
    const above = bad.filter((rate) => rate > best);
    if (above.length === 0) next = roundRate(best * ladder.factor);
    else {
      const lowest = Math.min(...above);
      if (lowest / best <= ladder.minGap) return undefined;
      next = roundRate(Math.sqrt(best * lowest));
    }
  }
  return rates.has(next) ? undefined : next;
}

/** The run with the most deliveries per second among those that kept up. */
export function saturation(runs: readonly RunRecord[]): RunRecord | undefined {
  let best: RunRecord | undefined;
  for (const run of runs) {
    if (runStatus(run) !== "kept up") continue;
    if (!best || perSecond(run) > perSecond(best)) best = run;
  }
  return best;
}

/** The lowest-rate failing run above the saturation point (what stopped the ladder). */
export function limitingRun(runs: readonly RunRecord[]): RunRecord | undefined {
  const floor = saturation(runs)?.rate ?? 0;
  return runs.filter((run) => runStatus(run) !== "kept up" && (run.rate ?? 0) > floor)
    .sort((x, y) => (x.rate ?? 0) - (y.rate ?? 0))[0];
}

/** Deliveries per second over the publishing time (0 without a report). */
export function perSecond(run: RunRecord): number {
  return run.report?.deliveries.perSecond ?? 0;
}

/** Server CPU seconds per million deliveries. */
export function cpuPerMillion(run: RunRecord): number | null {
  const r = run.report;
  const cpu = r?.server?.cpuSecondsWindow;
  if (!r || cpu === null || cpu === undefined || r.deliveries.delivered === 0) return null;
  return cpu / r.deliveries.delivered * 1e6;
}

/**
 * CPU utilisation (1 = one core) of the server and of the load generator over
 * the active part of the window: publishing plus the worst latency, never
 * more than the window (a drain that only waits is not counted as work time).
 */
export function utilisation(run: RunRecord): { server: number | null; loadgen: number | null } {
  const r = run.report;
  if (!r) return { server: null, loadgen: null };
  const tail = (r.latencyMs.max ?? 0) / 1000;
  const active = r.publishing
    ? Math.min(r.windowSeconds, r.publishing.seconds + tail)
    : r.windowSeconds;
  const share = (cpu: number | null | undefined) =>
    cpu === null || cpu === undefined || active <= 0 ? null : cpu / active;
  return { server: share(r.server?.cpuSecondsWindow), loadgen: share(r.loadgen.cpuSecondsWindow) };
}

/** Who ran out of CPU in a run: the server (core 0), the load generator (core 1), or neither. */
export function bottleneck(run: RunRecord): string {
  if (runStatus(run) === "publisher short") return "publisher (loadgen)";
  const { server, loadgen } = utilisation(run);
  const serverBusy = (server ?? 0) >= BUSY;
  const loadgenBusy = (loadgen ?? 0) >= BUSY;
  if (serverBusy && loadgenBusy) return "both";
  if (serverBusy) return "server";
  if (loadgenBusy) return "loadgen";
  return "neither at ≥85 % CPU";
}

/** "met" or "missed by N %" for a figure against a ceiling (`max`) or a floor (`min`). */
export function verdict(value: number | null, limit: number, kind: "max" | "min"): string {
  if (value === null || !Number.isFinite(value)) return "not measured";
  const met = kind === "max" ? value <= limit : value >= limit;
  if (met) return "met";
  const miss = kind === "max" ? (value - limit) / limit : (limit - value) / limit;
  return `missed by ${(100 * miss).toFixed(0)} %`;
}

/** Quotes one argument for a POSIX shell when it needs it. */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** A command line from its words. */
export function shellJoin(words: readonly string[]): string {
  return words.map(shellQuote).join(" ");
}

/** bench/RESULTS.md. */
export function renderResults(results: ScenarioResults): string {
  const m = results.machine;
  const gib = (m.memoryBytes / 2 ** 30).toFixed(1);
  const lines = [
    "# Sluice benchmark results",
    "",
    `Generated by \`${results.invocation}\` on ${m.date} in ${
      results.elapsedSeconds.toFixed(0)
    } s` +
    (results.quick
      ? " — **quick smoke run: small client counts and 2 s runs; the figures are " +
        "not comparable with the targets**."
      : "."),
    `Cases: ${
      results.cases.join(", ")
    }. Raw figures: every load report is in the \`--json\` output.`,
    "",
    "## Machine",
    "",
    "| CPU | cores | memory | kernel | Deno | Sluice commit | load average at start |",
    "| --- | --- | --- | --- | --- | --- | --- |",
    `| ${m.cpuModel} | ${m.cores} | ${gib} GiB | ${m.kernel} | ${m.deno} | ${m.commit} | ${m.loadAverage} |`,
    "",
    ...renderSetup(results),
    ...renderCases(results),
  ];
  return lines.join("\n") + "\n";
}

function renderSetup(results: ScenarioResults): string[] {
  const c = results.commands;
  const pinning = results.pinned
    ? "The server under test (Sluice or the ceiling) runs alone on core 0; the load generator, " +
      "redis-server and PostgreSQL share core 1 (`taskset`)."
    : "**`taskset` was not found: nothing is pinned**, the server, the load generator, Redis and " +
      "PostgreSQL share both cores, so the figures mix their CPU use.";
  return [
    "## Setup",
    "",
    pinning + " Every run starts a fresh server process (fresh RSS) and stops it with SIGTERM " +
    "afterwards; the load generator passes the server's pid to `--server-pid` and reads its RSS " +
    "and CPU from /proc.",
    "",
    "```",
    `# services (one pair for the whole run, started from the scenario process)`,
    c.services,
    `# Sluice (PORT differs per run)`,
    c.sluice,
    `# ceiling (bench/ceiling.ts; port differs per run)`,
    c.ceiling,
    `# load generator (the arguments of each run are listed under its case)`,
    c.loadgen,
    "```",
    "",
    redisNote(results),
    "",
    ...results.notes.map((note) => `- ${note}`),
    ...(results.notes.length ? [""] : []),
  ];
}

/** Whether Redis dropped the server's subscriber during the run. */
function dropped(run: RunRecord): boolean {
  return (run.subscriber?.connections ?? 0) > 1;
}

function redisNote(results: ScenarioResults): string {
  const watched = results.runs.filter((run) => run.subscriber);
  const worst = Math.max(0, ...watched.map((run) => run.subscriber?.maxOutputBytes ?? 0));
  const lost = results.runs.filter(dropped).map((run) => run.id);
  return `Redis \`client-output-buffer-limit\`: \`${results.redisOutputBufferLimit}\` (default). ` +
    "The pubsub class applies to the Sluice/ceiling subscriber: past the hard limit, or above " +
    "the soft limit for its duration, Redis drops the subscriber and its messages are lost. " +
    `The largest output buffer Redis held for a subscriber (sampled every second) was ` +
    `${(worst / 2 ** 20).toFixed(1)} MB; ` +
    (lost.length
      ? `**the subscriber reconnected during ${lost.join(", ")}: those runs lost messages.**`
      : "no subscriber was dropped.");
}

// --- Per-case sections ------------------------------------------------------------------------

const DASH = "–";

function int(n: number | null | undefined): string {
  return n === null || n === undefined ? DASH : Math.round(n).toLocaleString("en-US");
}

function kb(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? DASH : `${(bytes / 1024).toFixed(1)} KB`;
}

function mb(bytes: number | null | undefined): string {
  return bytes === null || bytes === undefined ? DASH : `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

function msText(value: number | null | undefined): string {
  if (value === null || value === undefined) return DASH;
  return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(1)} ms`;
}

function pct(fraction: number | null | undefined): string {
  return fraction === null || fraction === undefined ? DASH : `${(100 * fraction).toFixed(0)} %`;
}

function ratio(x: number | null | undefined, y: number | null | undefined): number | null {
  return x === null || x === undefined || !y ? null : x / y;
}

function ratioText(value: number | null): string {
  return value === null ? DASH : value.toFixed(2);
}

/** A Markdown table; `columns` is the header row with `|` between the names. */
function table(columns: string, rows: string[][]): string[] {
  const head = columns.split("|");
  return [
    `| ${head.join(" | ")} |`,
    `| ${head.map(() => "---").join(" | ")} |`,
    ...rows.map((row) => `| ${row.join(" | ")} |`),
    "",
  ];
}

function deliveredShare(run: RunRecord | undefined): number | null {
  if (!run?.report) return null;
  const expected = expectedOf(run);
  return expected === 0 ? null : run.report.deliveries.delivered / expected;
}

function commandBlock(runs: readonly RunRecord[]): string[] {
  if (runs.length === 0) return [];
  return [
    "Load generator command of each run (`--json RUN.json`, and `--quiet` outside case f, were " +
    "added to each):",
    "",
    "```",
    ...runs.map((run) => {
      const where = run.port === null ? "" : ` port ${run.port} pid ${run.serverPid}`;
      return `${run.id} ${run.server}${where}: ${run.command}${
        run.error ? `  # ${run.error}` : ""
      }`;
    }),
    "```",
    "",
  ];
}

/** Finds the run of a server with the given transport, variant and client count. */
function find(runs: readonly RunRecord[], server: ServerKind, where: Partial<RunRecord>) {
  return runs.find((run) =>
    run.server === server &&
    Object.entries(where).every(([key, value]) => run[key as keyof RunRecord] === value)
  );
}

function unique<T>(values: T[]): T[] {
  return [...new Set(values)];
}

function sectionA(runs: RunRecord[]): string[] {
  const rows = unique(runs.map((run) => `${run.transport} ${run.clients}`)).map((key) => {
    const [transport, clients] = key.split(" ");
    const where = { transport: transport as RunRecord["transport"], clients: Number(clients) };
    const s = find(runs, "sluice", where);
    const c = find(runs, "ceiling", where);
    const per = (run?: RunRecord) => run?.report?.server?.rssPerConnectionBytes ?? null;
    const rss = (run?: RunRecord) =>
      `${mb(run?.report?.server?.rssBaselineBytes)} → ${mb(run?.report?.server?.rssIdleBytes)}`;
    const est = (run?: RunRecord) => int(run?.report?.connections.established);
    return [
      transport,
      int(Number(clients)),
      kb(per(s)),
      kb(per(c)),
      ratioText(ratio(per(s), per(c))),
      rss(s),
      rss(c),
      `${est(s)} / ${est(c)}`,
      [s?.id, c?.id].filter(Boolean).join(", "),
    ];
  });
  return [
    "## a. Idle memory per connection",
    "",
    "Server RSS after the warm-up minus RSS before connecting, divided by the connections " +
    "(`--idle`, stream `user`, token-alice).",
    "",
    ...table(
      "transport|connections|Sluice per conn|ceiling per conn|Sluice/ceiling|" +
        "Sluice RSS before → idle|ceiling RSS before → idle|established (S / C)|" +
        "runs",
      rows,
    ),
    ...commandBlock(runs),
  ];
}

function ladderRows(runs: RunRecord[], filtered: boolean): string[][] {
  return runs.map((run) => {
    const r = run.report;
    const u = utilisation(run);
    const published = r?.publishing
      ? r.publishing.published / Math.max(r.publishing.seconds, 1e-9)
      : null;
    return [
      run.id,
      run.server,
      run.transport,
      String(run.rate ?? DASH),
      int(published),
      ...(filtered ? [int((published ?? 0) * run.clients), int(expectedOf(run))] : []),
      int(r?.deliveries.delivered),
      pct(deliveredShare(run)),
      int(r?.deliveries.perSecond),
      msText(r?.latencyMs.p50),
      msText(r?.latencyMs.p99),
      pct(u.server),
      pct(u.loadgen),
      cpuPerMillion(run)?.toFixed(2) ?? DASH,
      int(r?.disconnects.total),
      `${runStatus(run)}${dropped(run) ? " (Redis subscriber reconnected)" : ""}`,
    ];
  });
}

const LADDER_HEAD = "run|server|transport|rate/s|published/s|delivered|of expected|deliveries/s|" +
  "p50|p99|server CPU|loadgen CPU|CPU s / M deliveries|cut|outcome";

function limitText(runs: RunRecord[]): string {
  const run = limitingRun(runs);
  if (!run) return "no failing rate tried";
  const u = utilisation(run);
  return `${run.id}: ${runStatus(run)} at ${run.rate}/s (server ${pct(u.server)}, loadgen ` +
    `${pct(u.loadgen)}) → ${bottleneck(run)}`;
}

/** Saturation figures of case b per transport and server. */
export function unfilteredSaturation(runs: readonly RunRecord[]) {
  const of = (server: ServerKind, transport: string) =>
    saturation(
      runs.filter((r) => r.caseId === "b" && r.server === server && r.transport === transport),
    );
  return (["sse", "ws"] as const).map((transport) => ({
    transport,
    sluice: of("sluice", transport),
    ceiling: of("ceiling", transport),
  }));
}

function sectionB(runs: RunRecord[]): string[] {
  const rows = unfilteredSaturation(runs).map(({ transport, sluice, ceiling }) => {
    const side = (server: ServerKind) =>
      runs.filter((r) => r.server === server && r.transport === transport);
    return [
      transport,
      int(sluice && perSecond(sluice)),
      int(ceiling && perSecond(ceiling)),
      ratioText(ratio(sluice && perSecond(sluice), ceiling && perSecond(ceiling))),
      pair(sluice, ceiling, (run) => cpuPerMillion(run)?.toFixed(2) ?? DASH),
      pair(sluice, ceiling, (run) => pct(utilisation(run).server)),
      pair(sluice, ceiling, (run) => pct(utilisation(run).loadgen)),
      limitText(side("sluice")),
      limitText(side("ceiling")),
    ];
  });
  return [
    "## b. Unfiltered fan-out",
    "",
    `Stream \`user\` (channel timeline:1), 1.5 KB payloads, rates raised until delivery falls ` +
    `behind (delivered < ${100 * KEEP_UP_SHARE} % of expected, or p99 > ${MAX_P99_MS} ms). ` +
    "Saturation is the best rate that kept up. CPU is the share of one core over publishing plus " +
    "the worst latency; the load generator shares core 1 with Redis, so when it is near 100 % the " +
    "load generator, not the server, set the limit.",
    "",
    ...table(
      "transport|Sluice deliveries/s|ceiling deliveries/s|Sluice/ceiling|" +
        "CPU s / M deliveries (S / C)|server CPU at saturation (S / C)|" +
        "loadgen CPU at saturation (S / C)|Sluice stopped by|ceiling stopped by",
      rows,
    ),
    "Every rate tried:",
    "",
    ...table(LADDER_HEAD, ladderRows(runs, false)),
    ...commandBlock(runs),
  ];
}

function pair<T>(s: T | undefined, c: T | undefined, f: (x: T) => string): string {
  return `${s === undefined ? DASH : f(s)} / ${c === undefined ? DASH : f(c)}`;
}

function sectionC(runs: RunRecord[], all: RunRecord[], results: ScenarioResults): string[] {
  const unfiltered = unfilteredSaturation(all);
  const rows = filteredSaturation(all).map(({ transport, filtered }) => {
    const base = unfiltered.find((u) => u.transport === transport);
    const r = filtered?.report;
    const viewerEvents = r?.publishing ? r.publishing.published * (filtered?.clients ?? 0) : 0;
    return [
      transport,
      int(filtered && perSecond(filtered)),
      int(base?.sluice && perSecond(base.sluice)),
      ratioText(ratio(filtered && perSecond(filtered), base?.sluice && perSecond(base.sluice))),
      int(base?.ceiling && perSecond(base.ceiling)),
      ratioText(ratio(filtered && perSecond(filtered), base?.ceiling && perSecond(base.ceiling))),
      pct(filtered && viewerEvents ? expectedOf(filtered) / viewerEvents : null),
      int(r?.publishing ? viewerEvents / r.publishing.seconds : null),
      pct(filtered ? utilisation(filtered).server : null),
      pct(filtered ? utilisation(filtered).loadgen : null),
      limitText(runs.filter((run) => run.transport === transport)),
    ];
  });
  const head = LADDER_HEAD.replace("published/s|", "published/s|viewer-events/s|expected|");
  return [
    "## c. Filtered fan-out",
    "",
    `Stream \`public\`, Sluice only, ${results.seed.viewers} seeded viewers with distinct tokens ` +
    "(`--tokens-file`), statuses by the remote author (account 78, federationbot@mastodon.host, " +
    "language en). The ceiling's unfiltered figure (case b) is the reference. Expected deliveries " +
    "are computed from the seed (the load generator's own `expected` assumes every client gets " +
    "every message); keyword filters never drop a status, they add `filtered`.",
    "",
    ...table(
      "viewers|kind|gets the statuses",
      results.seed.kinds.map((k) => [String(k.count), k.kind, k.delivered ? "yes" : "no"]),
    ),
    ...table(
      "transport|filtered deliveries/s|Sluice unfiltered (b)|" +
        "filtered/unfiltered|ceiling unfiltered (b)|filtered/ceiling|" +
        "deliveries expected given the filters|viewer-events/s|server CPU|" +
        "loadgen CPU|stopped by",
      rows,
    ),
    "Every rate tried:",
    "",
    ...table(head, ladderRows(runs, true)),
    ...commandBlock(runs),
  ];
}

/** Saturation of case c per transport. */
export function filteredSaturation(runs: readonly RunRecord[]) {
  return (["sse", "ws"] as const).map((transport) => ({
    transport,
    filtered: saturation(runs.filter((r) => r.caseId === "c" && r.transport === transport)),
  }));
}

function latencyText(run: RunRecord | undefined): string[] {
  const l = run?.report?.latencyMs;
  return [msText(l?.p50), msText(l?.p90), msText(l?.p99), msText(l?.max)];
}

function sectionD(runs: RunRecord[]): string[] {
  const keys = unique(runs.map((run) => `${run.transport} ${run.clients}`));
  const rows = keys.map((key) => {
    const [transport, clients] = key.split(" ");
    const where = { transport: transport as RunRecord["transport"], clients: Number(clients) };
    const s = find(runs, "sluice", where);
    const c = find(runs, "ceiling", where);
    return [
      `${int(Number(clients))} ${transport}`,
      ...latencyText(s),
      ...latencyText(c),
      ratioText(ratio(s?.report?.latencyMs.p99, c?.report?.latencyMs.p99)),
      pair(s, c, (run) => pct(deliveredShare(run))),
      [s?.id, c?.id].filter(Boolean).join(", "),
    ];
  });
  return [
    "## d. Latency",
    "",
    "Stream `user`, 10 messages/s of 1.5 KB; latency from PUBLISH to the client reading the marker.",
    "",
    ...table(
      "clients|Sluice p50|p90|p99|max|ceiling p50|p90|p99|max|" +
        "p99 Sluice/ceiling|delivered (S / C)|runs",
      rows,
    ),
    ...commandBlock(runs),
  ];
}

function sectionE(runs: RunRecord[]): string[] {
  const keys = unique(runs.map((run) => `${run.transport}|${run.variant}`));
  const rows = keys.map((key) => {
    const [transport, variant] = key.split("|");
    const where = { transport: transport as RunRecord["transport"], variant };
    const s = find(runs, "sluice", where);
    const c = find(runs, "ceiling", { transport: where.transport });
    const cell = (run?: RunRecord) => {
      const k = run?.report?.connections;
      if (!k) return [DASH, DASH, DASH, DASH];
      const failures = Object.entries(k.failures).map(([why, n]) => `${n}× ${why}`).join("; ");
      return [
        msText(k.establishAllMs),
        msText(k.connectMs.p50),
        msText(k.connectMs.p99),
        `${k.failed}${failures ? ` (${failures})` : ""}`,
      ];
    };
    return [
      transport,
      variant,
      ...cell(s),
      ...cell(c),
      ratioText(ratio(
        s?.report?.connections.establishAllMs,
        c?.report?.connections.establishAllMs,
      )),
      [s?.id, c?.id].filter(Boolean).join(", "),
    ];
  });
  return [
    "## e. Connection storm",
    "",
    "Authenticated connections opened at once (no ramp, 500 attempts in flight), stream `user`; " +
    "the ceiling does not authenticate, so its same-token run is the reference for both rows.",
    "",
    ...table(
      "transport|tokens|Sluice all established|connect p50|p99|failures|" +
        "ceiling all established|connect p50|p99|failures|Sluice/ceiling|runs",
      rows,
    ),
    ...commandBlock(runs),
  ];
}

/** Case f figures per transport and server: with and without slow clients. */
export function slowPairs(runs: readonly RunRecord[]) {
  const f = runs.filter((run) => run.caseId === "f");
  return unique(f.map((run) => `${run.server}|${run.transport}`)).map((key) => {
    const [server, transport] = key.split("|") as [ServerKind, RunRecord["transport"]];
    const slow = f.find((r) =>
      r.server === server && r.transport === transport && r.variant === "slow"
    );
    const plain = f.find((r) =>
      r.server === server && r.transport === transport && r.variant === ""
    );
    const halves = slow?.rssHalves;
    return {
      server,
      transport,
      slow,
      plain,
      /** RSS growth from the first to the second half of publishing (≤ 5 %: a plateau). */
      growth: halves && halves.first > 0 ? halves.second / halves.first - 1 : null,
      p99Ratio: ratio(slow?.report?.latencyMs.p99, plain?.report?.latencyMs.p99),
    };
  });
}

/** RSS growth over the second half of publishing that still counts as a plateau. */
export const PLATEAU_GROWTH = 0.05;

function sectionF(runs: RunRecord[]): string[] {
  const detail = runs.map((run) => {
    const r = run.report;
    const s = r?.server;
    return [
      run.id,
      run.server,
      run.transport,
      run.variant === "slow" ? `${int(r?.slow.opened)} slow` : "none",
      mb(s?.rssIdleBytes),
      mb(s?.rssPeakBytes),
      mb(s?.rssEndBytes),
      run.rssHalves ? `${mb(run.rssHalves.first)} → ${mb(run.rssHalves.second)}` : DASH,
      msText(r?.latencyMs.p99),
      pct(deliveredShare(run)),
      run.variant === "slow" ? `${int(r?.slow.cutByServer)} of ${int(r?.slow.opened)}` : DASH,
      int(r?.disconnects.total),
    ];
  });
  const summary = slowPairs(runs).map((p) => [
    p.server,
    p.transport,
    mb(
      p.slow?.report?.server?.rssPeakBytes && p.plain?.report?.server?.rssPeakBytes
        ? p.slow.report.server.rssPeakBytes - p.plain.report.server.rssPeakBytes
        : null,
    ),
    p.growth === null ? DASH : `${(100 * p.growth).toFixed(1)} %`,
    verdict(p.growth, PLATEAU_GROWTH, "max"),
    ratioText(p.p99Ratio),
    verdict(p.p99Ratio, 2, "max"),
    int(p.slow?.report?.slow.cutByServer),
  ]);
  return [
    "## f. Slow clients",
    "",
    "Normal clients beside clients that never read (`--slow`), stream `user`, against the same " +
    "run without slow clients. The RSS halves are the largest server RSS sampled (every 250 ms) " +
    "in the first and in the second half of publishing; the publishing window is located from " +
    "the load generator's progress lines (once a second), so its edges are approximate. These " +
    "runs keep the progress lines, so they have no `--quiet`.",
    "",
    ...table(
      "server|transport|peak RSS added by slow clients|RSS growth, 2nd vs 1st half|" +
        `plateau (≤ ${100 * PLATEAU_GROWTH} %)|normal p99 with/without|within 2×|slow clients cut`,
      summary,
    ),
    ...table(
      "run|server|transport|slow|RSS idle|peak|end|RSS 1st → 2nd half|" +
        "normal p99|delivered|slow cut|normal cut",
      detail,
    ),
    ...commandBlock(runs),
  ];
}

/** One row of the targets table. */
export interface TargetRow {
  target: string;
  figure: string;
  verdict: string;
}

/** The issue's targets, each checked against the figures that were measured. */
export function targetRows(runs: readonly RunRecord[]): TargetRow[] {
  const rows: TargetRow[] = [];
  for (const [transport, limit] of [["sse", 25], ["ws", 8]] as const) {
    const idle = runs.filter((run) =>
      run.caseId === "a" && run.server === "sluice" && run.transport === transport
    ).sort((x, y) =>
      y.clients - x.clients
    )[0];
    if (!idle) continue;
    const per = idle.report?.server?.rssPerConnectionBytes;
    rows.push({
      target: `a. idle ${transport.toUpperCase()} ≤ ${limit} KB per connection at 10,000`,
      figure: `${kb(per)} at ${int(idle.clients)}`,
      verdict: verdict(per === null || per === undefined ? null : per / 1024, limit, "max"),
    });
  }
  const unfiltered = unfilteredSaturation(runs);
  for (const { transport, sluice, ceiling } of unfiltered) {
    const r = ratio(sluice && perSecond(sluice), ceiling && perSecond(ceiling));
    if (!sluice && !ceiling) continue;
    const open = (["sluice", "ceiling"] as const).filter((server) =>
      !limitingRun(
        runs.filter((run) =>
          run.caseId === "b" && run.server === server && run.transport === transport
        ),
      )
    );
    rows.push({
      target: `b. unfiltered ${transport.toUpperCase()} ≥ 0.8 × ceiling`,
      figure: `${ratioText(r)} (${int(sluice && perSecond(sluice))} vs ${
        int(ceiling && perSecond(ceiling))
      } deliveries/s${open.length ? `; ${open.join(" and ")} never fell behind` : ""})`,
      verdict: verdict(r, 0.8, "min"),
    });
  }
  for (const { transport, filtered } of filteredSaturation(runs)) {
    const base = unfiltered.find((u) => u.transport === transport)?.sluice;
    if (!runs.some((run) => run.caseId === "c" && run.transport === transport)) continue;
    const r = ratio(filtered && perSecond(filtered), base && perSecond(base));
    const open = !limitingRun(
      runs.filter((run) => run.caseId === "c" && run.transport === transport),
    );
    rows.push({
      target: `c. filtered ${transport.toUpperCase()} ≥ 0.6 × Sluice unfiltered`,
      figure: `${ratioText(r)} (${int(filtered && perSecond(filtered))} vs ${
        int(base && perSecond(base))
      } deliveries/s${open ? "; the filtered ladder never fell behind" : ""})`,
      verdict: verdict(r, 0.6, "min"),
    });
  }
  const latency = runs.filter((run) =>
    run.caseId === "d" && run.server === "sluice" && run.transport !== "mix"
  );
  for (const run of latency) {
    const p99 = run.report?.latencyMs.p99 ?? null;
    rows.push({
      target: `d. p99 ≤ 20 ms at 1,000 × 10 msg/s, ${run.transport.toUpperCase()}`,
      figure: `${msText(p99)} at ${int(run.clients)} clients`,
      verdict: verdict(p99, 20, "max"),
    });
  }
  for (const run of runs.filter((r) => r.caseId === "e" && r.server === "sluice")) {
    const all = run.report?.connections.establishAllMs ?? null;
    const failed = run.report?.connections.failed ?? 0;
    rows.push({
      target: `e. 5,000 connections ≤ 1.5 s, ${run.transport.toUpperCase()}, ${run.variant}`,
      figure: `${msText(all)} for ${int(run.clients)}, ${failed} failed`,
      verdict: failed > 0 ? `missed: ${failed} failed` : verdict(all, 1500, "max"),
    });
  }
  for (const p of slowPairs(runs).filter((pair) => pair.server === "sluice")) {
    rows.push({
      target: `f. ${p.transport.toUpperCase()}: RSS plateaus with slow clients`,
      figure: p.growth === null ? DASH : `${(100 * p.growth).toFixed(1)} % growth in 2nd half; ` +
        `${int(p.slow?.report?.slow.cutByServer)} of ${int(p.slow?.report?.slow.opened)} slow cut`,
      verdict: verdict(p.growth, PLATEAU_GROWTH, "max"),
    }, {
      target:
        `f. ${p.transport.toUpperCase()}: normal p99 within 2× of the run without slow clients`,
      figure: `${ratioText(p.p99Ratio)} (${msText(p.slow?.report?.latencyMs.p99)} vs ${
        msText(p.plain?.report?.latencyMs.p99)
      })`,
      verdict: verdict(p.p99Ratio, 2, "max"),
    });
  }
  return rows;
}

const MASTODON_REFERENCE = [
  ["unfiltered fan-out", "34–40k deliveries/s SSE, 20–26k WS"],
  ["filtered fan-out", "3.3–3.7k deliveries/s"],
  ["idle memory per connection", "25–32 KB SSE, 4–9 KB WS"],
  ["p99 latency at 1,000 × 10 msg/s", "46 ms SSE, 83 ms WS"],
  ["5,000 connections at once", "3.5–8.5 s"],
];

const SECTIONS: Record<
  CaseId,
  (runs: RunRecord[], all: RunRecord[], r: ScenarioResults) => string[]
> = {
  a: (runs) => sectionA(runs),
  b: (runs) => sectionB(runs),
  c: sectionC,
  d: (runs) => sectionD(runs),
  e: (runs) => sectionE(runs),
  f: (runs) => sectionF(runs),
};

function renderCases(results: ScenarioResults): string[] {
  const targets = targetRows(results.runs);
  const lines = [
    "## Targets",
    "",
    ...table(
      "target (from the issue)|measured|verdict",
      targets.map((t) => [t.target, t.figure, t.verdict]),
    ),
    "Mastodon's own streaming server, for context (figures from the issue):",
    "",
    ...table("|Mastodon", MASTODON_REFERENCE),
  ];
  for (const caseId of results.cases) {
    const runs = results.runs.filter((run) => run.caseId === caseId);
    lines.push(...SECTIONS[caseId](runs, results.runs, results));
  }
  return lines;
}

/**
 * The largest RSS sampled in the first and in the second half of a window
 * (`[time ms, bytes]` samples), or null when a half has no sample.
 */
export function rssHalves(
  samples: readonly (readonly [number, number])[],
  start: number,
  end: number,
): { first: number; second: number } | null {
  const middle = (start + end) / 2;
  let first = 0, second = 0;
  for (const [at, bytes] of samples) {
    if (at >= start && at < middle) first = Math.max(first, bytes);
    else if (at >= middle && at <= end) second = Math.max(second, bytes);
  }
  return first > 0 && second > 0 ? { first, second } : null;
}
