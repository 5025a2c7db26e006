/**
 * Matrix multiply: the public entry over three backends.
 *
 *   "naive"  plain loops in JavaScript: best for tiny products (no packing, no copies)
 *   "js"     cache-blocked, register-tiled JavaScript (4×4 micro-kernel over packed panels)
 *   "wasm"   WebAssembly SIMD, f64x2 / f32x4 micro-kernels over packed panels (fastest; needs an
 *            engine with WebAssembly SIMD, which every supported Node has). Runs the relaxed-SIMD
 *            (fused multiply-add) build where the engine has relaxed SIMD, unless
 *            ADJOINT_WASM_RELAXED_SIMD=0; see wasmKernelKind() and the README
 *   "auto"   naive below MATMUL_SMALL_WORK multiply-adds per product, else wasm (unless its operands
 *            would need more than WASM_STAGING_LIMIT bytes of staging), else js. Measured crossover:
 *            wasm is already ahead at 8×8×8 (bench/kernels/matmul.ts has the large shapes)
 *
 * "auto" chooses from the whole product's size (m·n·k, not the row range), so threads that split
 * the rows of one product all run the same backend and their rows match an unsplit run bit for bit.
 * Backends round differently (naive and js compute float32 products in double precision and round
 * once on store; wasm computes them in single precision), so results agree only to rounding across
 * backends.
 */
import { type GemmStrided, gemmBlocked, gemmNaive } from "./matmul-js.js";
import { type MatmulSpec, type ResolvedMatmul, resolveMatmul } from "./matmul-resolve.js";
import { defaultWasmGemm, WASM_STAGING_LIMIT, wasmGemmAvailable } from "./matmul-wasm.js";
import { KernelArgumentError } from "./types.js";

export type { MatmulSpec, ResolvedMatmul } from "./matmul-resolve.js";

export type MatmulBackend = "auto" | "naive" | "js" | "wasm";

/** Below this many multiply-adds (m·n·k) per product, "auto" uses the naive loop. */
export const MATMUL_SMALL_WORK = 256;

/** Which backend "auto" picks for a product of this size. */
export function matmulBackendFor(m: number, n: number, k: number): Exclude<MatmulBackend, "auto"> {
  if (m * n * k < MATMUL_SMALL_WORK) return "naive";
  return wasmGemmAvailable() ? "wasm" : "js";
}

function runStrided(gemm: GemmStrided, r: ResolvedMatmul): void {
  const sumBatches = r.sc === 0 && r.batch > 1;
  for (let t = 0; t < r.batch; t++) {
    const beta = t > 0 && sumBatches ? 1 : r.beta;
    gemm(r.rows, r.n, r.k, r.a, r.ao + t * r.sa, r.ars, r.acs, r.b, r.bo + t * r.sb, r.brs, r.bcs, r.c, r.co + t * r.sc, r.ldc, beta);
  }
}

/** C = op(A)·op(B) or C += op(A)·op(B); see MatmulSpec for the layout, batches and row ranges. */
export function matmul(spec: MatmulSpec, backend: MatmulBackend = "auto"): void {
  const r = resolveMatmul(spec);
  if (r.rows === 0 || r.n === 0 || r.batch === 0) return;
  if (r.k === 0) {
    // An empty sum: C = 0, or C unchanged when accumulating.
    if (r.beta) return;
    for (let t = 0; t < r.batch; t++) {
      for (let i = 0; i < r.rows; i++) {
        const row = r.co + t * r.sc + i * r.ldc;
        r.c.fill(0, row, row + r.n);
      }
    }
    return;
  }
  let chosen = backend === "auto" ? matmulBackendFor(spec.m, r.n, r.k) : backend;
  // Too large to stage in the kernel's memory (judged on the whole product, like the size rule).
  if (backend === "auto" && chosen === "wasm" && (spec.m * r.k + r.k * r.n + spec.m * r.n) * r.c.BYTES_PER_ELEMENT > WASM_STAGING_LIMIT) {
    chosen = "js";
  }
  switch (chosen) {
    case "naive":
      runStrided(gemmNaive, r);
      return;
    case "js":
      runStrided(gemmBlocked, r);
      return;
    case "wasm":
      defaultWasmGemm().run(r);
      return;
    default:
      throw new KernelArgumentError(`matmul: unknown backend ${String(chosen)}`);
  }
}

/**
 * Compiles this thread's WebAssembly kernels and runs them on small products, so that the first real
 * call neither pays the compile nor runs V8's baseline tier (it tiers WebAssembly up in the background
 * after a few calls). Takes a few milliseconds; call once per thread (e.g. at worker start). Harmless
 * where WebAssembly SIMD is unavailable.
 */
export function warmUpMatmul(): void {
  if (!wasmGemmAvailable()) return;
  const size = 48;
  for (const C of [Float64Array, Float32Array]) {
    const a = new C(size * size).fill(0.5);
    const b = new C(size * size).fill(0.25);
    const c = new C(size * size);
    for (let i = 0; i < 8; i++) {
      matmul({ m: size, n: size, k: size, a, b, c, transA: i % 2 === 1, transB: i % 4 >= 2, accumulate: i > 3 }, "wasm");
    }
  }
}
