/**
 * The CPU time of each thread of a server process (case g,
 * bench/scenarios/g_workers.ts): `/proc/<pid>/task/<tid>/stat` (utime +
 * stime) and the thread's name from `/proc/<pid>/task/<tid>/comm`, sampled
 * while a run goes on, and each thread's share of the process's CPU time
 * over the measured window. Linux only; a thread or process that is gone is
 * skipped, never an error. Parsing and shares are pure.
 *
 * @module
 */

/** One thread at one moment: its id, its name and the CPU ticks it has used so far. */
export interface ThreadTicks {
  tid: number;
  name: string;
  ticks: number;
}

/** One thread's CPU time over a window and its share of the whole process's. */
export interface ThreadShare {
  tid: number;
  name: string;
  seconds: number;
  share: number;
}

/** The threads of a run over its window: seconds of the window and every thread's share. */
export interface ThreadWindow {
  windowSeconds: number;
  cpuSeconds: number;
  threads: ThreadShare[];
}

/**
 * Parses a `/proc/<pid>/task/<tid>/stat` line: the tid, the name between the
 * first `(` and the LAST `)` (a name may hold spaces and parentheses), and
 * utime + stime (fields 14 and 15) in clock ticks; undefined if malformed.
 */
export function parseTaskStat(line: string): ThreadTicks | undefined {
  const open = line.indexOf("(");
  const close = line.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const tid = Number(line.slice(0, open).trim());
  const fields = line.slice(close + 2).trim().split(/\s+/);
  const ticks = Number(fields[11]) + Number(fields[12]);
  if (!Number.isInteger(tid) || !Number.isFinite(ticks) || fields.length < 13) return undefined;
  return { tid, name: line.slice(open + 1, close), ticks };
}

/** Every thread of `pid` now; the name from `comm` when it can be read. Empty if the process is gone. */
export async function readThreads(pid: number): Promise<ThreadTicks[]> {
  const dir = `/proc/${pid}/task`;
  const threads: ThreadTicks[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      const stat = await Deno.readTextFile(`${dir}/${entry.name}/stat`).catch(() => "");
      const thread = parseTaskStat(stat);
      if (thread === undefined) continue;
      const comm = await Deno.readTextFile(`${dir}/${entry.name}/comm`).catch(() => "");
      threads.push({ ...thread, name: comm.trim() || thread.name });
    }
  } catch {
    return [];
  }
  return threads;
}

/**
 * Each thread's CPU seconds between two readings and its share of their sum,
 * largest first. A thread that started in between counts from zero; one that
 * ended in between is missing from `after` and left out.
 */
export function threadShares(
  before: readonly ThreadTicks[],
  after: readonly ThreadTicks[],
  ticksPerSecond: number,
): ThreadShare[] {
  const start = new Map(before.map((t) => [t.tid, t.ticks]));
  const used = after.map((t) => ({
    tid: t.tid,
    name: t.name,
    seconds: Math.max(0, t.ticks - (start.get(t.tid) ?? 0)) / ticksPerSecond,
  }));
  const total = used.reduce((sum, t) => sum + t.seconds, 0);
  return used.map((t) => ({ ...t, share: total > 0 ? t.seconds / total : 0 }))
    .sort((x, y) => y.seconds - x.seconds || x.tid - y.tid);
}

/** Timed readings of every thread of a process. */
export type ThreadSamples = [at: number, threads: ThreadTicks[]][];

/**
 * The threads over `[start, end]` (epoch ms): from the last sample at or
 * before `start` (else the first after it) to the last sample at or before
 * `end`; undefined with fewer than two distinct samples.
 */
export function windowShares(
  samples: ThreadSamples,
  start: number,
  end: number,
  ticksPerSecond: number,
): ThreadWindow | undefined {
  const inside = samples.filter(([at]) => at <= end);
  const first = inside.findLastIndex(([at]) => at <= start);
  const from = inside[Math.max(0, first)];
  const to = inside.at(-1);
  if (from === undefined || to === undefined || to[0] <= from[0]) return undefined;
  const threads = threadShares(from[1], to[1], ticksPerSecond);
  return {
    windowSeconds: (to[0] - from[0]) / 1000,
    cpuSeconds: threads.reduce((sum, t) => sum + t.seconds, 0),
    threads,
  };
}

/** Reads every thread of `pid` every `intervalMs` until stopped. */
export function sampleThreads(
  pid: number,
  intervalMs = 500,
): { samples: ThreadSamples; stop(): Promise<void> } {
  const samples: ThreadSamples = [];
  let pending: Promise<void> = Promise.resolve();
  const take = () => {
    pending = readThreads(pid).then((threads) => {
      if (threads.length) samples.push([Date.now(), threads]);
    });
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    samples,
    async stop() {
      clearInterval(timer);
      await pending;
    },
  };
}
