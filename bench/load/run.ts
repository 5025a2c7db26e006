import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkScenario, DIFFERENTIATE } from "./clients.js";
import { autocannonRun, type Figures, h2load, hasTool, INSTALL_HINT, type LoadFiles, prepareFiles, wrk } from "./drivers.js";
import { type Started, startProcess, startService, stopProcess } from "./process.js";
import { type Comparison, printTable, type Round, roundLine, summarise } from "./report.js";
import { repoRoot, SCENARIOS } from "./scenarios.js";
import { soak } from "./soak.js";

/**
 * npm run bench:load — requests per second of the service over HTTP (wrk) and gRPC (h2load), each
 * measured in the same run as a trivial fastify route and a trivial grpc-js method (the transport's own
 * ceiling, bench/load/trivial-server.ts), in interleaved rounds (trivial, service, trivial, service, …),
 * for the scenarios of bench/load/scenarios.ts: the worked example (W1), the Rosenbrock gradient at
 * n = 1,000 (W2) and one W3 training step. Each round reports the ratio service ÷ trivial, the
 * client's and the server's CPU seconds per second and the server's CPU µs per request; the summary
 * gives the median over rounds. Options: --only=w1,w2. Settings: LOAD_SECONDS (5 per run),
 * LOAD_ROUNDS (5; LOAD_W3_ROUNDS 3), LOAD_CONNECTIONS (wrk connections for W1 and W2, 32),
 * LOAD_GRPC_CONNECTIONS × LOAD_GRPC_STREAMS (h2load, 4 × 16), LOAD_W3_IN_FLIGHT (4), LOAD_WRK_THREADS
 * (1), LOAD_W3=0 (skip W3), LOAD_WORKERS (the service's workers).
 *
 * Without wrk the HTTP side falls back to autocannon (in this process; its CPU share is reported),
 * without h2load gRPC is skipped; both come with `apt-get install wrk nghttp2-client`.
 *
 * npm run bench:load -- --soak=300 — the soak instead (bench/load/soak.ts): W1 and W3 mixed at a steady
 * rate for that many seconds, with errors and the service's resident memory over time.
 */
const env = process.env;
const SECONDS = Number(env.LOAD_SECONDS ?? 5);
const ROUNDS = Number(env.LOAD_ROUNDS ?? 5);
const W3_ROUNDS = Number(env.LOAD_W3_ROUNDS ?? 3);
const CONNECTIONS = Number(env.LOAD_CONNECTIONS ?? 32);
const GRPC_CONNECTIONS = Number(env.LOAD_GRPC_CONNECTIONS ?? 4);
const GRPC_STREAMS = Number(env.LOAD_GRPC_STREAMS ?? 16);
const W3_IN_FLIGHT = Number(env.LOAD_W3_IN_FLIGHT ?? 4);
const WRK_THREADS = Number(env.LOAD_WRK_THREADS ?? 1);
const root = repoRoot();

type Runner = (seconds: number) => Promise<Figures>;

/** A warm-up run of each side, then `rounds` interleaved rounds (trivial, then service). */
async function compare(label: string, client: string, trivial: Runner, service: Runner, rounds: number): Promise<Comparison> {
  await trivial(1);
  await service(1);
  const list: Round[] = [];
  for (let r = 0; r < rounds; r++) {
    const round = { trivial: await trivial(SECONDS), service: await service(SECONDS) };
    list.push(round);
    process.stdout.write(`${roundLine(label, r, rounds, round)}\n`);
  }
  const c = summarise(label, client, list);
  process.stdout.write(
    `${label}: adjoint ÷ trivial, median of ${rounds} rounds ${(100 * c.ratio).toFixed(1)}% (${(100 * c.ratioMin).toFixed(1)}–${(100 * c.ratioMax).toFixed(1)}%)\n\n`,
  );
  return c;
}

interface Servers {
  readonly trivial: Started;
  readonly service: Started;
}

/** The HTTP and gRPC comparisons of one scenario; its answers are checked before and after. */
async function scenario(name: "W1" | "W2" | "W3", servers: Servers, dir: string, out: Comparison[]): Promise<void> {
  const s = SCENARIOS[name]();
  const { trivial, service } = servers;
  const bad = await checkScenario(s, service.httpPort, service.grpcPort);
  if (bad) {
    process.stdout.write(`${name} skipped: wrong answer before loading: ${bad}\n`);
    return;
  }
  const files: LoadFiles = prepareFiles(dir, name, s.http.body, s.http.headers, s.grpc);
  const w3 = name === "W3";
  const rounds = w3 ? W3_ROUNDS : ROUNDS;
  const base = (port: number) => `http://127.0.0.1:${port}`;
  const tPid = trivial.child.pid ?? -1;
  const sPid = service.child.pid ?? -1;
  const connections = w3 ? W3_IN_FLIGHT : CONNECTIONS;
  const form = w3 ? " (binary)" : name === "W2" ? " (JSON)" : "";
  if (hasTool("wrk")) {
    const run = (url: string, pid: number) => (seconds: number) => wrk({ url, serverPid: pid, seconds, connections }, files, WRK_THREADS);
    out.push(
      await compare(
        `${name} HTTP${form}`,
        `wrk -t${WRK_THREADS} -c${connections}`,
        run(`${base(trivial.httpPort)}/trivial`, tPid),
        run(`${base(service.httpPort)}/v1/differentiate`, sPid),
        rounds,
      ),
    );
  } else {
    process.stdout.write(`wrk not found (${INSTALL_HINT}): HTTP falls back to autocannon, a JavaScript client in this process\n`);
    const run = (url: string, pid: number) => (seconds: number) => autocannonRun({ url, serverPid: pid, seconds, connections }, files);
    out.push(
      await compare(
        `${name} HTTP${form}`,
        `autocannon -c${connections}`,
        run(`${base(trivial.httpPort)}/trivial`, tPid),
        run(`${base(service.httpPort)}/v1/differentiate`, sPid),
        rounds,
      ),
    );
  }
  if (hasTool("h2load")) {
    const c = w3 ? 1 : GRPC_CONNECTIONS;
    const m = w3 ? W3_IN_FLIGHT : GRPC_STREAMS;
    const run = (url: string, pid: number) => (seconds: number) =>
      h2load({ url, serverPid: pid, seconds, connections: c, streams: m }, files);
    out.push(
      await compare(
        `${name} gRPC${name === "W1" ? "" : " (raw bytes)"}`,
        `h2load -c${c} -m${m}`,
        run(`${base(trivial.grpcPort)}/bench.Trivial/Echo`, tPid),
        run(`${base(service.grpcPort)}${DIFFERENTIATE}`, sPid),
        rounds,
      ),
    );
  } else {
    process.stdout.write(`h2load not found (${INSTALL_HINT}): gRPC skipped\n`);
  }
  const after = await checkScenario(s, service.httpPort, service.grpcPort);
  if (after) throw new Error(`${name}: wrong answer after loading: ${after}`);
}

async function throughput(service: Started, only: readonly string[]): Promise<Record<string, unknown>> {
  const trivial = await startProcess(process.execPath, [join(root, "dist/bench/load/trivial-server.js")], "trivial is serving");
  const dir = mkdtempSync(join(tmpdir(), "adjoint-load-bodies-"));
  const results: Comparison[] = [];
  try {
    for (const name of ["W1", "W2", "W3"] as const) {
      if (!only.includes(name.toLowerCase()) || (name === "W3" && env.LOAD_W3 === "0")) continue;
      await scenario(name, { trivial, service }, dir, results);
    }
  } finally {
    await stopProcess(trivial.child);
    rmSync(dir, { recursive: true, force: true });
  }
  printTable(results, SECONDS);
  return {
    seconds: SECONDS,
    rounds: ROUNDS,
    w3Rounds: W3_ROUNDS,
    settings: { connections: CONNECTIONS, grpcConnections: GRPC_CONNECTIONS, grpcStreams: GRPC_STREAMS, w3InFlight: W3_IN_FLIGHT },
    results,
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const soakArg = args.find((a) => a.startsWith("--soak"));
  const soakSeconds = soakArg === undefined ? undefined : Number(soakArg.split("=")[1] ?? 300);
  if (soakSeconds !== undefined && !(soakSeconds > 0)) throw new Error(`--soak=SECONDS: got ${soakArg}`);
  const only = (args.find((a) => a.startsWith("--only="))?.slice(7) ?? "w1,w2,w3").toLowerCase().split(",");
  const service = await startService(root, env.LOAD_WORKERS ? { ADJOINT_WORKERS: env.LOAD_WORKERS } : {});
  let report: Record<string, unknown>;
  let ok = true;
  try {
    if (soakSeconds !== undefined) {
      const r = await soak(service, soakSeconds);
      ok = r.ok;
      report = { soak: r };
    } else {
      report = await throughput(service, only);
    }
  } finally {
    await stopProcess(service.child);
  }
  const dir = join(root, "bench/results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${soakSeconds !== undefined ? "soak" : "load"}-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(`written ${file}\n`);
  if (!ok) process.exitCode = 1;
}

await main();
