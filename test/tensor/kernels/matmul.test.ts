import { describe, expect, it } from "vitest";
import {
  type FloatArray,
  KernelArgumentError,
  MATMUL_SMALL_WORK,
  type MatmulBackend,
  matmul,
  matmulBackendFor,
  releaseWasmGemm,
  warmUpMatmul,
  wasmGemmAvailable,
  wasmGemmMemoryBytes,
} from "../../../src/tensor/kernels/index.js";
import { type Ctor, randomArray, refMatmul, relErr, rng } from "./reference.js";

const backends: MatmulBackend[] = ["naive", "js", "wasm", "auto"];
const types: [string, Ctor, number][] = [
  // Per unit of k, relative to max |C|: rounding grows at most linearly with the depth of the sum.
  ["float64", Float64Array, 1e-15],
  ["float32", Float32Array, 1e-7],
];

// Sizes around the register tiles (wasm 5×4 f64 and 5×8 f32, js 4×4) and blocks (MC 60 and 64, KC 256).
const sizes: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 3],
  [5, 1, 9],
  [3, 5, 2],
  [4, 8, 4],
  [7, 9, 13],
  [17, 33, 5],
  [65, 31, 257],
  [70, 13, 300],
  [33, 130, 31],
];

interface Layout {
  transA: boolean;
  transB: boolean;
}
const layouts: Layout[] = [
  { transA: false, transB: false },
  { transA: true, transB: false },
  { transA: false, transB: true },
  { transA: true, transB: true },
];

/** Runs one multiply with padded leading dimensions, offsets and accumulation, against the reference. */
function check(C: Ctor, tol: number, backend: MatmulBackend, m: number, n: number, k: number, lay: Layout, seed: number): void {
  const next = rng(seed);
  const lda = (lay.transA ? m : k) + (seed % 3);
  const ldb = (lay.transB ? k : n) + (seed % 2);
  const ldc = n + (seed % 4);
  const aOffset = seed % 5;
  const bOffset = seed % 7;
  const cOffset = seed % 3;
  const a = randomArray(C, aOffset + (lay.transA ? k : m) * lda, next);
  const b = randomArray(C, bOffset + (lay.transB ? n : k) * ldb, next);
  const c = randomArray(C, cOffset + m * ldc + 2, next);
  const before = Float64Array.from(c);
  const accumulate = seed % 2 === 1;
  matmul({ m, n, k, a, aOffset, lda, transA: lay.transA, b, bOffset, ldb, transB: lay.transB, c, cOffset, ldc, accumulate }, backend);
  const expected = Float64Array.from(before);
  refMatmul(
    m,
    n,
    k,
    a,
    (i, p) => aOffset + (lay.transA ? p * lda + i : i * lda + p),
    b,
    (p, j) => bOffset + (lay.transB ? j * ldb + p : p * ldb + j),
    (i, j, v) => {
      const at = cOffset + i * ldc + j;
      expected[at] = accumulate ? before[at] + v : v;
    },
  );
  // Everything outside C's m×n block is untouched.
  expect(relErr(c, expected)).toBeLessThan(tol * Math.max(4, k));
  for (let i = 0; i < c.length; i++) {
    const col = (i - cOffset) % ldc;
    const inside = i >= cOffset && i < cOffset + m * ldc && col < n;
    if (!inside) expect(c[i]).toBe(before[i]);
  }
}

describe("matmul against a naive reference", () => {
  it("has the WebAssembly SIMD backend in this engine", () => {
    expect(wasmGemmAvailable()).toBe(true);
  });

  for (const [name, C, tol] of types) {
    for (const backend of backends) {
      it(`${name}, ${backend}: odd sizes, transposes, padded leading dimensions, offsets, accumulate`, () => {
        let seed = 1;
        for (const [m, n, k] of sizes) for (const lay of layouts) check(C, tol, backend, m, n, k, lay, seed++);
      });
    }
  }
});

describe("matmul batches", () => {
  for (const [name, C, tol] of types) {
    for (const backend of ["naive", "js", "wasm"] as const) {
      it(`${name}, ${backend}: per-operand strides, broadcast (stride 0) and summed batches (strideC 0)`, () => {
        const next = rng(99);
        const [batch, m, n, k] = [3, 9, 11, 7];
        const a = randomArray(C, batch * m * k, next);
        const bShared = randomArray(C, k * n, next);
        // B broadcast over the batch, A per batch, B transposed.
        const bt = randomArray(C, n * k, next);
        const c = new C(batch * m * n);
        matmul({ m, n, k, a, b: bt, transB: true, c, batch, strideB: 0 }, backend);
        const expected = new Float64Array(batch * m * n);
        for (let t = 0; t < batch; t++) {
          refMatmul(
            m,
            n,
            k,
            a,
            (i, p) => t * m * k + i * k + p,
            bt,
            (p, j) => j * k + p,
            (i, j, v) => {
              expected[t * m * n + i * n + j] = v;
            },
          );
        }
        expect(relErr(c, expected)).toBeLessThan(tol * 16 * k);

        // strideC = 0: C = Σ_t A_t·B, the gradient of a broadcast operand.
        const sum = new C(m * n).fill(5);
        for (const accumulate of [false, true]) {
          sum.fill(5);
          matmul({ m, n, k, a, b: bShared, c: sum, batch, strideB: 0, strideC: 0, accumulate }, backend);
          const want = new Float64Array(m * n).fill(accumulate ? 5 : 0);
          for (let t = 0; t < batch; t++) {
            refMatmul(
              m,
              n,
              k,
              a,
              (i, p) => t * m * k + i * k + p,
              bShared,
              (p, j) => p * n + j,
              (i, j, v) => {
                want[i * n + j] += v;
              },
            );
          }
          expect(relErr(sum, want)).toBeLessThan(tol * 16 * batch * k);
        }
      });
    }
  }
});

describe("matmul row ranges", () => {
  for (const [name, C] of types) {
    for (const backend of ["naive", "js", "wasm"] as const) {
      it(`${name}, ${backend}: disjoint row ranges over a SharedArrayBuffer equal one whole run bit for bit`, () => {
        const next = rng(7);
        const [m, n, k] = [37, 29, 300];
        for (const transA of [false, true]) {
          const shared = new SharedArrayBuffer((m * k + k * n + 2 * m * n + 8) * C.BYTES_PER_ELEMENT);
          const all: FloatArray = C === Float64Array ? new Float64Array(shared) : new Float32Array(shared);
          for (let i = 0; i < m * k + k * n; i++) all[i] = next();
          // Views at offsets into the one buffer, as a worker pool would hand out.
          const a = all.subarray(0, m * k);
          const b = all.subarray(m * k, m * k + k * n);
          const whole = all.subarray(m * k + k * n, m * k + k * n + m * n);
          const split = all.subarray(m * k + k * n + m * n);
          matmul({ m, n, k, a, transA, b, c: whole }, backend);
          for (const [r0, r1] of [
            [0, 5],
            [5, 6],
            [6, 23],
            [23, 37],
          ]) {
            matmul({ m, n, k, a, transA, b, c: split, rowStart: r0, rowEnd: r1 }, backend);
          }
          expect(Array.from(split.subarray(0, m * n))).toEqual(Array.from(whole));
        }
      });
    }
  }

  it("warmUpMatmul runs and leaves later results unchanged", () => {
    const a = Float64Array.from({ length: 64 * 64 }, (_, i) => Math.sin(i));
    const b = Float64Array.from({ length: 64 * 64 }, (_, i) => Math.cos(i));
    const before = new Float64Array(64 * 64);
    const after = new Float64Array(64 * 64);
    matmul({ m: 64, n: 64, k: 64, a, b, c: before });
    warmUpMatmul();
    matmul({ m: 64, n: 64, k: 64, a, b, c: after });
    expect(Array.from(after)).toEqual(Array.from(before));
  });

  it("releaseWasmGemm drops the grown memory; the next call starts afresh", () => {
    const [m, n, k] = [300, 300, 300];
    const a = new Float64Array(m * k).fill(1);
    const b = new Float64Array(k * n).fill(2);
    const c = new Float64Array(m * n);
    matmul({ m, n, k, a, b, c }, "wasm");
    expect(wasmGemmMemoryBytes()).toBeGreaterThan((m * k + k * n + m * n) * 8);
    releaseWasmGemm();
    expect(wasmGemmMemoryBytes()).toBe(0);
    c.fill(0);
    matmul({ m: 2, n: 2, k: 2, a, b, c }, "wasm");
    expect(Array.from(c.subarray(0, 4))).toEqual([4, 4, 4, 4]);
    expect(wasmGemmMemoryBytes()).toBeGreaterThan(0);
  });

  it("auto chooses from the whole product, not the row range", () => {
    expect(matmulBackendFor(128, 256, 784)).toBe("wasm");
    expect(matmulBackendFor(2, 3, 4)).toBe("naive");
    expect(MATMUL_SMALL_WORK).toBeGreaterThan(0);
  });
});

describe("matmul edge cases and contract", () => {
  it("k = 0 gives zeros, or leaves C when accumulating; empty m or n does nothing", () => {
    for (const backend of backends) {
      const c = new Float64Array(6).fill(3);
      matmul({ m: 2, n: 3, k: 0, a: new Float64Array(0), b: new Float64Array(0), c }, backend);
      expect(Array.from(c)).toEqual([0, 0, 0, 0, 0, 0]);
      c.fill(3);
      matmul({ m: 2, n: 3, k: 0, a: new Float64Array(0), b: new Float64Array(0), c, accumulate: true }, backend);
      expect(Array.from(c)).toEqual([3, 3, 3, 3, 3, 3]);
      matmul({ m: 0, n: 3, k: 2, a: new Float64Array(0), b: new Float64Array(6), c: new Float64Array(0) }, backend);
    }
  });

  it("large blocks: k beyond one depth block, m beyond one row block, n beyond one column block", () => {
    const next = rng(3);
    const [m, n, k] = [70, 1030, 260];
    for (const [, C, tol] of types) {
      const a = randomArray(C, m * k, next);
      const b = randomArray(C, k * n, next);
      const expected = new Float64Array(m * n);
      refMatmul(
        m,
        n,
        k,
        a,
        (i, p) => i * k + p,
        b,
        (p, j) => p * n + j,
        (i, j, v) => {
          expected[i * n + j] = v;
        },
      );
      for (const backend of ["js", "wasm"] as const) {
        const c = new C(m * n);
        matmul({ m, n, k, a, b, c }, backend);
        expect(relErr(c, expected)).toBeLessThan(tol * k);
      }
    }
  });

  it("rejects mixed element types, out-of-bounds operands, bad ranges and C overlapping A", () => {
    const a = new Float64Array(6);
    const b = new Float64Array(6);
    expect(() => matmul({ m: 2, n: 2, k: 3, a, b, c: new Float32Array(4) })).toThrow(KernelArgumentError);
    expect(() => matmul({ m: 2, n: 2, k: 3, a, b, c: new Float64Array(3) })).toThrow(KernelArgumentError);
    expect(() => matmul({ m: 2, n: 2, k: 3, a, b: new Float64Array(5), c: new Float64Array(4) })).toThrow(KernelArgumentError);
    expect(() => matmul({ m: 2, n: 2, k: 3, a, b, c: new Float64Array(4), rowStart: 1, rowEnd: 3 })).toThrow(KernelArgumentError);
    expect(() => matmul({ m: 2, n: 2, k: 3, a, b, c: new Float64Array(4), lda: 2 })).toThrow(KernelArgumentError);
    expect(() => matmul({ m: 2.5, n: 2, k: 3, a, b, c: new Float64Array(4) })).toThrow(KernelArgumentError);
    const buf = new Float64Array(20);
    expect(() => matmul({ m: 2, n: 2, k: 3, a: buf.subarray(0, 6), b, c: buf.subarray(4, 8) })).toThrow(KernelArgumentError);
  });
});
