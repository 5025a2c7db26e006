import { spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import autocannon from "autocannon";
import { CpuSampler, ownCpuSeconds, processCpuSeconds, processTreeCpuSeconds } from "./cpu.js";

/**
 * The load generators of `npm run bench:load`: wrk for HTTP/1.1 and h2load for gRPC (C clients, one
 * thread each), autocannon (JavaScript, in this process) only as the HTTP fallback when wrk is missing.
 * Each run samples the client's and the server's CPU time over the same window (bench/load/cpu.ts).
 */

export const INSTALL_HINT = "apt-get install wrk nghttp2-client   (Debian/Ubuntu; h2load is in nghttp2-client)";

/** One measured run of one load generator against one server. */
export interface Figures {
  rps: number;
  requests: number;
  /** Latency, ms: p50 and p99 from wrk and autocannon; h2load reports only mean and max. */
  p50?: number;
  p99?: number;
  mean?: number;
  max?: number;
  errors: number;
  /** CPU seconds per second of the load generator and of the server, over the measured window. */
  clientCpu?: number;
  serverCpu?: number;
  /** Server CPU microseconds per request (server CPU/s ÷ req/s): robust to other load on the machine. */
  serverUsPerRequest?: number;
}

/** What a run sends: files prepared once per scenario (prepareFiles), and how many requests in flight. */
export interface Load {
  readonly url: string;
  readonly serverPid: number;
  readonly seconds: number;
  readonly connections: number;
  /** h2load: streams in flight per connection. */
  readonly streams?: number;
}

export interface LoadFiles {
  readonly body: Buffer;
  readonly headers: Record<string, string>;
  /** The wrk Lua script that posts the body. */
  readonly lua: string;
  /** The request as one gRPC message (5-byte prefix: flag 0, big-endian length), for h2load -d. */
  readonly grpcFrame: string;
}

export function hasTool(name: string): boolean {
  return spawnSync(name, ["--version"], { stdio: "ignore" }).error === undefined;
}

/** Writes the body, a wrk Lua script posting it, and the framed gRPC message into `dir`. */
export function prepareFiles(dir: string, name: string, body: Buffer, headers: Record<string, string>, grpc: Buffer): LoadFiles {
  const bodyFile = join(dir, `${name}.body`);
  writeFileSync(bodyFile, body);
  const lua = join(dir, `${name}.lua`);
  const headerLines = Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`);
  writeFileSync(
    lua,
    [
      `local f = assert(io.open(${JSON.stringify(bodyFile)}, "rb"))`,
      `wrk.method = "POST"`,
      `wrk.body = f:read("*a")`,
      "f:close()",
      ...headerLines,
      "",
    ].join("\n"),
  );
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(grpc.byteLength, 1);
  const grpcFrame = join(dir, `${name}.grpc`);
  writeFileSync(grpcFrame, Buffer.concat([prefix, grpc]));
  return { body, headers, lua, grpcFrame };
}

/** Runs a load generator to its end with CPU sampling; resolves to its stdout and the CPU rates. */
async function sampled(command: string, args: string[], serverPid: number, skipSeconds: number) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  const pid = child.pid ?? -1;
  const sampler = new CpuSampler(
    () => processCpuSeconds(pid),
    () => processTreeCpuSeconds(serverPid),
  );
  let out = "";
  child.stdout.on("data", (c: Buffer) => (out += c.toString()));
  child.stderr.on("data", (c: Buffer) => (out += c.toString()));
  // The last sample before the client exits closes the window; the one after its exit is dropped.
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  sampler.stop();
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} exited ${code}:\n${out.slice(-2000)}`);
  return { out, cpu: sampler.rates(skipSeconds) };
}

const UNIT_MS: Record<string, number> = { us: 1e-3, ms: 1, s: 1000, m: 60_000 };

function ms(text: string | undefined): number | undefined {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text ?? "");
  return m ? Number(m[1]) * UNIT_MS[m[2]] : undefined;
}

function withCpu(f: Figures, cpu: { client: number; server: number } | undefined): Figures {
  if (!cpu) return f;
  return { ...f, clientCpu: cpu.client, serverCpu: cpu.server, serverUsPerRequest: f.rps > 0 ? (cpu.server / f.rps) * 1e6 : undefined };
}

/** wrk, one thread, `connections` keep-alive connections, latency percentiles. */
export async function wrk(load: Load, files: LoadFiles, threads = 1): Promise<Figures> {
  const args = ["-t", String(threads), "-c", String(load.connections), "-d", `${load.seconds}s`, "--timeout", "30s", "--latency"];
  const { out, cpu } = await sampled("wrk", [...args, "-s", files.lua, load.url], load.serverPid, 0);
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? Number.NaN);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors =
    (socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1]) || 0);
  const f: Figures = {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    p50: ms(/^\s+50%\s+(\S+)/m.exec(out)?.[1]),
    p99: ms(/^\s+99%\s+(\S+)/m.exec(out)?.[1]),
    errors,
  };
  return withCpu(f, cpu);
}

/**
 * h2load (HTTP/2 cleartext), `connections` × `streams` requests in flight, posting the framed gRPC
 * message with gRPC's headers; a 1 s warm-up precedes the measured `seconds`. h2load does not read
 * trailers, so a gRPC error status would count as a success: the answers are checked before and after.
 */
export async function h2load(load: Load, files: LoadFiles): Promise<Figures> {
  const args = ["-c", String(load.connections), "-m", String(load.streams ?? 1), "-D", String(load.seconds), "--warm-up-time=1"];
  const headers = ["-H", "content-type: application/grpc", "-H", "te: trailers"];
  const { out, cpu } = await sampled("h2load", [...args, ...headers, "-d", files.grpcFrame, load.url], load.serverPid, 1.2);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const time = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
  const f: Figures = {
    rps: Number(/finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(out)?.[1] ?? Number.NaN),
    requests: Number(req?.[4] ?? 0),
    mean: ms(time?.[3]),
    max: ms(time?.[2]),
    errors: Number(req?.[5] ?? 0) + Number(req?.[6] ?? 0) + Number(req?.[7] ?? 0) + Number(codes?.[3] ?? 0) + Number(codes?.[4] ?? 0),
  };
  return withCpu(f, cpu);
}

/** The fallback when wrk is missing: autocannon in this process, its CPU share being this process's. */
export async function autocannonRun(load: Load, files: LoadFiles): Promise<Figures> {
  const options = { url: load.url, method: "POST", headers: files.headers, body: files.body, connections: load.connections };
  const sampler = new CpuSampler(ownCpuSeconds, () => processTreeCpuSeconds(load.serverPid));
  const r = await autocannon({ ...options, duration: load.seconds });
  sampler.stop();
  const f: Figures = {
    rps: r.requests.average,
    requests: r.requests.total,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.non2xx + r.timeouts,
  };
  return withCpu(f, sampler.rates(0));
}
