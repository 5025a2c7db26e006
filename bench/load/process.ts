import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { overProcessTree } from "./cpu.js";

export interface Started {
  readonly child: ChildProcess;
  readonly httpPort: number;
  readonly grpcPort: number;
  /** The file its stdout (the JSON log) goes to. */
  readonly log: string;
}

/**
 * Starts a server process with its stdout in a log file and waits for the JSON line containing
 * `banner` (`adjoint is serving` for the service), resolving to the ports that line announces.
 */
export async function startProcess(
  command: string,
  args: readonly string[],
  banner: string,
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<Started> {
  const log = join(tmpdir(), `adjoint-${banner.split(" ")[0]}-${process.pid}-${Date.now()}.log`);
  const fd = openSync(log, "w");
  const child = spawn(command, [...args], { stdio: ["ignore", fd, "inherit"], env: options.env ?? process.env, cwd: options.cwd });
  const deadline = Date.now() + (options.timeoutMs ?? 30_000);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    const line = readFileSync(log, "utf8")
      .split("\n")
      .find((l) => l.includes(banner));
    if (line) return { child, log, ...(JSON.parse(line) as { httpPort: number; grpcPort: number }) };
    if (child.exitCode !== null || child.signalCode !== null) break;
  }
  child.kill("SIGKILL");
  throw new Error(`${command} ${args.join(" ")} did not start (see ${log}):\n${readFileSync(log, "utf8").slice(-2000)}`);
}

/** The V8 flags of the start script (package.json "start", docker/recipe.sh). */
export const SERVICE_NODE_FLAGS = ["--initial-old-space-size=128"];

/**
 * Starts the service as `npm start` does (dist/src/main.js on its defaults, info logs included, with the
 * start script's malloc settings and V8 flags) on 127.0.0.1 and free ports, through a link named
 * `adjoint-<purpose>-service.js` so that it is easy to tell apart in ps and top. `env` adds settings.
 */
export function startService(root: string, env: NodeJS.ProcessEnv = {}, purpose = "load"): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), `adjoint-${purpose}-`));
  const entry = join(dir, `adjoint-${purpose}-service.js`);
  symlinkSync(join(root, "dist/src/main.js"), entry);
  return startProcess(process.execPath, [...SERVICE_NODE_FLAGS, entry], "adjoint is serving", {
    env: {
      ...process.env,
      MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? "2",
      MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? "131072",
      ADJOINT_HOST: "127.0.0.1",
      ADJOINT_HTTP_PORT: "0",
      ADJOINT_GRPC_PORT: "0",
      ...env,
    },
  });
}

/** Sends SIGTERM and resolves to the exit code once the process is gone (SIGKILL after `graceMs`). */
export function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    child.kill("SIGTERM");
  });
}

/**
 * Resident memory of a process and the processes under it (a clustered service is a primary and its
 * members), in bytes (Linux /proc; `ps` elsewhere, the process alone); undefined once it is gone.
 */
export function residentBytes(pid: number): number | undefined {
  return overProcessTree(pid, ownResidentBytes);
}

function ownResidentBytes(pid: number): number | undefined {
  try {
    const kb = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    if (kb) return Number(kb[1]) * 1024;
  } catch {
    // not Linux, or gone
  }
  try {
    return Number(execFileSync("ps", ["-o", "rss=", "-p", String(pid)], { encoding: "utf8" }).trim()) * 1024;
  } catch {
    return undefined;
  }
}
