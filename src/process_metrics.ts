/**
 * The `process_*` series of /metrics, under Sluice's narrow permissions:
 * CPU time (`process.cpuUsage`), resident memory and heap
 * (`Deno.memoryUsage`) and start time need no permission. Deno lets no
 * sandboxed process read `/proc`, so descriptors are counted by two
 * read-only programs, `ls -U /proc/<pid>/fd` and `getconf OPEN_MAX` (the
 * soft limit, which the child inherits), when `--allow-run=ls,getconf` is
 * granted; otherwise those two series are left out and one warning names the
 * flag. Concurrent scrapes share one count. Never renders NaN, never reads a
 * file itself.
 *
 * @module
 */
import process from "node:process";
import { type Logger, silentLogger } from "./log.ts";

/** The programs that count descriptors, for `--allow-run=`. */
export const DESCRIPTOR_TOOLS: readonly string[] = ["ls", "getconf"];

/** Runs a program and resolves with its standard output; rejects when it fails. */
export type Runner = (program: string, args: string[]) => Promise<string>;

/** Open and maximum descriptors of this process. */
interface Descriptors {
  open: number;
  max: number;
}

const HELP = {
  process_cpu_seconds_total: "Total user and system CPU time spent in seconds.",
  process_resident_memory_bytes: "Resident memory size in bytes.",
  process_heap_bytes: "Process heap size in bytes.",
  process_start_time_seconds: "Start time of the process since unix epoch in seconds.",
  process_open_fds: "Number of open file descriptors.",
  process_max_fds: "Maximum number of open file descriptors.",
} as const;

/** Process statistics, read at exposition time. */
export class ProcessMetrics {
  readonly #log: Logger;
  readonly #run: Runner;
  readonly #allowed: () => boolean;
  #counting?: Promise<Descriptors | undefined>;
  #warned = false;

  constructor(
    options: { log?: Logger; run?: Runner; allowed?: () => boolean } = {},
  ) {
    this.#log = options.log ?? silentLogger;
    this.#run = options.run ?? runProgram;
    this.#allowed = options.allowed ?? toolsAllowed;
  }

  /**
   * Prometheus text of every process series; the descriptor ones only when
   * they could be counted. `heapBytes`: the heap of every worker together
   * (default: this thread's).
   */
  async render(options: { heapBytes?: number } = {}): Promise<string> {
    const cpu = process.cpuUsage();
    const memory = Deno.memoryUsage();
    const series: [keyof typeof HELP, "counter" | "gauge", number][] = [
      ["process_cpu_seconds_total", "counter", (cpu.user + cpu.system) / 1e6],
      ["process_resident_memory_bytes", "gauge", memory.rss],
      ["process_heap_bytes", "gauge", options.heapBytes ?? memory.heapTotal],
      ["process_start_time_seconds", "gauge", Math.round(performance.timeOrigin) / 1000],
    ];
    const descriptors = await this.#descriptors();
    if (descriptors !== undefined) {
      series.push(["process_open_fds", "gauge", descriptors.open]);
      series.push(["process_max_fds", "gauge", descriptors.max]);
    }
    return series.map(([name, type, value]) =>
      `# HELP ${name} ${HELP[name]}\n# TYPE ${name} ${type}\n${name} ${value}\n`
    ).join("");
  }

  /** One count at a time; scrapes that arrive meanwhile share it. */
  #descriptors(): Promise<Descriptors | undefined> {
    return this.#counting ??= this.#count().finally(() => this.#counting = undefined);
  }

  async #count(): Promise<Descriptors | undefined> {
    if (!this.#allowed()) {
      return this.#leftOut(`add --allow-run=${DESCRIPTOR_TOOLS.join(",")} to expose them`);
    }
    try {
      const [listing, limit] = await Promise.all([
        this.#run("ls", ["-U", `/proc/${Deno.pid}/fd`]),
        this.#run("getconf", ["OPEN_MAX"]),
      ]);
      const open = listing.split("\n").filter((line) => line.trim() !== "").length;
      const max = Number(limit.trim());
      if (open === 0 || !Number.isInteger(max) || max <= 0) {
        throw new Error(`unexpected output: ${JSON.stringify([listing.slice(0, 80), limit])}`);
      }
      return { open, max };
    } catch (err) {
      return this.#leftOut(`counting them failed: ${err instanceof Error ? err.message : err}`);
    }
  }

  #leftOut(why: string): undefined {
    if (!this.#warned) this.#log.warn(`process_open_fds and process_max_fds are left out: ${why}`);
    this.#warned = true;
    return undefined;
  }
}

function toolsAllowed(): boolean {
  return DESCRIPTOR_TOOLS.every((command) =>
    Deno.permissions.querySync({ name: "run", command }).state === "granted"
  );
}

async function runProgram(program: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    throw new Error(`${program} exited ${output.code}: ${decoder.decode(output.stderr).trim()}`);
  }
  return decoder.decode(output.stdout);
}
