/**
 * Relaxed SIMD against SIMD128: the same WebAssembly GEMM with f64x2/f32x4.relaxed_madd in the
 * micro-kernel versus mul then add, side by side in one run (interleaved round after round), on the
 * W3 shapes and a square one, float64 and float32. Needs an engine with relaxed SIMD (Node ≥ 24) for
 * the relaxed column; elsewhere it says so and times SIMD128 alone.
 *
 *   npm run build && node dist/bench/kernels/matmul-relaxed.js [--quick]
 *
 * Each cell: best and median milliseconds per product over its timed calls, and GFLOP/s of the best
 * (2·m·n·k flops). The last column is relaxed's speed-up (best over best). The README records the
 * numbers that set RELAXED_SIMD_BY_DEFAULT.
 */
import { gemmModuleOf, WasmGemm, type WasmKernelKind } from "../../src/tensor/kernels/index.js";
import { resolveMatmul } from "../../src/tensor/kernels/matmul-resolve.js";
import { lcg as workloadLcg } from "../workloads/lcg.js";

interface Shape {
  name: string;
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
}

// W3: X 128×784, W1 784×256, H 128×256, W2 256×10.
const shapes: Shape[] = [
  { name: "fwd1 X·W1", m: 128, n: 256, k: 784, transA: false, transB: false },
  { name: "dW1 Xᵀ·dH", m: 784, n: 256, k: 128, transA: true, transB: false },
  { name: "dX dH·W1ᵀ", m: 128, n: 784, k: 256, transA: false, transB: true },
  { name: "fwd2 H·W2", m: 128, n: 10, k: 256, transA: false, transB: false },
  { name: "sq512", m: 512, n: 512, k: 512, transA: false, transB: false },
];

const quick = process.argv.includes("--quick");
const ROUNDS = quick ? 3 : 7;
const CELL_S = quick ? 0.04 : 0.1;

/** The workloads' generator, centred on zero. */
function lcg(seed: number): () => number {
  const next = workloadLcg(seed);
  return () => next() - 0.5;
}

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

const kinds: WasmKernelKind[] = ["simd128", "relaxed-simd"];
const contexts = new Map<WasmKernelKind, WasmGemm>();
for (const kind of kinds) {
  const mod = gemmModuleOf(kind);
  if (mod) contexts.set(kind, new WasmGemm(mod));
  else console.log(`${kind}: not supported by this engine (${process.version}); skipped`);
}

console.log(`node ${process.version}, ${ROUNDS} rounds, ~${CELL_S}s per cell per round`);
const header = ["shape", "type", ...[...contexts.keys()].map((k) => `${k} best/median ms (GFLOP/s)`), "speed-up"];
const rows: string[][] = [];
const next = lcg(4242);
for (const s of shapes) {
  for (const C of [Float64Array, Float32Array]) {
    const a = new C(s.m * s.k).map(next);
    const b = new C(s.k * s.n).map(next);
    const outs = new Map<WasmKernelKind, InstanceType<typeof C>>();
    const times = new Map<WasmKernelKind, number[]>();
    const runs = new Map<WasmKernelKind, () => void>();
    for (const [kind, ctx] of contexts) {
      const c = new C(s.m * s.n);
      const r = resolveMatmul({ m: s.m, n: s.n, k: s.k, a, b, c, transA: s.transA, transB: s.transB });
      outs.set(kind, c);
      times.set(kind, []);
      runs.set(kind, () => ctx.run(r));
      for (let i = 0; i < 20; i++) ctx.run(r); // let V8 tier the module up
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const [kind, run] of runs) {
        const t0 = performance.now();
        let calls = 0;
        do {
          const t = performance.now();
          run();
          times.get(kind)!.push(performance.now() - t);
          calls++;
        } while (performance.now() - t0 < CELL_S * 1000 || calls < 3);
      }
    }
    const flops = 2 * s.m * s.n * s.k;
    const best = new Map([...times].map(([k, ts]) => [k, Math.min(...ts)]));
    const cells = [...times].map(([k, ts]) => {
      const b = best.get(k)!;
      return `${b.toFixed(3)} / ${median(ts).toFixed(3)} (${(flops / b / 1e6).toFixed(1)})`;
    });
    const simd = best.get("simd128");
    const relaxed = best.get("relaxed-simd");
    const speedup = simd !== undefined && relaxed !== undefined ? `${(simd / relaxed).toFixed(3)}×` : "—";
    // The two round differently (fused multiply-add): report how far apart they land.
    let diff = 0;
    let scale = 0;
    const x = outs.get("simd128");
    const y = outs.get("relaxed-simd");
    if (x && y) {
      for (let i = 0; i < x.length; i++) {
        diff = Math.max(diff, Math.abs(x[i] - y[i]));
        scale = Math.max(scale, Math.abs(x[i]));
      }
    }
    rows.push([
      s.name,
      C === Float64Array ? "f64" : "f32",
      ...cells,
      x && y ? `${speedup} (Δrel ${(diff / scale).toExponential(1)})` : speedup,
    ]);
  }
}
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i])).join("  ");
console.log(line(header));
for (const r of rows) console.log(line(r));
