import { afterAll, describe, expect, it } from "vitest";
import { planChunks, TEAM_MIN_WORK } from "../../../src/tensor/kernels/gemm-team.js";
import { resolveMatmul } from "../../../src/tensor/kernels/matmul-resolve.js";
import { gemmModule, WasmGemm, wasmGemmAvailable } from "../../../src/tensor/kernels/matmul-wasm.js";
import { type Ctor, randomArray, refMatmul, rng } from "./reference.js";

/**
 * Large products split across helper threads (gemm-team.ts) give the unsplit product's bits. "Helpers
 * only" makes the owner leave every chunk to its helper, so that a wrong helper cannot hide behind an
 * owner that happened to compute everything itself.
 */
const haveWasm = wasmGemmAvailable();
const contexts: WasmGemm[] = [];
function context(helpers: number, ownerClaims = true): WasmGemm {
  const ctx = new WasmGemm(gemmModule(), { helpers, ownerClaims });
  contexts.push(ctx);
  return ctx;
}
afterAll(() => {
  for (const ctx of contexts) ctx.close();
});

const sameBits = (x: ArrayLike<number>, y: ArrayLike<number>) => x.length === y.length && Array.from(x).every((v, i) => Object.is(v, y[i]));

interface Case {
  m: number;
  n: number;
  k: number;
  transA: boolean;
  transB: boolean;
  accumulate: boolean;
  batch: number;
}

// Above TEAM_MIN_WORK per product, cut by rows (m ≥ n) or columns, with extents that are not whole tiles.
const cases: Case[] = [
  { m: 128, n: 256, k: 784, transA: false, transB: false, accumulate: false, batch: 1 },
  { m: 784, n: 256, k: 128, transA: true, transB: false, accumulate: false, batch: 1 },
  { m: 128, n: 784, k: 256, transA: false, transB: true, accumulate: true, batch: 1 },
  { m: 301, n: 97, k: 203, transA: true, transB: true, accumulate: true, batch: 1 },
  { m: 37, n: 1001, k: 303, transA: false, transB: false, accumulate: false, batch: 1 },
  { m: 120, n: 133, k: 150, transA: false, transB: false, accumulate: false, batch: 3 },
];

function run(ctx: WasmGemm, C: Ctor, c: Case, seed: number) {
  const next = rng(seed);
  const { m, n, k, transA, transB, batch } = c;
  const ldc = n + 3;
  const a = randomArray(C, batch * m * k, next);
  const b = randomArray(C, batch * k * n, next);
  const out = randomArray(C, batch * m * ldc, next);
  const before = Float64Array.from(out);
  ctx.run(resolveMatmul({ m, n, k, a, b, c: out, transA, transB, ldc, accumulate: c.accumulate, batch }));
  return { a, b, out, before };
}

describe.skipIf(!haveWasm)("matmul split across helper threads", () => {
  for (const [type, C, tol] of [
    ["float64", Float64Array, 1e-15],
    ["float32", Float32Array, 1e-7],
  ] as [string, Ctor, number][]) {
    it(`${type}: the split product has the unsplit product's bits, and is the product`, async () => {
      const alone = context(0);
      const shared = context(1);
      const helpersOnly = context(1, false);
      for (const [i, c] of cases.entries()) {
        const expected = run(alone, C, c, 100 + i);
        const helped = helpersOnly.helpedChunks;
        expect(sameBits(run(helpersOnly, C, c, 100 + i).out, expected.out)).toBe(true);
        // Every chunk went to the helper.
        const plan = planChunks(C === Float64Array, c.m, c.n, c.k, 2);
        expect(plan).not.toBeNull();
        expect(helpersOnly.helpedChunks - helped).toBe(c.batch * (plan?.chunks ?? 0));
        expect(sameBits(run(shared, C, c, 100 + i).out, expected.out)).toBe(true);
        // And the bits are right: against a double-precision reference, product by product.
        const { a, b, out, before } = expected;
        const { m, n, k, transA, transB } = c;
        const ldc = n + 3;
        let worst = 0;
        let scale = 0;
        for (let t = 0; t < c.batch; t++) {
          refMatmul(
            m,
            n,
            k,
            a,
            (r, p) => t * m * k + (transA ? p * m + r : r * k + p),
            b,
            (p, j) => t * k * n + (transB ? j * k + p : p * n + j),
            (r, j, v) => {
              const at = t * m * ldc + r * ldc + j;
              const want = (c.accumulate ? before[at] : 0) + v;
              worst = Math.max(worst, Math.abs(out[at] - want));
              scale = Math.max(scale, Math.abs(want));
            },
          );
        }
        expect(worst / scale).toBeLessThan(tol * k);
        // Padding between rows is left alone.
        for (let r = 0; r < c.batch * m; r++) {
          for (let j = n; j < ldc; j++) expect(out[r * ldc + j]).toBe(before[r * ldc + j]);
        }
      }
    });
  }

  it("helpers see memory the owner grew after they started", () => {
    const helpersOnly = context(1, false);
    const small = { m: 64, n: 64, k: 600, transA: false, transB: false, accumulate: false, batch: 1 };
    const large = { m: 1500, n: 400, k: 900, transA: false, transB: false, accumulate: false, batch: 1 };
    const alone = context(0);
    run(helpersOnly, Float64Array, small, 1);
    const before = helpersOnly.memory.buffer.byteLength;
    const got = run(helpersOnly, Float64Array, large, 2).out;
    expect(helpersOnly.memory.buffer.byteLength).toBeGreaterThan(before);
    expect(sameBits(got, run(alone, Float64Array, large, 2).out)).toBe(true);
  });

  it("a closed team leaves every product to its owner, with the same bits", () => {
    const ctx = context(1);
    const c = cases[0];
    const first = run(ctx, Float64Array, c, 7).out;
    ctx.close();
    const helped = ctx.helpedChunks;
    expect(sameBits(run(ctx, Float64Array, c, 7).out, first)).toBe(true);
    expect(ctx.helpedChunks).toBe(helped);
  });
});

describe("planChunks", () => {
  it("cuts the longer side of C on whole register tiles, and only large products", () => {
    expect(planChunks(true, 64, 64, 64, 2)).toBeNull();
    expect(64 * 64 * 64).toBeLessThan(TEAM_MIN_WORK);
    expect(planChunks(true, 784, 256, 128, 1)).toBeNull();
    for (const [f64, m, n, k, threads] of [
      [true, 784, 256, 128, 2],
      [true, 128, 256, 784, 2],
      [false, 128, 256, 784, 2],
      [true, 37, 1001, 303, 3],
      [false, 5000, 3, 200, 2],
    ] as [boolean, number, number, number, number][]) {
      const plan = planChunks(f64, m, n, k, threads);
      expect(plan).not.toBeNull();
      if (plan === null) continue;
      expect(plan.byRows).toBe(m >= n);
      const extent = plan.byRows ? m : n;
      const tile = plan.byRows ? 5 : f64 ? 4 : 8;
      expect(plan.step % tile).toBe(0);
      // The chunks cover the extent, the last one possibly short, none empty.
      expect((plan.chunks - 1) * plan.step).toBeLessThan(extent);
      expect(plan.chunks * plan.step).toBeGreaterThanOrEqual(extent);
      expect(plan.chunks).toBeGreaterThanOrEqual(2);
      expect(plan.chunks).toBeLessThanOrEqual(2 * threads);
    }
  });
});
