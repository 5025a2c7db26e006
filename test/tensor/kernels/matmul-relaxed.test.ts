import { describe, expect, it } from "vitest";
import {
  chooseWasmKernel,
  type FloatArray,
  gemmModuleOf,
  RELAXED_SIMD_BY_DEFAULT,
  RELAXED_SIMD_ENV,
  relaxedSimdSupported,
  WasmGemm,
  type WasmKernelKind,
  wasmKernelKind,
} from "../../../src/tensor/kernels/index.js";
import { resolveMatmul } from "../../../src/tensor/kernels/matmul-resolve.js";
import { type Ctor, randomArray, refMatmul, relErr, rng } from "./reference.js";

const nodeMajor = Number(process.versions.node.split(".")[0]);
const relaxed = relaxedSimdSupported();
const skipNote = relaxed ? "" : ` (skipped: ${process.version} does not validate relaxed SIMD)`;
if (!relaxed) console.info(`relaxed-SIMD kernel tests skipped: ${process.version} does not validate the relaxed module`);

describe("choosing the WebAssembly kernel build", () => {
  it("feature detection: Node 20 rejects the relaxed module, Node ≥ 24 accepts it; SIMD128 validates everywhere", () => {
    expect(gemmModuleOf("simd128")).not.toBeNull();
    if (nodeMajor === 20) expect(relaxed).toBe(false);
    if (nodeMajor >= 24) expect(relaxed).toBe(true);
  });

  it("the setting: '1' asks for relaxed, '0' refuses it, anything else takes the default; unsupported falls back", () => {
    const yes = () => true;
    const no = () => false;
    expect(chooseWasmKernel("1", yes)).toBe("relaxed-simd");
    expect(chooseWasmKernel("1", no)).toBe("simd128");
    expect(chooseWasmKernel("0", yes)).toBe("simd128");
    for (const unset of [undefined, "", "auto"]) {
      expect(chooseWasmKernel(unset, yes, true)).toBe("relaxed-simd");
      expect(chooseWasmKernel(unset, no, true)).toBe("simd128");
      expect(chooseWasmKernel(unset, yes, false)).toBe("simd128");
    }
    expect(chooseWasmKernel(undefined, yes)).toBe(RELAXED_SIMD_BY_DEFAULT ? "relaxed-simd" : "simd128");
  });

  it("does not compile the relaxed module when the setting or the default rules it out", () => {
    const probe = () => {
      throw new Error("feature detection should not run");
    };
    expect(chooseWasmKernel("0", probe)).toBe("simd128");
    expect(chooseWasmKernel(undefined, probe, false)).toBe("simd128");
  });

  it("this thread's choice follows the environment and the engine", () => {
    const expected = chooseWasmKernel(process.env[RELAXED_SIMD_ENV]?.trim(), () => relaxed);
    expect(wasmKernelKind()).toBe(expected);
  });
});

const types: [string, Ctor, number][] = [
  // Per unit of k, relative to max |C| (as in matmul.test.ts).
  ["float64", Float64Array, 1e-15],
  ["float32", Float32Array, 1e-7],
];

function runOn(
  ctx: WasmGemm,
  C: Ctor,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  a: FloatArray,
  b: FloatArray,
  c0: FloatArray,
  accumulate: boolean,
  rows?: [number, number],
): FloatArray {
  const c = new C(c0);
  ctx.run(resolveMatmul({ m, n, k, a, b, c, transA, transB, accumulate, rowStart: rows?.[0], rowEnd: rows?.[1] }));
  return c;
}

describe("relaxed SIMD, SIMD128 and the JavaScript reference agree", () => {
  const contexts = new Map<WasmKernelKind, WasmGemm>();
  const context = (kind: WasmKernelKind): WasmGemm => {
    let ctx = contexts.get(kind);
    if (!ctx) contexts.set(kind, (ctx = new WasmGemm(gemmModuleOf(kind))));
    return ctx;
  };

  for (const [name, C, tol] of types) {
    it.skipIf(!relaxed)(`${name}: random shapes and layouts, within ${tol}·k of max |C|${skipNote}`, () => {
      const next = rng(777);
      const size = (max: number) => 1 + Math.floor(((next() + 1) / 2) * max);
      for (let trial = 0; trial < 24; trial++) {
        const m = size(trial < 12 ? 20 : 140);
        const n = size(trial < 12 ? 20 : 140);
        const k = size(trial < 12 ? 20 : 600);
        const transA = trial % 2 === 1;
        const transB = trial % 4 >= 2;
        const accumulate = trial % 3 === 0;
        const a = randomArray(C, m * k, next);
        const b = randomArray(C, k * n, next);
        const c0 = randomArray(C, m * n, next);
        const simd = runOn(context("simd128"), C, m, n, k, transA, transB, a, b, c0, accumulate);
        const fma = runOn(context("relaxed-simd"), C, m, n, k, transA, transB, a, b, c0, accumulate);
        const expected = Float64Array.from(c0, (v) => (accumulate ? v : 0));
        refMatmul(
          m,
          n,
          k,
          a,
          (i, p) => (transA ? p * m + i : i * k + p),
          b,
          (p, j) => (transB ? j * k + p : p * n + j),
          (i, j, v) => {
            expected[i * n + j] += v;
          },
        );
        const bound = tol * Math.max(4, k);
        expect(relErr(fma, expected)).toBeLessThan(bound);
        expect(relErr(simd, expected)).toBeLessThan(bound);
        expect(relErr(fma, Float64Array.from(simd))).toBeLessThan(2 * bound);
      }
    });

    it.skipIf(!relaxed)(`${name}: the relaxed build is deterministic and row splits equal a whole run bit for bit${skipNote}`, () => {
      const next = rng(99);
      const [m, n, k] = [67, 45, 300];
      const a = randomArray(C, m * k, next);
      const b = randomArray(C, k * n, next);
      const c0 = new C(m * n);
      const ctx = context("relaxed-simd");
      const whole = runOn(ctx, C, m, n, k, false, true, a, b, c0, false);
      expect(Array.from(runOn(new WasmGemm(gemmModuleOf("relaxed-simd")), C, m, n, k, false, true, a, b, c0, false))).toEqual(
        Array.from(whole),
      );
      const split = new C(m * n);
      for (const [r0, r1] of [
        [0, 13],
        [13, 40],
        [40, 67],
      ] as const) {
        const part = runOn(ctx, C, m, n, k, false, true, a, b, split, false, [r0, r1]);
        split.set(part.subarray(r0 * n, r1 * n), r0 * n);
      }
      expect(Array.from(split)).toEqual(Array.from(whole));
    });
  }
});
