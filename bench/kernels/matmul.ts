/**
 * Matrix-multiply kernel benchmark: GFLOP/s (2·m·n·k per product) of each adjoint backend, float64 and
 * float32, beside a naive triple loop and @tensorflow/tfjs (CPU and WASM backends, float32), on the
 * W3 shapes (../shared/workloads.md) plus a square one and one conv2d.
 *
 *   npm run build && node dist/bench/kernels/matmul.js [--quick] [--json FILE]
 *
 * Variants run interleaved, round after round; each cell is the best (and median) of its timed calls,
 * since a shared 2-core machine makes the slow tail noise. tfjs-wasm runs single-threaded SIMD
 * (WASM_HAS_MULTITHREAD_SUPPORT off), like every other variant here.
 */
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import {
  conv2d,
  conv2dFilterGrad,
  conv2dInputGrad,
  conv2dWorkspaceSize,
  type FloatArray,
  type MatmulBackend,
  matmul,
} from "../../src/tensor/kernels/index.js";
import { lcg as workloadLcg } from "../workloads/lcg.js";

type Ctor = Float64ArrayConstructor | Float32ArrayConstructor;

interface Shape {
  name: string;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  /** Part of one W3 loss+gradient step. */
  w3: boolean;
  note: string;
}

// W3: X 128×784, W1 784×256, H 128×256, W2 256×10, logits 128×10.
const shapes: Shape[] = [
  { name: "fwd1", m: 128, n: 256, k: 784, transA: false, transB: false, w3: true, note: "X·W1" },
  { name: "fwd2", m: 128, n: 10, k: 256, transA: false, transB: false, w3: true, note: "H·W2" },
  { name: "dW2", m: 256, n: 10, k: 128, transA: true, transB: false, w3: true, note: "Hᵀ·dZ" },
  { name: "dH", m: 128, n: 256, k: 10, transA: false, transB: true, w3: true, note: "dZ·W2ᵀ" },
  { name: "dW1", m: 784, n: 256, k: 128, transA: true, transB: false, w3: true, note: "Xᵀ·dH" },
  { name: "dX", m: 128, n: 784, k: 256, transA: false, transB: true, w3: false, note: "dH·W1ᵀ" },
  { name: "sq512", m: 512, n: 512, k: 512, transA: false, transB: false, w3: false, note: "square" },
];

const args = process.argv.slice(2);
const quick = args.includes("--quick");
const jsonAt = args.indexOf("--json");
const jsonFile = jsonAt >= 0 ? args[jsonAt + 1] : undefined;
const ROUNDS = quick ? 2 : 5;
/** Target seconds of calls per cell per round. */
const CELL_S = quick ? 0.03 : 0.08;

/** The workloads' generator, centred on zero. */
function lcg(seed: number): () => number {
  const next = workloadLcg(seed);
  return () => next() - 0.5;
}

interface Operands {
  a: FloatArray;
  b: FloatArray;
  c: FloatArray;
}

function operands(C: Ctor, s: Shape, next: () => number): Operands {
  const a = new C(s.m * s.k);
  const b = new C(s.k * s.n);
  for (let i = 0; i < a.length; i++) a[i] = next();
  for (let i = 0; i < b.length; i++) b[i] = next();
  return { a, b, c: new C(s.m * s.n) };
}

interface Variant {
  name: string;
  dtype: "f64" | "f32";
  /** Prepares one shape; returns the call to time and a way to read its result. */
  prepare(s: Shape, ops: Operands): { run: () => void; result: () => ArrayLike<number> };
  /** Skip shapes that would take too long. */
  maxFlops?: number;
}

function ours(backend: MatmulBackend, dtype: "f64" | "f32", label: string, maxFlops?: number): Variant {
  return {
    name: label,
    dtype,
    maxFlops,
    prepare(s, { a, b, c }) {
      const spec = { m: s.m, n: s.n, k: s.k, a, b, c, transA: s.transA, transB: s.transB };
      return { run: () => matmul(spec, backend), result: () => c };
    },
  };
}

interface TfLike {
  tensor2d(values: Float32Array, shape: [number, number]): TfTensor;
  matMul(a: TfTensor, b: TfTensor, transposeA: boolean, transposeB: boolean): TfTensor;
  conv2d(x: TfTensor, f: TfTensor, strides: [number, number], pad: "valid" | "same" | number): TfTensor;
  tensor4d(values: Float32Array, shape: [number, number, number, number]): TfTensor;
  transpose(x: TfTensor, perm: number[]): TfTensor;
  setBackend(name: string): Promise<boolean>;
  getBackend(): string;
  env(): { set(flag: string, value: unknown): void };
  ready(): Promise<void>;
}
interface TfTensor {
  dataSync(): Float32Array;
  dispose(): void;
}

function tfVariant(tf: TfLike, backend: string): Variant {
  return {
    name: `tfjs-${backend}`,
    dtype: "f32",
    prepare(s, { a, b }) {
      // Stored layouts as in our call: A is m×k (or k×m when transposed), B k×n (or n×k).
      const ta = tf.tensor2d(a as Float32Array, s.transA ? [s.k, s.m] : [s.m, s.k]);
      const tb = tf.tensor2d(b as Float32Array, s.transB ? [s.n, s.k] : [s.k, s.n]);
      let last: Float32Array = new Float32Array(0);
      return {
        run: () => {
          const out = tf.matMul(ta, tb, s.transA, s.transB);
          last = out.dataSync();
          out.dispose();
        },
        result: () => last,
      };
    },
  };
}

async function loadTf(): Promise<{ tf: TfLike; backends: string[] } | null> {
  try {
    const tf = (await import("@tensorflow/tfjs")) as unknown as TfLike;
    const backends = ["cpu"];
    try {
      const wasm = (await import("@tensorflow/tfjs-backend-wasm")) as unknown as { setWasmPaths(prefix: string): void };
      const require = createRequire(import.meta.url);
      wasm.setWasmPaths(`${join(dirname(require.resolve("@tensorflow/tfjs-backend-wasm/package.json")), "dist")}/`);
      tf.env().set("WASM_HAS_MULTITHREAD_SUPPORT", false);
      backends.push("wasm");
    } catch (e) {
      console.error(`tfjs-backend-wasm unavailable: ${(e as Error).message}`);
    }
    return { tf, backends };
  } catch (e) {
    console.error(`@tensorflow/tfjs unavailable: ${(e as Error).message}`);
    return null;
  }
}

function keyOf(v: Variant): string {
  return `${v.name} ${v.dtype}`;
}

interface Cell {
  best: number;
  times: number[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

async function timeVariants(variants: Variant[], groupSetup: (v: Variant) => Promise<void>): Promise<Map<string, Map<string, Cell>>> {
  const cells = new Map<string, Map<string, Cell>>();
  const next = lcg(12345);
  const inputs = new Map<string, Operands>();
  const reference = new Map<string, Float64Array>();
  for (const s of shapes) {
    for (const C of [Float64Array, Float32Array]) {
      const ops = operands(C, s, next);
      inputs.set(`${s.name}/${C === Float64Array ? "f64" : "f32"}`, ops);
      if (C === Float64Array) {
        const c = new Float64Array(s.m * s.n);
        matmul({ m: s.m, n: s.n, k: s.k, a: ops.a, b: ops.b, c, transA: s.transA, transB: s.transB }, "naive");
        reference.set(s.name, c);
      }
    }
  }
  // The f32 inputs are the f64 ones rounded, so one reference serves both.
  for (const s of shapes) {
    const f64 = inputs.get(`${s.name}/f64`)!;
    inputs.set(`${s.name}/f32`, { a: Float32Array.from(f64.a), b: Float32Array.from(f64.b), c: new Float32Array(s.m * s.n) });
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const v of variants) {
      await groupSetup(v);
      let row = cells.get(keyOf(v));
      if (!row) cells.set(keyOf(v), (row = new Map()));
      for (const s of shapes) {
        const flops = 2 * s.m * s.n * s.k;
        if (v.maxFlops !== undefined && flops > v.maxFlops) continue;
        const { run, result } = v.prepare(s, inputs.get(`${s.name}/${v.dtype}`)!);
        run(); // warm (and for round 0 check) the result
        if (round === 0) {
          const got = result();
          const ref = reference.get(s.name)!;
          let err = 0;
          let scale = 1;
          for (let i = 0; i < ref.length; i++) {
            err = Math.max(err, Math.abs(got[i] - ref[i]));
            scale = Math.max(scale, Math.abs(ref[i]));
          }
          if (err / scale > (v.dtype === "f64" ? 1e-12 : 1e-4)) console.error(`!! ${v.name} ${s.name}: relative error ${err / scale}`);
        }
        let cell = row.get(s.name);
        if (!cell) row.set(s.name, (cell = { best: Number.POSITIVE_INFINITY, times: [] }));
        const t0 = performance.now();
        let calls = 0;
        do {
          const t = performance.now();
          run();
          const dt = performance.now() - t;
          cell.times.push(dt);
          if (dt < cell.best) cell.best = dt;
          calls++;
        } while (performance.now() - t0 < CELL_S * 1000 && calls < 200);
      }
    }
  }
  return cells;
}

function fmt(x: number, width: number): string {
  return (Number.isFinite(x) ? x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2) : "—").padStart(width);
}

async function convBench(tfx: { tf: TfLike; backends: string[] } | null): Promise<string[]> {
  // A middle layer of a small CNN: 32 images of 16×14×14, 32 filters 5×5, same padding.
  const g = {
    batch: 32,
    inChannels: 16,
    inHeight: 14,
    inWidth: 14,
    outChannels: 32,
    kernelHeight: 5,
    kernelWidth: 5,
    padTop: 2,
    padBottom: 2,
    padLeft: 2,
    padRight: 2,
  };
  const flops = 2 * g.batch * g.outChannels * 14 * 14 * g.inChannels * 25;
  const next = lcg(7);
  const lines: string[] = [];
  const time = (run: () => void) => {
    run();
    let best = Number.POSITIVE_INFINITY;
    for (let i = 0; i < (quick ? 5 : 15); i++) {
      const t = performance.now();
      run();
      best = Math.min(best, performance.now() - t);
    }
    return best;
  };
  for (const C of [Float64Array, Float32Array]) {
    const x = new C(g.batch * 16 * 14 * 14).map(next);
    const w = new C(32 * 16 * 25).map(next);
    const y = new C(g.batch * 32 * 14 * 14).map(next);
    const ws = new C(conv2dWorkspaceSize(g));
    const dt = C === Float64Array ? "f64" : "f32";
    const gf = (ms: number) => `${ms.toFixed(2)} ms, ${(flops / ms / 1e6).toFixed(1)} GFLOP/s`;
    for (const backend of ["wasm", "js"] as const) {
      const how = backend === "wasm" ? "WebAssembly im2col + gemm" : "JS im2col + js-blocked matmul";
      lines.push(`conv2d ${dt} forward, ${how}: ${gf(time(() => conv2d(g, x, w, y, { workspace: ws, backend })))}`);
    }
    const dx = new C(x.length);
    const dw = new C(w.length);
    lines.push(`conv2d ${dt} input grad (wasm): ${gf(time(() => conv2dInputGrad(g, y, w, dx)))}`);
    lines.push(`conv2d ${dt} filter grad (wasm): ${gf(time(() => conv2dFilterGrad(g, x, y, dw)))}`);
  }
  if (tfx) {
    for (const backend of tfx.backends) {
      await tfx.tf.setBackend(backend);
      await tfx.tf.ready();
      const x = tfx.tf.tensor4d(new Float32Array(g.batch * 14 * 14 * 16).map(next), [g.batch, 14, 14, 16]);
      const f = tfx.tf.tensor4d(new Float32Array(5 * 5 * 16 * 32).map(next), [5, 5, 16, 32]);
      const ms = time(() => {
        const out = tfx.tf.conv2d(x, f, [1, 1], "same");
        out.dataSync();
        out.dispose();
      });
      lines.push(`conv2d f32 tfjs-${backend} (NHWC): ${ms.toFixed(2)} ms, ${(flops / ms / 1e6).toFixed(1)} GFLOP/s`);
      x.dispose();
      f.dispose();
    }
  }
  lines.unshift(`conv2d forward, N=32 C=16 14×14, 32 filters 5×5, same padding (${(flops / 1e6).toFixed(1)} MFLOP):`);
  return lines;
}

async function main(): Promise<void> {
  const tfx = await loadTf();
  const variants: Variant[] = [
    ours("naive", "f64", "naive", 6e7),
    ours("js", "f64", "js-blocked"),
    ours("wasm", "f64", "wasm-simd"),
    ours("auto", "f64", "auto"),
    ours("naive", "f32", "naive", 6e7),
    ours("js", "f32", "js-blocked"),
    ours("wasm", "f32", "wasm-simd"),
    ours("auto", "f32", "auto"),
  ];
  if (tfx) for (const b of tfx.backends) variants.push(tfVariant(tfx.tf, b));
  const cells = await timeVariants(variants, async (v) => {
    if (tfx && v.name.startsWith("tfjs-")) {
      const b = v.name.slice(5);
      if (tfx.tf.getBackend() !== b) {
        await tfx.tf.setBackend(b);
        await tfx.tf.ready();
      }
    }
  });

  const out: string[] = [];
  out.push(`node ${process.version}, ${ROUNDS} rounds; GFLOP/s from the best call (median call in parentheses)`);
  const w = 17;
  out.push(
    `${"variant".padEnd(18)}${shapes.map((s) => `${s.name} ${s.m}x${s.n}x${s.k}${s.transA ? "ᵀA" : ""}${s.transB ? "ᵀB" : ""}`.padStart(w + 6)).join("")}${"W3 ms".padStart(16)}`,
  );
  const json: Record<string, unknown> = {};
  for (const v of variants) {
    const row = cells.get(keyOf(v))!;
    const label = v.name.startsWith("tfjs") ? `${v.name} f32` : `${v.name} ${v.dtype}`;
    let line = label.padEnd(18);
    let w3Best = 0;
    let w3Median = 0;
    let complete = true;
    const jr: Record<string, unknown> = {};
    for (const s of shapes) {
      const cell = row.get(s.name);
      const flops = 2 * s.m * s.n * s.k;
      if (!cell) {
        line += "—".padStart(w + 6);
        if (s.w3) complete = false;
        continue;
      }
      const med = median(cell.times);
      line += `${fmt(flops / cell.best / 1e6, 8)} (${fmt(flops / med / 1e6, 6)})`.padStart(w + 6);
      if (s.w3) {
        w3Best += cell.best;
        w3Median += med;
      }
      jr[s.name] = { bestMs: cell.best, medianMs: med, gflopsBest: flops / cell.best / 1e6, gflopsMedian: flops / med / 1e6 };
    }
    line += complete ? `${fmt(w3Best, 7)} (${fmt(w3Median, 5)})` : "—".padStart(16);
    json[label] = { ...jr, w3MatmulMs: complete ? { best: w3Best, median: w3Median } : null };
    out.push(line);
  }
  const w3Flops = shapes.filter((s) => s.w3).reduce((t, s) => t + 2 * s.m * s.n * s.k, 0);
  out.push(
    `W3 ms = the five matmuls of one W3 loss+gradient step (${shapes
      .filter((s) => s.w3)
      .map((s) => s.name)
      .join(", ")}; ${(w3Flops / 1e6).toFixed(1)} MFLOP), summed.`,
  );
  out.push("");
  out.push(...(await convBench(tfx)));
  console.log(out.join("\n"));
  if (jsonFile) writeFileSync(jsonFile, `${JSON.stringify({ node: process.version, rounds: ROUNDS, results: json }, null, 2)}\n`);
}

await main();
