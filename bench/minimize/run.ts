import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { grpcServiceDefinition } from "../../src/grpc/definition.js";
import {
  AdjointService,
  DifferentiateRequestSchema,
  type DifferentiateResponse,
  type MinimizeProgress,
  MinimizeRequestSchema,
  type Tensor,
} from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { compileModel, type ModelDefinition } from "../../src/ir/model.js";
import { startAdjoint } from "../../src/main.js";
import { loadConfig } from "../../src/service/config.js";
import { generateW3 } from "../workloads/w3.js";
import { type M1Result, m1 } from "./m1.js";

/**
 * `npm run bench:minimize`: server-side minimisation against the loops it replaces (issue 11).
 * M1, Rosenbrock n = 100 by L-BFGS-B: one POST /v1/minimize, the Python gRPC client loop of
 * examples/python, scipy in-process with rosen_der (m1.ts: interleaved rounds, per-round ratios).
 * M2, W3 trained by 100 Adam steps: one Minimize call, 100 Differentiate calls with raw bytes and
 * Adam on the client, 100 in-process steps. Medians; the server runs in this process on loopback with
 * its default worker count. Flags: --only=m1 or --only=m2, --rounds=N (M1's rounds, default 21).
 */
const ROOT = process.cwd();
const STEPS = 100;
const [BETA1, BETA2, EPS, RATE] = [0.9, 0.999, 1e-8, 1e-3];

type Raw = { bytes: (a: Float64Array) => Uint8Array };
const raw: Raw["bytes"] = (a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

async function median(runs: number, f: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await f();
    times.push(performance.now() - t);
  }
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

function adamStep(x: Float64Array, g: ArrayLike<number>, m: Float64Array, v: Float64Array, t: number): void {
  const c1 = 1 - BETA1 ** t;
  const c2 = 1 - BETA2 ** t;
  for (let i = 0; i < x.length; i++) {
    m[i] = BETA1 * m[i] + (1 - BETA1) * g[i];
    v[i] = BETA2 * v[i] + (1 - BETA2) * g[i] * g[i];
    x[i] -= (RATE * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + EPS);
  }
}

function w3Parts() {
  const d = generateW3();
  const model = JSON.parse(readFileSync(join(ROOT, "examples/mlp.model.json"), "utf8")) as ModelDefinition;
  const params: [string, number[], Float64Array][] = [
    ["fc1.weight", [784, 256], d.W1],
    ["fc1.bias", [256], d.b1],
    ["fc2.weight", [256, 10], d.W2],
    ["fc2.bias", [10], d.b2],
  ];
  return { d, model, params, labels: Float64Array.from(d.labels) };
}

type Client = grpc.Client & Record<string, (...a: unknown[]) => unknown>;

function unary<T>(client: Client, method: string, request: unknown): Promise<T> {
  return new Promise((resolve, reject) =>
    (client[method] as (r: unknown, cb: (e: Error | null, v: T) => void) => void).call(client, request, (e, v) =>
      e ? reject(e) : resolve(v),
    ),
  );
}

async function m2(client: Client): Promise<Record<string, number>> {
  const { d, model, params, labels } = w3Parts();
  const tensor = (shape: number[], a: Float64Array) => ({ shape, raw: raw(a) });
  const data = { x: tensor([128, 784], d.X), y: tensor([128], labels) };
  const fn = { source: { case: "model" as const, value: model as never } };
  // One Minimize call; progress every STEPS iterations, so only the start and the end are recorded.
  const minimizeRequest = create(MinimizeRequestSchema, {
    function: fn,
    start: { tensors: { ...data, ...Object.fromEntries(params.map(([n, s, a]) => [n, tensor(s, a)])) } },
    method: "adam",
    options: { maxIterations: STEPS, gtol: 0, learningRate: RATE },
    progressEvery: STEPS,
  });
  const oneCall = () =>
    new Promise<number>((resolve, reject) => {
      const call = (client.minimize as (r: unknown) => grpc.ClientReadableStream<MinimizeProgress>).call(client, minimizeRequest);
      let value = Number.NaN;
      call.on("data", (m: MinimizeProgress) => {
        if (m.result) value = m.result.value;
      });
      call.on("error", reject);
      call.on("end", () => resolve(value));
    });
  await oneCall();
  const minimizeMs = await median(3, oneCall);

  // 100 Differentiate calls with raw bytes, Adam on the client.
  const clientLoop = async () => {
    const xs = params.map(([, , a]) => Float64Array.from(a));
    const ms = xs.map((x) => new Float64Array(x.length));
    const vs = xs.map((x) => new Float64Array(x.length));
    for (let t = 1; t <= STEPS; t++) {
      const point = { tensors: { ...data, ...Object.fromEntries(params.map(([n, s], k) => [n, tensor(s, xs[k])])) } };
      const request = create(DifferentiateRequestSchema, { function: fn, point });
      const answer = await unary<DifferentiateResponse>(client, "differentiate", request);
      params.forEach(([name], k) => {
        const g = answer.result?.gradient[name] as Tensor;
        adamStep(xs[k], new Float64Array(Uint8Array.from(g.raw).buffer), ms[k], vs[k], t);
      });
    }
  };
  await clientLoop();
  const loopMs = await median(3, clientLoop);

  // 100 in-process steps: the same compiled model, its gradient and Adam in this thread.
  const compiled = new CompiledFunction(compileModel(model, 128).graph);
  const inProcess = async () => {
    const xs = params.map(([, , a]) => Float64Array.from(a));
    const ms = xs.map((x) => new Float64Array(x.length));
    const vs = xs.map((x) => new Float64Array(x.length));
    const point: Record<string, { shape: number[]; data: Float64Array }> = {
      x: { shape: [128, 784], data: d.X },
      y: { shape: [128], data: labels },
    };
    params.forEach(([name, shape], k) => {
      point[name] = { shape, data: xs[k] };
    });
    const wrt = params.map(([name]) => name);
    for (let t = 1; t <= STEPS; t++) {
      const gradient = compiled.evaluate(point, { mode: "reverse", wrt }).gradient as Record<string, { data: ArrayLike<number> }>;
      params.forEach(([name], k) => {
        adamStep(xs[k], gradient[name].data, ms[k], vs[k], t);
      });
    }
  };
  await inProcess();
  const inProcessMs = await median(3, inProcess);
  return { minimizeMs, loopMs, inProcessMs };
}

function printM1(one: M1Result): void {
  const f = (x: number) => x.toFixed(2);
  const range = (s: M1Result["loopRatio"]) => `${f(s.median)}× (IQR ${f(s.q1)}–${f(s.q3)})`;
  console.log(`M1 Rosenbrock n=100, L-BFGS-B, ${one.rounds.length} interleaved rounds (ms, median):`);
  const row = (label: string, c: keyof M1Result["ms"], tail: string) =>
    console.log(
      `  ${label.padEnd(24)} ${f(one.ms[c]).padStart(8)}  (${one.evaluations[c]} evaluations, |x − 1| ≤ ${one.error[c].toExponential(1)})${tail}`,
    );
  row("POST /v1/minimize", "post", "");
  row("Python gRPC client loop", "loop", `  → ${range(one.loopRatio)} the POST (target ≥ 30×)`);
  row("scipy in-process", "scipy", `  → ${range(one.scipyRatio)} the POST (target > 1×)`);
}

async function main(): Promise<void> {
  const config = loadConfig([], process.env, { host: "127.0.0.1", httpPort: 0, grpcPort: 0, logLevel: "warn" });
  const app = await startAdjoint(config, pino({ level: "warn" }));
  const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(AdjointService), "AdjointService");
  const target = `127.0.0.1:${app.grpcPort}`;
  const client = new Client(target, grpc.credentials.createInsecure(), {
    "grpc.max_receive_message_length": 64 * 1024 * 1024,
    "grpc.max_send_message_length": 64 * 1024 * 1024,
  }) as unknown as Client;
  const flag = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const only = flag("only");
  const rounds = Number(flag("rounds") ?? 21);
  try {
    const one = only === "m2" ? undefined : await m1(`http://127.0.0.1:${app.httpPort}`, target, ROOT, { warmups: 3, rounds });
    const two = only === "m1" ? undefined : await m2(client);
    console.log(`workers: ${config.workers}`);
    if (one) printM1(one);
    const ratios = two && {
      m2VsClientLoop: two.loopMs / two.minimizeMs,
      m2VsInProcess: two.minimizeMs / two.inProcessMs,
    };
    if (two && ratios) {
      const f = (x: number) => x.toFixed(2);
      console.log(`M2 W3, ${STEPS} Adam steps (ms, median):`);
      console.log(`  one Minimize call        ${f(two.minimizeMs)}`);
      console.log(`  ${STEPS} Differentiate calls   ${f(two.loopMs)}  → ${f(ratios.m2VsClientLoop)}× slower`);
      console.log(`  ${STEPS} in-process steps      ${f(two.inProcessMs)}  → Minimize is ${f(ratios.m2VsInProcess)}× of it`);
    }
    mkdirSync(join(ROOT, "bench/results"), { recursive: true });
    const record = { date: new Date().toISOString(), workers: config.workers, m1: one, m2: two, ratios };
    writeFileSync(join(ROOT, "bench/results/minimize-latest.json"), `${JSON.stringify(record, null, 2)}\n`);
  } finally {
    client.close();
    await app.shutdown();
  }
}

await main();
