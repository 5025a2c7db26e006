import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import autocannon from "autocannon";
import { checkScenario, DIFFERENTIATE, grpcCall, grpcClient } from "./clients.js";
import { type Started, startProcess, stopProcess } from "./process.js";
import { repoRoot, SCENARIOS } from "./scenarios.js";
import { soak } from "./soak.js";

/**
 * npm run bench:load — requests per second and p50/p99 latency of the service over HTTP (autocannon)
 * and gRPC (a grpc-js client loop), each measured in the same run as a trivial fastify route and a
 * trivial grpc-js method (the transport's own ceiling, bench/load/trivial-server.ts), for the three
 * scenarios of bench/load/scenarios.ts: the worked example (W1), the Rosenbrock gradient at n = 1,000
 * (W2) and one W3 training step. Settings: LOAD_SECONDS (8), LOAD_CONNECTIONS (32 requests in flight
 * for W1 and W2), LOAD_W3_CONNECTIONS (4), LOAD_ROUNDS (2: alternating runs per side, the best counts,
 * which damps other load on a shared machine), LOAD_W3 (1; 0 skips W3), LOAD_WORKERS (service workers).
 *
 * npm run bench:load -- --soak=300 — the soak instead (bench/load/soak.ts): W1 and W3 mixed at a steady
 * rate for that many seconds, with errors and the service's resident memory over time.
 */
const SECONDS = Number(process.env.LOAD_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.LOAD_CONNECTIONS ?? 32);
const WITH_W3 = process.env.LOAD_W3 !== "0";
/** Each pair is measured this many times, alternating trivial and service; the best run of each counts. */
const ROUNDS = Number(process.env.LOAD_ROUNDS ?? 2);
/** A W3 step takes milliseconds of compute: a few requests in flight keep every worker busy. */
const W3_CONNECTIONS = Number(process.env.LOAD_W3_CONNECTIONS ?? 4);
const root = repoRoot();

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function http(url: string, body: Buffer, headers: Record<string, string>, connections: number): Promise<Figures> {
  await autocannon({ url, method: "POST", headers, body, connections, duration: 1 });
  const r = await autocannon({ url, method: "POST", headers, body, connections, duration: SECONDS });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx + r.timeouts };
}

/** A grpc-js client loop: `concurrency` calls in flight on one channel, pre-encoded requests. */
async function grpcLoad(port: number, path: string, request: Buffer, concurrency: number): Promise<Figures> {
  const client = grpcClient(port);
  const run = async (seconds: number) => {
    const latencies: number[] = [];
    let errors = 0;
    const end = performance.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          await grpcCall(client, path, request).catch(() => errors++);
          latencies.push(performance.now() - t);
        }
      }),
    );
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
    return { rps: latencies.length / seconds, p50: at(0.5), p99: at(0.99), errors };
  };
  await run(1);
  const figures = await run(SECONDS);
  client.close();
  return figures;
}

/**
 * Starts the service (dist/src/main.js) through a link named adjoint-load-service.js, with its settings
 * in the environment: easy to tell apart in ps and top from other adjoint processes on the machine.
 */
async function startService(): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), "adjoint-load-"));
  const entry = join(dir, "adjoint-load-service.js");
  symlinkSync(join(root, "dist/src/main.js"), entry);
  const big = String(64 * 1024 * 1024);
  const env = {
    ...process.env,
    ADJOINT_HOST: "127.0.0.1",
    ADJOINT_HTTP_PORT: "0",
    ADJOINT_GRPC_PORT: "0",
    ADJOINT_BODY_LIMIT: big,
    ADJOINT_GRPC_MAX_MESSAGE: big,
    ...(process.env.LOAD_WORKERS ? { ADJOINT_WORKERS: process.env.LOAD_WORKERS } : {}),
  };
  return startProcess(process.execPath, [entry], "adjoint is serving", { env });
}

async function throughput(service: { httpPort: number; grpcPort: number }): Promise<Record<string, unknown>> {
  const trivial = await startProcess(process.execPath, [join(root, "dist/bench/load/trivial-server.js")], "trivial is serving");
  const results: Record<string, { trivial: Figures; service: Figures; ratio: number } | { skipped: string }> = {};
  const compare = (name: string, t: Figures, s: Figures) => {
    results[name] = { trivial: t, service: s, ratio: s.rps / t.rps };
    process.stdout.write(
      `${name.padEnd(22)} trivial ${t.rps.toFixed(0).padStart(7)} req/s p50 ${t.p50.toFixed(2)} ms p99 ${t.p99.toFixed(2)} ms | service ${s.rps.toFixed(0).padStart(7)} req/s p50 ${s.p50.toFixed(2)} ms p99 ${s.p99.toFixed(2)} ms | ratio ${((100 * s.rps) / t.rps).toFixed(0)}%${s.errors + t.errors ? ` | errors ${t.errors}/${s.errors}` : ""}\n`,
    );
  };
  /** Alternates the two measurements ROUNDS times and keeps the best of each. */
  const pair = async (name: string, trivialRun: () => Promise<Figures>, serviceRun: () => Promise<Figures>) => {
    const best = (a: Figures | undefined, b: Figures) => (a === undefined || b.rps > a.rps ? b : a);
    let t: Figures | undefined;
    let v: Figures | undefined;
    for (let r = 0; r < ROUNDS; r++) {
      t = best(t, await trivialRun());
      v = best(v, await serviceRun());
    }
    compare(name, t as Figures, v as Figures);
  };
  const base = (p: number) => `http://127.0.0.1:${p}`;
  try {
    for (const name of ["W1", "W2", "W3"] as const) {
      if (name === "W3" && !WITH_W3) continue;
      const s = SCENARIOS[name]();
      const bad = await checkScenario(s, service.httpPort, service.grpcPort);
      if (bad) {
        results[name] = { skipped: `wrong answer: ${bad}` };
        process.stdout.write(`${name} skipped: ${bad}\n`);
        continue;
      }
      const connections = name === "W3" ? W3_CONNECTIONS : CONNECTIONS;
      const form = name === "W3" ? " (binary)" : "";
      if (name === "W1") {
        // One run per side: W1 over HTTP is the case the transports' ceiling matters most for, and
        // its figures are steady enough.
        compare(
          "W1 HTTP",
          await http(`${base(trivial.httpPort)}/trivial`, s.http.body, s.http.headers, connections),
          await http(`${base(service.httpPort)}/v1/differentiate`, s.http.body, s.http.headers, connections),
        );
      } else {
        await pair(
          `${name} HTTP${form}`,
          () => http(`${base(trivial.httpPort)}/trivial`, s.http.body, s.http.headers, connections),
          () => http(`${base(service.httpPort)}/v1/differentiate`, s.http.body, s.http.headers, connections),
        );
      }
      await pair(
        `${name} gRPC${name === "W1" ? "" : " (raw bytes)"}`,
        () => grpcLoad(trivial.grpcPort, "/bench.Trivial/Echo", s.grpc, connections),
        () => grpcLoad(service.grpcPort, DIFFERENTIATE, s.grpc, connections),
      );
    }
  } finally {
    await stopProcess(trivial.child);
  }
  return { seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS, w3Connections: W3_CONNECTIONS, results };
}

async function main(): Promise<void> {
  const soakArg = process.argv.slice(2).find((a) => a.startsWith("--soak"));
  const soakSeconds = soakArg === undefined ? undefined : Number(soakArg.split("=")[1] ?? 300);
  if (soakSeconds !== undefined && !(soakSeconds > 0)) throw new Error(`--soak=SECONDS: got ${soakArg}`);
  const service = await startService();
  let report: Record<string, unknown>;
  let ok = true;
  try {
    if (soakSeconds !== undefined) {
      const r = await soak(service, soakSeconds);
      ok = r.ok;
      report = { soak: r };
    } else {
      report = await throughput(service);
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
