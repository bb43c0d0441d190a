/**
 * `deno task bench:scenarios`: the standard benchmark cases, Sluice and the
 * reference broadcaster (bench/ceiling.ts) side by side, written to
 * bench/RESULTS.md.
 *
 *   a. idle memory per connection at 1k, 5k, 10k connections, SSE and WS
 *   b. unfiltered fan-out (`user`, 1,000 clients, 1.5 KB) up to saturation
 *   c. filtered fan-out (`public`, 1,000 seeded viewers), Sluice only
 *   d. latency at 1,000 × 10 msg/s (SSE, WS) and 5,000 mixed × 10 msg/s
 *   e. 5,000 connections at once: one token, then 1,000 distinct tokens
 *   f. 1,000 clients that never read beside 1,000 normal ones
 *   g. 2,000 WS clients × 100 msg/s with SLUICE_WORKERS=1, then auto (unpinned)
 *
 * Each case is one file in bench/scenarios/ (`a_idle.ts` … `g_workers.ts`) that
 * holds its runner, its RESULTS.md section and its targets; the registry is
 * bench/scenarios/cases.ts. The shared machinery (processes, one measured
 * run, ladders, analysis, tables) lives beside them.
 *
 *   deno run -A bench/scenarios.ts [--only a,b,…] [--quick] [--out bench/RESULTS.md] [--json FILE]
 *     [--merge]
 *
 * `--merge` re-runs only the `--only` cases: it reads the earlier results from
 * the `--json` file first (and refuses to start without them), replaces the
 * records of the cases that ran, keeps the others, and writes both files
 * from the merged set (bench/scenarios/merge.ts).
 *
 * The process pins itself to core 1 (`taskset`), so redis-server, PostgreSQL
 * and every load generator run share core 1, while each server under test
 * runs alone on core 0 (Sluice as one worker, `SLUICE_WORKERS=1`; case g's
 * Sluice alone may use every core): a fresh process per run, stopped with SIGTERM. Without
 * taskset nothing is pinned and RESULTS.md says so. Progress goes to stderr.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startPostgresServer } from "../scripts/postgres_server.ts";
import { startRedisServer } from "../scripts/redis_server.ts";
import { CASES } from "./scenarios/cases.ts";
import { machine } from "./scenarios/machine.ts";
import { keptOrigins, machineNote, mergeResults, parseEarlier } from "./scenarios/merge.ts";
import { type Context, say } from "./scenarios/measure.ts";
import { FULL, QUICK, VIEWERS } from "./scenarios/plan.ts";
import { commandTemplates, pinSelf, STOP_DEADLINE_MS } from "./scenarios/procs.ts";
import { keepHandRun, renderResults } from "./scenarios/render.ts";
import type { ScenarioCase } from "./scenarios/case.ts";
import {
  type CaseId,
  type MachineInfo,
  type ScenarioResults,
  shellJoin,
} from "./scenarios/report.ts";
import { redisCli } from "./scenarios/samplers.ts";
import { profileCounts, seedStatements, viewerToken } from "./scenarios/seed.ts";

const IDS: readonly CaseId[] = CASES.map((c) => c.id);

/** Seeds the viewers of cases c and e; returns the file of their tokens. */
async function seed(ctx: Pick<Context, "pg" | "dir">): Promise<string> {
  for (const statement of seedStatements(VIEWERS)) await ctx.pg.query(statement);
  const file = `${ctx.dir}/tokens.txt`;
  const tokens = Array.from({ length: VIEWERS }, (_, i) => viewerToken(i));
  await Deno.writeTextFile(file, tokens.join("\n") + "\n");
  return file;
}

/** Parsed command line. */
interface Cli {
  cases: CaseId[];
  quick: boolean;
  out: string;
  json?: string;
  merge: boolean;
}

/** "cases to run (default all): a idle memory, …", wrapped for `--help`. */
function onlyHelp(cases: readonly ScenarioCase[]): string {
  const lines = ["cases to run (default all):"];
  for (const [i, c] of cases.entries()) {
    const item = `${c.id} ${c.summary}${i < cases.length - 1 ? "," : ""}`;
    if (`${lines.at(-1)} ${item}`.length > 78) lines.push(item);
    else lines[lines.length - 1] += ` ${item}`;
  }
  return lines.join("\n                ");
}

const USAGE = `Usage: deno run -A bench/scenarios.ts [--only ${
  IDS.join(",")
}] [--quick] [--out FILE] [--json FILE] [--merge]
  --only LIST   ${onlyHelp(CASES)}
  --quick       small client counts and 2 s runs: a smoke run of a minute or two
  --out FILE    Markdown results (default bench/RESULTS.md)
  --json FILE   every raw figure as JSON
  --merge       re-run only these cases: read the earlier --json FILE, replace the records of
                the cases run, keep the others, write --out and --json from the merged set`;

/** Parses the command line; throws RangeError on bad input, returns "help" for --help. */
export function parseCli(args: string[]): Cli | "help" {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      only: { type: "string" },
      quick: { type: "boolean", default: false },
      out: { type: "string", default: "bench/RESULTS.md" },
      json: { type: "string" },
      merge: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return "help";
  const only = values.only?.split(",").map((c) => c.trim().toLowerCase()).filter(Boolean);
  const unknown = only?.filter((c) => !IDS.includes(c));
  if (unknown?.length) throw new RangeError(`--only: unknown case(s) ${unknown.join(", ")}`);
  const cases = IDS.filter((c) => only === undefined || only.includes(c));
  if (cases.length === 0) throw new RangeError("--only: no case given");
  return { cases, quick: values.quick, out: values.out, json: values.json, merge: values.merge };
}

/** The earlier results `--merge` merges into; throws a one-line RangeError or TypeError. */
export async function readEarlier(path: string | undefined): Promise<ScenarioResults> {
  if (path === undefined) {
    throw new RangeError("--merge needs --json FILE: the earlier run's results to merge into");
  }
  let text;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message.split("\n")[0] : String(error);
    throw new RangeError(`--merge: cannot read the earlier results ${path}: ${reason}`);
  }
  return parseEarlier(text, path);
}

/** The command line and, with `--merge`, the earlier results; or the exit code of a refusal. */
async function commandLine(
  args: string[],
): Promise<{ cli: Cli; earlier?: ScenarioResults } | number> {
  let cli;
  try {
    cli = parseCli(args);
  } catch (error) {
    if (!(error instanceof RangeError || error instanceof TypeError)) throw error;
    console.error(`${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (cli === "help") {
    console.log(USAGE);
    return 0;
  }
  try {
    return { cli, earlier: cli.merge ? await readEarlier(cli.json) : undefined };
  } catch (error) {
    if (!(error instanceof RangeError || error instanceof TypeError)) throw error;
    console.error(error.message);
    return 2;
  }
}

/** Runs the cases of the command line against fresh services; their results alone. */
async function runCases(
  cli: Cli,
  args: string[],
  earlier?: ScenarioResults,
): Promise<ScenarioResults> {
  const started = Date.now();
  const pinned = await pinSelf();
  const info = await machine();
  for (const origin of earlier ? keptOrigins(earlier, cli.cases) : []) {
    const note = machineNote(info, origin);
    if (note) say({ started }, `warning: ${note.replaceAll("**", "")}`);
  }
  say({ started }, `starting redis-server and PostgreSQL${pinned ? " on core 1" : " (unpinned)"}…`);
  await using stack = new AsyncDisposableStack();
  const dir = await Deno.makeTempDir({ prefix: "scenarios" });
  stack.defer(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
  const redis = stack.use(await startRedisServer());
  const pg = stack.use(await startPostgresServer());
  const tokensFile = await seed({ pg, dir });
  const plan = cli.quick ? QUICK : FULL;
  const ctx: Context = {
    plan,
    pinned,
    cores: info.cores,
    redis,
    pg,
    dir,
    tokensFile,
    runs: [],
    killed: [],
    notes: [],
    stopping: false,
    started,
  };
  const onSigint = () => ctx.stopping = true;
  Deno.addSignalListener("SIGINT", onSigint);
  stack.defer(() => Deno.removeSignalListener("SIGINT", onSigint));
  if (!pinned) ctx.notes.push("taskset was not available: nothing was pinned to a core.");
  const ran: CaseId[] = [];
  for (const c of CASES.filter((c) => cli.cases.includes(c.id))) {
    if (ctx.stopping) break;
    say(ctx, `case ${c.id}…`);
    ran.push(c.id);
    await c.run(ctx);
  }
  return await record(ctx, { ...cli, cases: ran }, args, info);
}

/** The results of the cases that ran (`cli.cases`; a case cut short by SIGINT included). */
async function record(
  ctx: Context,
  cli: Cli,
  args: string[],
  info: MachineInfo,
): Promise<ScenarioResults> {
  if (ctx.killed.length) {
    ctx.notes.push(
      `${ctx.killed.length} server process(es) had not exited ${STOP_DEADLINE_MS / 1000} s after ` +
        `SIGTERM and were killed (after their run was measured): ${ctx.killed.join(", ")}.`,
    );
  }
  if (ctx.stopping) ctx.notes.push("The run was interrupted (SIGINT): some figures are missing.");
  return {
    quick: cli.quick,
    cases: cli.cases,
    startedAt: new Date(ctx.started).toISOString(),
    elapsedSeconds: (Date.now() - ctx.started) / 1000,
    machine: info,
    pinned: ctx.pinned,
    invocation: shellJoin(["deno", "run", "-A", "bench/scenarios.ts", ...args]),
    commands: commandTemplates(ctx),
    redisOutputBufferLimit:
      (await redisCli(ctx.redis.port, "config", "get", "client-output-buffer-limit"))
        ?.split("\n").slice(1).join(" ") ?? "unknown",
    seed: {
      viewers: VIEWERS,
      kinds: [...profileCounts(VIEWERS)].map(([kind, k]) => ({ kind, ...k })),
    },
    notes: ctx.notes,
    runs: ctx.runs,
  };
}

async function main(args: string[]): Promise<number> {
  const parsed = await commandLine(args);
  if (typeof parsed === "number") return parsed;
  const { cli, earlier } = parsed;
  const current = await runCases(cli, args, earlier);
  const results = earlier ? mergeResults(earlier, current) : current;
  const previous = await Deno.readTextFile(cli.out).catch(() => undefined);
  await Deno.writeTextFile(cli.out, keepHandRun(renderResults(results), previous));
  if (cli.json) await Deno.writeTextFile(cli.json, JSON.stringify(results, null, 2) + "\n");
  say(
    { started: Date.parse(current.startedAt) },
    `wrote ${cli.out}${cli.json ? ` and ${cli.json}` : ""} (${results.runs.length} runs` +
      `${earlier ? `, ${current.runs.length} of them from this run` : ""})`,
  );
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`scenarios failed: ${error instanceof Error ? error.stack : error}`);
    Deno.exit(1);
  }
}
