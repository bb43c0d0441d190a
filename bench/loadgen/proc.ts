/**
 * Process resource readings from Linux `/proc`: resident memory
 * (`/proc/PID/status` VmRSS) and CPU time (`/proc/PID/stat` utime + stime),
 * plus a sampler that tracks the peak RSS of a process over a run. Readings
 * of a process that is gone (or a non-Linux host) are `undefined`, never
 * errors. Deno asks for --allow-all to read /proc directly, so without it
 * the files are read through `cat` (--allow-run); this process measures
 * itself with `process.cpuUsage()` and `Deno.memoryUsage()`.
 *
 * @module
 */
import process from "node:process";

/** One reading of a process. */
export interface ProcReading {
  rssBytes: number;
  cpuSeconds: number;
}

let clockTicks: number | undefined;

/** `getconf CLK_TCK` (100 when it cannot be asked). */
export async function clockTicksPerSecond(): Promise<number> {
  if (clockTicks !== undefined) return clockTicks;
  try {
    const { stdout } = await new Deno.Command("getconf", { args: ["CLK_TCK"] }).output();
    const ticks = Number(new TextDecoder().decode(stdout).trim());
    clockTicks = Number.isInteger(ticks) && ticks > 0 ? ticks : 100;
  } catch {
    clockTicks = 100;
  }
  return clockTicks;
}

/** Parses the VmRSS line of `/proc/PID/status` into bytes. */
export function parseStatusRss(status: string): number | undefined {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return match ? Number(match[1]) * 1024 : undefined;
}

/** utime + stime (fields 14 and 15) of `/proc/PID/stat`, in clock ticks. */
export function parseStatTicks(stat: string): number | undefined {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks : undefined;
}

let catProc = false;

/** `/proc/PID/stat` and `/proc/PID/status`; through `cat` when Deno wants --allow-all for /proc. */
async function readProcFiles(pid: number): Promise<[stat: string, status: string]> {
  const files = [`/proc/${pid}/stat`, `/proc/${pid}/status`];
  if (!catProc) {
    try {
      return [await Deno.readTextFile(files[0]), await Deno.readTextFile(files[1])];
    } catch (error) {
      if (!(error instanceof Deno.errors.NotCapable)) throw error;
      catProc = true;
    }
  }
  const output = await new Deno.Command("cat", { args: files, stderr: "null" }).output();
  if (!output.success) throw new Deno.errors.NotFound(`cannot read ${files.join(", ")}`);
  const text = new TextDecoder().decode(output.stdout);
  const lineEnd = text.indexOf("\n") + 1;
  return [text.slice(0, lineEnd), text.slice(lineEnd)];
}

/** Reads RSS and CPU seconds of `pid`; undefined if the process cannot be read. */
export async function readProc(pid: number): Promise<ProcReading | undefined> {
  try {
    const [[stat, status], ticks] = await Promise.all([readProcFiles(pid), clockTicksPerSecond()]);
    const rssBytes = parseStatusRss(status);
    const cpuTicks = parseStatTicks(stat);
    if (rssBytes === undefined || cpuTicks === undefined) return undefined;
    return { rssBytes, cpuSeconds: cpuTicks / ticks };
  } catch {
    return undefined;
  }
}

/** This process's RSS and CPU seconds, without /proc. */
export function readSelf(): Promise<ProcReading> {
  const { user, system } = process.cpuUsage();
  return Promise.resolve({ rssBytes: Deno.memoryUsage().rss, cpuSeconds: (user + system) / 1e6 });
}

/** Samples a process every `intervalMs`, keeping the peak RSS; `close()` stops it. */
export class ProcSampler {
  readonly pid: number;
  peakRssBytes = 0;
  last: ProcReading | undefined;
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #read: () => Promise<ProcReading | undefined>;
  #sampling: Promise<unknown> = Promise.resolve();

  constructor(pid: number, intervalMs = 250) {
    this.pid = pid;
    this.#read = pid === Deno.pid ? readSelf : () => readProc(pid);
    this.#timer = setInterval(() => void this.sample(), intervalMs);
  }

  /** Takes a reading now (also folded into the peak). */
  async sample(): Promise<ProcReading | undefined> {
    const reading = await (this.#sampling = this.#read());
    if (reading) {
      this.last = reading;
      this.peakRssBytes = Math.max(this.peakRssBytes, reading.rssBytes);
    }
    return reading;
  }

  /** Stops sampling; resolves once a reading under way has finished. */
  close(): Promise<unknown> {
    clearInterval(this.#timer);
    return this.#sampling.catch(() => {});
  }

  [Symbol.asyncDispose](): Promise<unknown> {
    return this.close();
  }
}

/** Readings of the server (when a pid is given) and of this process at named moments. */
export interface Mark {
  server: ProcReading | undefined;
  self: ProcReading | undefined;
}

/** The server's and the load generator's samplers plus readings at named moments of a run. */
export class RunMeters {
  readonly server: ProcSampler | undefined;
  readonly self: ProcSampler;
  readonly #marks = new Map<string, Mark>();

  constructor(serverPid: number | undefined) {
    this.server = serverPid === undefined ? undefined : new ProcSampler(serverPid);
    this.self = new ProcSampler(Deno.pid);
  }

  /** Takes readings now and stores them under `name`. */
  async mark(name: string): Promise<void> {
    const [server, self] = await Promise.all([this.server?.sample(), this.self.sample()]);
    this.#marks.set(name, { server, self });
  }

  /** RSS at a mark; null when not read. */
  rss(who: keyof Mark, name: string): number | null {
    return this.#marks.get(name)?.[who]?.rssBytes ?? null;
  }

  /** CPU seconds used between two marks; null when either is missing. */
  cpu(who: keyof Mark, from: string, to: string): number | null {
    const start = this.#marks.get(from)?.[who];
    const end = this.#marks.get(to)?.[who];
    return start && end ? end.cpuSeconds - start.cpuSeconds : null;
  }

  async close(): Promise<void> {
    await Promise.all([this.server?.close(), this.self.close()]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
