import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import autocannon from "autocannon";
import { DifferentiateRequestSchema, DifferentiateResponseSchema, ElementType } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { generateW3, W3_REFERENCE_LOSS } from "../workloads/w3.js";

/**
 * npm run bench:load — requests per second and p50/p99 latency of the service over HTTP (autocannon)
 * and gRPC (a grpc-js client loop), each measured in the same run as a trivial fastify route and a
 * trivial grpc-js method (the transport's own ceiling, bench/load/trivial-server.ts), for the worked
 * example (W1) and one W3 training step. Settings: LOAD_SECONDS (8), LOAD_CONNECTIONS (32 requests in
 * flight for W1), LOAD_W3_CONNECTIONS (4), LOAD_ROUNDS (2: alternating runs per side, the best counts,
 * which damps other load on a shared machine), LOAD_W3 (1; 0 skips W3), LOAD_WORKERS (service workers).
 */
const SECONDS = Number(process.env.LOAD_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.LOAD_CONNECTIONS ?? 32);
const WITH_W3 = process.env.LOAD_W3 !== "0";
/** Each pair is measured this many times, alternating trivial and service; the best run of each counts. */
const ROUNDS = Number(process.env.LOAD_ROUNDS ?? 2);
/** A W3 step takes milliseconds of compute: a few requests in flight keep every worker busy. */
const W3_CONNECTIONS = Number(process.env.LOAD_W3_CONNECTIONS ?? 4);
const root = fileURLToPath(new URL("../../..", import.meta.url));

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** Starts a server process (logs to a file), resolving to the ports it announced. */
async function startProcess(
  script: string,
  args: string[],
  banner: string,
): Promise<{ child: ChildProcess; httpPort: number; grpcPort: number }> {
  const log = join(tmpdir(), `adjoint-load-${banner.split(" ")[0]}-${process.pid}.log`);
  const fd = openSync(log, "w");
  const child = spawn(process.execPath, [script, ...args], { stdio: ["ignore", fd, "inherit"] });
  for (let i = 0; i < 600; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const line = readFileSync(log, "utf8")
      .split("\n")
      .find((l) => l.includes(banner));
    if (line) return { child, ...(JSON.parse(line) as { httpPort: number; grpcPort: number }) };
    if (child.exitCode !== null) break;
  }
  throw new Error(`${script} did not start (see ${log})`);
}

async function http(url: string, body: string | Buffer, headers: Record<string, string>, connections = CONNECTIONS): Promise<Figures> {
  await autocannon({ url, method: "POST", headers, body, connections, duration: 1 });
  const r = await autocannon({ url, method: "POST", headers, body, connections, duration: SECONDS });
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.non2xx + r.timeouts };
}

const identity = (b: Buffer) => b;

/** A grpc-js client loop: `concurrency` calls in flight on one channel, pre-encoded requests. */
async function grpcLoad(port: number, path: string, request: Buffer, concurrency = CONNECTIONS): Promise<Figures> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
  });
  const call = () =>
    new Promise<boolean>((resolve) => client.makeUnaryRequest(path, identity, identity, request, (err) => resolve(err === null)));
  const run = async (seconds: number) => {
    const latencies: number[] = [];
    let errors = 0;
    const end = performance.now() + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          if (!(await call())) errors++;
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

async function grpcOnce(port: number, request: Buffer) {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
  });
  const bytes = await new Promise<Buffer>((resolve, reject) =>
    client.makeUnaryRequest("/adjoint.v1.AdjointService/Differentiate", identity, identity, request, (err, v) =>
      err ? reject(err) : resolve(v as Buffer),
    ),
  );
  client.close();
  return fromBinary(DifferentiateResponseSchema, bytes);
}

/** W3 as a model (examples/mlp.model.json) at the workload's point: its bodies for both transports. */
function w3Requests() {
  const d = generateW3();
  const model = JSON.parse(readFileSync(join(root, "examples/mlp.model.json"), "utf8"));
  const tensors: [string, number[], Float64Array][] = [
    ["x", [128, 784], d.X],
    ["y", [128], Float64Array.from(d.labels)],
    ["fc1.weight", [784, 256], d.W1],
    ["fc1.bias", [256], d.b1],
    ["fc2.weight", [256, 10], d.W2],
    ["fc2.bias", [10], d.b2],
  ];
  let offset = 0;
  const point: Record<string, unknown> = {};
  for (const [name, shape, data] of tensors) {
    point[name] = { shape, dtype: "float64", binary: { offset, length: data.byteLength } };
    offset += data.byteLength;
  }
  const header = Buffer.from(JSON.stringify({ function: { model }, point }));
  const httpBody = Buffer.concat([header, ...tensors.map(([, , data]) => Buffer.from(data.buffer, data.byteOffset, data.byteLength))]);
  const grpcBody = Buffer.from(
    toBinary(
      DifferentiateRequestSchema,
      create(DifferentiateRequestSchema, {
        function: { source: { case: "model", value: model } },
        point: {
          tensors: Object.fromEntries(
            tensors.map(([name, shape, data]) => [
              name,
              { shape, dtype: ElementType.FLOAT64, raw: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) },
            ]),
          ),
        },
      }),
    ),
  );
  return { httpBody, headerLength: header.byteLength, grpcBody };
}

const worked = { function: { expression: "x1*exp(-0.5*(x1^2+x2^2))" }, point: { x1: 2, x2: 0.5 } };
const workedGrpc = Buffer.from(
  toBinary(
    DifferentiateRequestSchema,
    create(DifferentiateRequestSchema, {
      function: { source: { case: "expression", value: worked.function.expression } },
      point: { values: worked.point },
    }),
  ),
);

async function main(): Promise<void> {
  const workers = process.env.LOAD_WORKERS ? ["--workers", process.env.LOAD_WORKERS] : [];
  const service = await startProcess(
    join(root, "dist/src/main.js"),
    [
      "--host",
      "127.0.0.1",
      "--http-port",
      "0",
      "--grpc-port",
      "0",
      "--body-limit",
      String(64 * 1024 * 1024),
      "--grpc-max-message",
      String(64 * 1024 * 1024),
      ...workers,
    ],
    "adjoint is serving",
  );
  const trivial = await startProcess(join(root, "dist/bench/load/trivial-server.js"), [], "trivial is serving");
  const results: Record<string, { trivial: Figures; service: Figures; ratio: number } | { skipped: string }> = {};
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
  const compare = (name: string, t: Figures, s: Figures) => {
    results[name] = { trivial: t, service: s, ratio: s.rps / t.rps };
    process.stdout.write(
      `${name.padEnd(22)} trivial ${t.rps.toFixed(0).padStart(7)} req/s p50 ${t.p50.toFixed(2)} ms p99 ${t.p99.toFixed(2)} ms | service ${s.rps.toFixed(0).padStart(7)} req/s p50 ${s.p50.toFixed(2)} ms p99 ${s.p99.toFixed(2)} ms | ratio ${((100 * s.rps) / t.rps).toFixed(0)}%${s.errors + t.errors ? ` | errors ${t.errors}/${s.errors}` : ""}\n`,
    );
  };
  try {
    const json = { "content-type": "application/json" };
    const base = (p: number) => `http://127.0.0.1:${p}`;
    const check = (await (
      await fetch(`${base(service.httpPort)}/v1/differentiate`, { method: "POST", headers: json, body: JSON.stringify(worked) })
    ).json()) as {
      value: number;
    };
    if (Math.abs(check.value - 0.23886593653343924) > 1e-15) throw new Error(`wrong worked example: ${JSON.stringify(check)}`);
    const body = JSON.stringify(worked);
    compare(
      "W1 HTTP",
      await http(`${base(trivial.httpPort)}/trivial`, body, json),
      await http(`${base(service.httpPort)}/v1/differentiate`, body, json),
    );
    const g = await grpcOnce(service.grpcPort, workedGrpc);
    if (Math.abs((g.result?.outputs.f.values[0] ?? 0) - 0.23886593653343924) > 1e-15) throw new Error("wrong worked example over gRPC");
    await pair(
      "W1 gRPC",
      () => grpcLoad(trivial.grpcPort, "/bench.Trivial/Echo", workedGrpc),
      () => grpcLoad(service.grpcPort, "/adjoint.v1.AdjointService/Differentiate", workedGrpc),
    );
    if (WITH_W3) {
      const w3 = w3Requests();
      const headers = {
        "content-type": "application/vnd.adjoint+binary",
        "adjoint-header-length": String(w3.headerLength),
        accept: "application/vnd.adjoint+binary",
      };
      const res = await fetch(`${base(service.httpPort)}/v1/differentiate`, { method: "POST", headers, body: w3.httpBody });
      const bytes = Buffer.from(await res.arrayBuffer());
      const n = Number(res.headers.get("adjoint-header-length") ?? bytes.byteLength);
      const answer = JSON.parse(bytes.subarray(0, n).toString()) as { value?: number; detail?: string };
      if (res.status !== 200 || Math.abs((answer.value ?? 0) - W3_REFERENCE_LOSS) > 1e-9) {
        results.W3 = { skipped: `the service answered ${res.status}: ${answer.detail ?? JSON.stringify(answer).slice(0, 200)}` };
        process.stdout.write(`W3 skipped: ${(results.W3 as { skipped: string }).skipped}\n`);
      } else {
        process.stdout.write(`W3 loss ${answer.value} (reference ${W3_REFERENCE_LOSS})\n`);
        await pair(
          "W3 HTTP (binary)",
          () => http(`${base(trivial.httpPort)}/trivial`, w3.httpBody, headers, W3_CONNECTIONS),
          () => http(`${base(service.httpPort)}/v1/differentiate`, w3.httpBody, headers, W3_CONNECTIONS),
        );
        await pair(
          "W3 gRPC (raw bytes)",
          () => grpcLoad(trivial.grpcPort, "/bench.Trivial/Echo", w3.grpcBody, W3_CONNECTIONS),
          () => grpcLoad(service.grpcPort, "/adjoint.v1.AdjointService/Differentiate", w3.grpcBody, W3_CONNECTIONS),
        );
      }
    }
  } finally {
    service.child.kill("SIGTERM");
    trivial.child.kill("SIGTERM");
  }
  const dir = join(root, "bench/results");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `load-${new Date().toISOString().replace(/[:.]/g, "-")}.json`);
  writeFileSync(file, `${JSON.stringify({ seconds: SECONDS, rounds: ROUNDS, connections: CONNECTIONS, results }, null, 2)}\n`);
  process.stdout.write(`written ${file}\n`);
}

await main();
