/**
 * Batch throughput: the worked example at 10,000 points, sent as 10,000 separate requests and as one
 * request (rows and columns), over HTTP and gRPC, against a service started as a child process.
 * Reports points per second for each and the ratio batch ÷ separate (target ≥ 20×).
 *
 *   npm run bench:batch                 (about a minute)
 *   npm run bench:batch -- --points=2000 --concurrency=16
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:net";
import { parseArgs } from "node:util";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { grpcServiceDefinition } from "../src/grpc/definition.js";
import {
  AdjointService,
  type DifferentiateRequest,
  DifferentiateRequestSchema,
  type DifferentiateResponse,
} from "../src/grpc/gen/adjoint/v1/adjoint_pb.js";

const { values: args } = parseArgs({
  options: { points: { type: "string", default: "10000" }, concurrency: { type: "string", default: "32" } },
});
const POINTS = Number(args.points);
const CONCURRENCY = Number(args.concurrency);
const EXPRESSION = "x1*exp(-0.5*(x1^2+x2^2))";
const point = (i: number) => ({ x1: 2 + (i % 1000) * 1e-4, x2: 0.5 - (i % 777) * 1e-4 });
const expected = (i: number) => {
  const { x1, x2 } = point(i);
  return x1 * Math.exp(-0.5 * (x1 * x1 + x2 * x2));
};

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as { port: number }).port;
  server.close();
  return port;
}

async function startService(): Promise<{ http: string; grpc: string; stop: () => void }> {
  const [httpPort, grpcPort] = [await freePort(), await freePort()];
  const child = spawn(process.execPath, ["dist/src/main.js"], {
    env: {
      ...process.env,
      ADJOINT_HTTP_PORT: String(httpPort),
      ADJOINT_GRPC_PORT: String(grpcPort),
      ADJOINT_LOG_LEVEL: "warn",
      ADJOINT_MAX_POINTS: "100000",
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const base = `http://127.0.0.1:${httpPort}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${base}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { http: base, grpc: `127.0.0.1:${grpcPort}`, stop: () => child.kill("SIGTERM") };
}

/** Runs `count` jobs with at most `concurrency` in flight; returns the elapsed seconds. */
async function pooled(count: number, concurrency: number, job: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await job(next++);
    }),
  );
  return (performance.now() - started) / 1000;
}

function check(value: number, i: number): void {
  if (Math.abs(value - expected(i)) > 1e-12) throw new Error(`point ${i}: got ${value}, expected ${expected(i)}`);
}

async function http(base: string): Promise<Record<string, number>> {
  const post = async (body: unknown) => {
    const r = await fetch(`${base}/v1/differentiate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(`HTTP ${r.status}: ${await r.text()}`);
    return (await r.json()) as Record<string, unknown>;
  };
  const fn = { expression: EXPRESSION };
  await post({ function: fn, point: point(0) });
  const separate = await pooled(POINTS, CONCURRENCY, async (i) => {
    const r = await post({ function: fn, point: point(i) });
    check(r.value as number, i);
  });
  const rowsStart = performance.now();
  const rows = await post({ function: fn, points: Array.from({ length: POINTS }, (_, i) => point(i)) });
  const rowsTime = (performance.now() - rowsStart) / 1000;
  (rows.results as { value: number }[]).forEach((r, i) => {
    check(r.value, i);
  });
  const columnsStart = performance.now();
  const columns = await post({
    function: fn,
    columns: { x1: Array.from({ length: POINTS }, (_, i) => point(i).x1), x2: Array.from({ length: POINTS }, (_, i) => point(i).x2) },
  });
  const columnsTime = (performance.now() - columnsStart) / 1000;
  ((columns.columns as { value: { data: number[] } }).value.data as number[]).forEach((v, i) => {
    check(v, i);
  });
  return { separate, rows: rowsTime, columns: columnsTime };
}

type Unary = (req: DifferentiateRequest, cb: (e: grpc.ServiceError | null, r?: DifferentiateResponse) => void) => void;

async function grpcCalls(address: string): Promise<Record<string, number>> {
  const Client = grpc.makeGenericClientConstructor(grpcServiceDefinition(AdjointService), "AdjointService");
  const client = new Client(address, grpc.credentials.createInsecure()) as unknown as grpc.Client & { differentiate: Unary };
  const call = (req: DifferentiateRequest) =>
    new Promise<DifferentiateResponse>((resolve, reject) =>
      client.differentiate(req, (e, r) => (e ? reject(e) : resolve(r as DifferentiateResponse))),
    );
  const fn = { source: { case: "expression" as const, value: EXPRESSION } };
  await call(create(DifferentiateRequestSchema, { function: fn, point: { values: point(0) } }));
  const separate = await pooled(POINTS, CONCURRENCY, async (i) => {
    const r = await call(create(DifferentiateRequestSchema, { function: fn, point: { values: point(i) } }));
    check(r.result?.outputs.f.values[0] as number, i);
  });
  const started = performance.now();
  const r = await call(
    create(DifferentiateRequestSchema, { function: fn, points: Array.from({ length: POINTS }, (_, i) => ({ values: point(i) })) }),
  );
  const batch = (performance.now() - started) / 1000;
  r.results.forEach((row, i) => {
    check(row.outputs.f.values[0], i);
  });
  const column = (f: (i: number) => number) => {
    const data = Float64Array.from({ length: POINTS }, (_, i) => f(i));
    return { shape: [POINTS], raw: new Uint8Array(data.buffer) };
  };
  const columnsStart = performance.now();
  const c = await call(
    create(DifferentiateRequestSchema, { function: fn, columns: { x1: column((i) => point(i).x1), x2: column((i) => point(i).x2) } }),
  );
  const columns = (performance.now() - columnsStart) / 1000;
  const raw = c.columns?.outputs.f.raw as Uint8Array;
  new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength)).forEach((v, i) => {
    check(v, i);
  });
  client.close();
  return { separate, rows: batch, columns };
}

async function main(): Promise<void> {
  const service = await startService();
  try {
    const h = await http(service.http);
    const g = await grpcCalls(service.grpc);
    const rate = (s: number) => `${Math.round(POINTS / s).toLocaleString("en")} points/s`;
    console.log(`worked example, value+gradient, ${POINTS.toLocaleString("en")} points (separate requests: ${CONCURRENCY} in flight)\n`);
    console.log(`HTTP  separate requests   ${h.separate.toFixed(2)} s   ${rate(h.separate)}`);
    console.log(`HTTP  one request (rows)   ${h.rows.toFixed(3)} s   ${rate(h.rows)}   ×${(h.separate / h.rows).toFixed(1)}`);
    console.log(`HTTP  one request (columns) ${h.columns.toFixed(3)} s   ${rate(h.columns)}   ×${(h.separate / h.columns).toFixed(1)}`);
    console.log(`gRPC  separate calls      ${g.separate.toFixed(2)} s   ${rate(g.separate)}`);
    console.log(`gRPC  one call (points)   ${g.rows.toFixed(3)} s   ${rate(g.rows)}   ×${(g.separate / g.rows).toFixed(1)}`);
    console.log(`gRPC  one call (columns)  ${g.columns.toFixed(3)} s   ${rate(g.columns)}   ×${(g.separate / g.columns).toFixed(1)}`);
    const ratios = [h.separate / h.rows, h.separate / h.columns, g.separate / g.rows, g.separate / g.columns];
    const worst = Math.min(...ratios);
    console.log(
      `\nbatch ÷ separate, worst of the ${ratios.length}: ×${worst.toFixed(1)} (target ≥ 20×): ${worst >= 20 ? "met" : "NOT met"}`,
    );
  } finally {
    service.stop();
  }
}

await main();
