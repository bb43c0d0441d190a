/**
 * The machine a scenario run's figures come from (bench/scenarios.ts): CPU
 * model and cores, memory, kernel, Deno, the Sluice commit and whether it had
 * uncommitted changes, and the load average at the start.
 *
 * @module
 */
import { ROOT } from "./procs.ts";
import type { MachineInfo } from "./report.ts";

async function text(program: string, args: string[]): Promise<string> {
  const output = await new Deno.Command(program, {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  })
    .output().catch(() => undefined);
  return output?.success ? new TextDecoder().decode(output.stdout).trim() : "";
}

/** Reads /proc and git; a figure that cannot be read is "unknown" (or 0). */
export async function machine(): Promise<MachineInfo> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const meminfo = await Deno.readTextFile("/proc/meminfo").catch(() => "");
  const commit = await text("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = (await text("git", ["status", "--porcelain", "--untracked-files=no"])) !== "";
  return {
    cpuModel: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown",
    cores: cpuinfo.match(/^processor\s*:/gm)?.length ?? navigator.hardwareConcurrency,
    memoryBytes: Number(/^MemTotal:\s+(\d+) kB/m.exec(meminfo)?.[1] ?? 0) * 1024,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    date: new Date().toISOString(),
    commit: commit ? `${commit}${dirty ? " + uncommitted changes" : ""}` : "unknown",
    loadAverage: (await Deno.readTextFile("/proc/loadavg").catch(() => "")).split(" ")
      .slice(0, 3).join(" "),
  };
}
