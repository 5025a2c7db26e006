import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkScenario, DIFFERENTIATE } from "./clients.js";
import { hasTool, INSTALL_HINT } from "./drivers.js";
import { type Started, startProcess, startService, stopProcess } from "./process.js";
import { repoRoot, SCENARIOS, type Scenario } from "./scenarios.js";

/**
 * npm run bench:latency — W1's latency at a steady rate over both transports, with and without W3
 * training steps beside it (issue 10: W1's p99 ≤ 5 ms with W3 at 4/s in all). Every stream is an h2load
 * process (a C client, HTTP/1.1 with --h1, gRPC over HTTP/2) at a fixed rate, whose per-request log
 * gives the percentiles: the soak's JavaScript client shares the two cores with the service, and its
 * own pauses (collections, a megabyte answer checked) were counted as the service's. Three phases, one
 * after the other: the trivial fastify route and grpc-js method (trivial-server.ts) under W1 alone —
 * the floor this machine, its scheduler and these transports set — then the service under W1 alone,
 * then the service under W1 with W3 beside it (HTTP binary framing and gRPC raw bytes), in interleaved
 * rounds; the table gives each figure's median over the rounds and its range (a shared machine's
 * hiccups move a p99 by milliseconds). Answers are checked before and after (h2load does not read gRPC
 * trailers). Settings: LATENCY_SECONDS (20 per phase), LATENCY_ROUNDS (3), LATENCY_W1_RATE (per
 * transport, 200/s over 4 connections), LATENCY_W3_RATE (per transport, 2/s), LATENCY_KEEP_LOGS=1 (keep
 * h2load's per-request logs: start µs, status, µs taken; the folder is printed).
 */
const SECONDS = Number(process.env.LATENCY_SECONDS ?? 20);
const ROUNDS = Number(process.env.LATENCY_ROUNDS ?? 3);
const W1_RATE = Number(process.env.LATENCY_W1_RATE ?? 200);
const W3_RATE = Number(process.env.LATENCY_W3_RATE ?? 2);
const KEEP_LOGS = process.env.LATENCY_KEEP_LOGS === "1";
const CONNECTIONS = 4;
const WARMUP_SECONDS = 5;
const root = repoRoot();

interface StreamSpec {
  readonly name: string;
  readonly url: string;
  readonly http1: boolean;
  readonly headers: Record<string, string>;
  readonly bodyFile: string;
  readonly rate: number;
  readonly connections: number;
}

interface Percentiles {
  round: number;
  phase: string;
  stream: string;
  requests: number;
  failed: number;
  p50: number;
  p99: number;
  max: number;
}

function run(spec: StreamSpec, seconds: number, log?: string): Promise<string> {
  const perConnection = Math.max(1, Math.round(spec.rate / spec.connections));
  const args = [
    ...(spec.http1 ? ["--h1"] : []),
    ...["-c", String(spec.connections), "-m", "1", `--rps=${perConnection}`, "-D", String(seconds)],
    ...Object.entries(spec.headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`]),
    ...["-d", spec.bodyFile],
    ...(log ? [`--log-file=${log}`] : []),
    spec.url,
  ];
  return new Promise((resolve, reject) => {
    const child = spawn("h2load", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    child.once("error", reject);
    child.once("close", (code) => (code === 0 ? resolve(out) : reject(new Error(`h2load ${args.join(" ")} exited ${code}:\n${out}`))));
  });
}

/** p50, p99 and max of the 2xx requests of an h2load log (start µs, status, µs to the end of the response). */
function percentiles(round: number, phase: string, stream: string, log: string): Percentiles {
  const rows = readFileSync(log, "utf8")
    .trim()
    .split("\n")
    .map((line) => line.split("\t"));
  const ms = rows
    .filter((r) => r[1] === "200")
    .map((r) => Number(r[2]) / 1000)
    .sort((a, b) => a - b);
  const at = (q: number) => ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? Number.NaN;
  return {
    round,
    phase,
    stream,
    requests: ms.length,
    failed: rows.length - ms.length,
    p50: at(0.5),
    p99: at(0.99),
    max: ms[ms.length - 1] ?? Number.NaN,
  };
}

/** Runs the streams together, each logged, after a warm-up of all of them together. */
async function phase(name: string, dir: string, streams: StreamSpec[], round: number): Promise<Percentiles[]> {
  await Promise.all(streams.map((s) => run(s, WARMUP_SECONDS)));
  // A log file of its own per run: h2load appends to one that exists.
  const logs = streams.map((s) => join(dir, `${round}-${name}-${s.name}.log`.replace(/[^\w.-]+/g, "_")));
  await Promise.all(streams.map((s, i) => run(s, SECONDS, logs[i])));
  return streams.map((s, i) => percentiles(round, name, s.name, logs[i]));
}

function files(dir: string, s: Scenario): { http: string; grpc: string } {
  const http = join(dir, `${s.name}.body`);
  writeFileSync(http, s.http.body);
  const grpc = join(dir, `${s.name}.grpc`);
  const frame = Buffer.alloc(5 + s.grpc.length);
  frame.writeUInt32BE(s.grpc.length, 1);
  s.grpc.copy(frame, 5);
  writeFileSync(grpc, frame);
  return { http, grpc };
}

const TRIVIAL_PHASE = "trivial, W1 alone";

/**
 * W1's p99 beside W3 less the trivial servers' own p99 in the same round, per transport: what the
 * service adds to this machine's floor, which moves by milliseconds from one hour to the next.
 */
function overFloor(results: readonly Percentiles[], besidePhase: string): string[] {
  const f = (v: number) => `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(2)}`;
  const rounds = [...new Set(results.map((r) => r.round))];
  const streams = [...new Set(results.filter((r) => r.phase === TRIVIAL_PHASE).map((r) => r.stream))];
  return streams.map((stream) => {
    const p99 = (phase: string, round: number) => results.find((r) => r.phase === phase && r.round === round && r.stream === stream)?.p99;
    const diffs = rounds.map((round) => (p99(besidePhase, round) ?? Number.NaN) - (p99(TRIVIAL_PHASE, round) ?? Number.NaN));
    return `${stream}: ${diffs.map(f).join(", ")} ms`;
  });
}

const GRPC_HEADERS = { "content-type": "application/grpc", te: "trailers" };

async function main(): Promise<void> {
  if (!hasTool("h2load")) {
    process.stderr.write(`h2load not found: ${INSTALL_HINT}\n`);
    process.exit(1);
  }
  const dir = mkdtempSync(join(tmpdir(), "adjoint-latency-"));
  const w1 = SCENARIOS.W1();
  const w3 = SCENARIOS.W3();
  const w1Files = files(dir, w1);
  const w3Files = files(dir, w3);
  const base = (port: number) => `http://127.0.0.1:${port}`;
  const w1Streams = (httpPort: number, httpPath: string, grpcPort: number, grpcPath: string): StreamSpec[] => [
    {
      name: "W1 HTTP",
      url: `${base(httpPort)}${httpPath}`,
      http1: true,
      headers: w1.http.headers,
      bodyFile: w1Files.http,
      rate: W1_RATE,
      connections: CONNECTIONS,
    },
    {
      name: "W1 gRPC",
      url: `${base(grpcPort)}${grpcPath}`,
      http1: false,
      headers: GRPC_HEADERS,
      bodyFile: w1Files.grpc,
      rate: W1_RATE,
      connections: CONNECTIONS,
    },
  ];
  const results: Percentiles[] = [];
  const besidePhase = W3_RATE > 0 ? `adjoint, W1 with W3 at ${2 * W3_RATE}/s` : "adjoint, W1 again";
  let trivial: Started | undefined;
  let service: Started | undefined;
  try {
    trivial = await startProcess(process.execPath, [join(root, "dist/bench/load/trivial-server.js")], "trivial is serving");
    service = await startService(root);
    for (const s of [w1, w3]) {
      const bad = await checkScenario(s, service.httpPort, service.grpcPort);
      if (bad) throw new Error(`${s.name}: wrong answer before the run: ${bad}`);
    }
    const floor = w1Streams(trivial.httpPort, "/trivial", trivial.grpcPort, "/bench.Trivial/Echo");
    const streams = w1Streams(service.httpPort, "/v1/differentiate", service.grpcPort, DIFFERENTIATE);
    const w3Streams: StreamSpec[] =
      W3_RATE > 0
        ? [
            {
              name: "W3 HTTP",
              url: `${base(service.httpPort)}/v1/differentiate`,
              http1: true,
              headers: w3.http.headers,
              bodyFile: w3Files.http,
              rate: W3_RATE,
              connections: 1,
            },
            {
              name: "W3 gRPC",
              url: `${base(service.grpcPort)}${DIFFERENTIATE}`,
              http1: false,
              headers: GRPC_HEADERS,
              bodyFile: w3Files.grpc,
              rate: W3_RATE,
              connections: 1,
            },
          ]
        : [];
    for (let round = 1; round <= ROUNDS; round++) {
      const rows = [
        ...(await phase(TRIVIAL_PHASE, dir, floor, round)),
        ...(await phase("adjoint, W1 alone", dir, streams, round)),
        ...(await phase(besidePhase, dir, [...streams, ...w3Streams], round)),
      ];
      for (const r of rows)
        process.stdout.write(
          `round ${round}/${ROUNDS}  ${r.phase.padEnd(28)} ${r.stream.padEnd(8)} p50 ${r.p50.toFixed(2)}  p99 ${r.p99.toFixed(2)}  max ${r.max.toFixed(1)} ms\n`,
        );
      results.push(...rows);
    }
    for (const s of [w1, w3]) {
      const bad = await checkScenario(s, service.httpPort, service.grpcPort);
      if (bad) throw new Error(`${s.name}: wrong answer after the run: ${bad}`);
    }
  } finally {
    if (trivial) await stopProcess(trivial.child);
    if (service) await stopProcess(service.child);
    if (KEEP_LOGS) process.stdout.write(`h2load's logs kept in ${dir}\n`);
    else rmSync(dir, { recursive: true, force: true });
  }
  const f = (v: number) => v.toFixed(2);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const span = (xs: number[]) => `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
  const keys = [...new Set(results.map((r) => `${r.phase}\u0000${r.stream}`))];
  const lines = [
    "| phase | stream | requests | failed | p50 ms | p99 ms (range) | max ms |",
    "| ----- | ------ | -------- | ------ | ------ | -------------- | ------ |",
    ...keys.map((key) => {
      const rows = results.filter((r) => `${r.phase}\u0000${r.stream}` === key);
      const sum = (pick: (r: Percentiles) => number) => rows.reduce((a, r) => a + pick(r), 0);
      const { phase: name, stream } = rows[0];
      return `| ${name} | ${stream} | ${sum((r) => r.requests)} | ${sum((r) => r.failed)} | ${f(median(rows.map((r) => r.p50)))} | ${span(rows.map((r) => r.p99))} | ${f(Math.max(...rows.map((r) => r.max)))} |`;
    }),
  ];
  process.stdout.write(
    `\nh2load at fixed rates (W1 ${W1_RATE}/s per transport over ${CONNECTIONS} connections, W3 ${W3_RATE}/s per transport), ${ROUNDS} interleaved rounds of ${SECONDS} s per phase, each after ${WARMUP_SECONDS} s of warm-up; medians over rounds:\n\n${lines.join("\n")}\n\n`,
  );
  process.stdout.write(
    `W1's p99 ${W3_RATE > 0 ? "beside W3" : "again"} over the trivial servers' own in the same round, round by round: ${overFloor(results, besidePhase).join("; ")}\n` +
      "target (issue 10): W1's p99 ≤ 5 ms with W3 at 4/s beside it\n",
  );
}

await main();
