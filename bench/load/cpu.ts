import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/**
 * CPU time of processes while a load generator runs, read from /proc/<pid>/stat (utime + stime, all
 * threads of the process): the load generator's and the server's, sampled at the same instants so that
 * both rates cover the same window. A client near 1 CPU-second per second is saturated (wrk and h2load
 * run one thread here): its ceiling, not the server's, then sets the figure.
 */

let ticks: number | undefined;
function clockTicks(): number {
  if (ticks === undefined) {
    try {
      ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    } catch {
      ticks = 100;
    }
  }
  return ticks;
}

/** CPU seconds (user + system) a process has used so far; undefined when it is gone or not on Linux. */
export function processCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(rest[11]) + Number(rest[12])) / clockTicks();
  } catch {
    return undefined;
  }
}

/** The processes a process started, from /proc/<pid>/task/<tid>/children (every thread's). */
function childrenOf(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((tid) =>
      readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

/**
 * CPU seconds a process and every process under it have used so far: a clustered service is a primary
 * and its members. A member that exited takes its seconds with it; the benchmarks' members do not exit.
 */
export function processTreeCpuSeconds(pid: number): number | undefined {
  return overProcessTree(pid, processCpuSeconds);
}

/** `measure` of a process plus that of every process under it; undefined when the process itself is gone. */
export function overProcessTree(pid: number, measure: (pid: number) => number | undefined): number | undefined {
  const own = measure(pid);
  if (own === undefined) return undefined;
  let total = own;
  for (const child of childrenOf(pid)) total += overProcessTree(child, measure) ?? 0;
  return total;
}

/** CPU seconds this process (the Node client, as with autocannon) has used so far. */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

interface Sample {
  readonly t: number;
  readonly client: number;
  readonly server: number;
}

export interface CpuRates {
  /** CPU seconds per second of the load generator over the window. */
  readonly client: number;
  /** CPU seconds per second of the server process (every thread) over the window. */
  readonly server: number;
  /** The window's length, seconds. */
  readonly seconds: number;
}

/** Samples two CPU counters every `everyMs` until stopped. */
export class CpuSampler {
  private readonly samples: Sample[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly start = performance.now();

  constructor(
    private readonly client: () => number | undefined,
    private readonly server: () => number | undefined,
    everyMs = 100,
  ) {
    this.take();
    this.timer = setInterval(() => this.take(), everyMs);
  }

  private take(): void {
    const client = this.client();
    const server = this.server();
    if (client !== undefined && server !== undefined) this.samples.push({ t: performance.now(), client, server });
  }

  /** Stops sampling (taking one last sample). */
  stop(): void {
    this.take();
    clearInterval(this.timer);
  }

  /** Rates between the first sample at least `skipSeconds` after the start and the last sample. */
  rates(skipSeconds = 0): CpuRates | undefined {
    const from = this.samples.find((s) => s.t - this.start >= skipSeconds * 1000);
    const to = this.samples[this.samples.length - 1];
    if (!from || !to || to.t - from.t < 200) return undefined;
    const seconds = (to.t - from.t) / 1000;
    return { client: (to.client - from.client) / seconds, server: (to.server - from.server) / seconds, seconds };
  }
}
