import { describe, expect, it } from "vitest";
import {
  type Conv2dGeometry,
  conv2d,
  conv2dFilterGrad,
  conv2dInputGrad,
  conv2dOutputShape,
  conv2dWorkspaceSize,
  KernelArgumentError,
} from "../../../src/tensor/kernels/index.js";
import { type ConvCase, type Ctor, convOut, dot, randomArray, refConv, relErr, rng } from "./reference.js";

function geometry(c: ConvCase): Conv2dGeometry {
  return {
    batch: c.N,
    inChannels: c.C,
    inHeight: c.H,
    inWidth: c.W,
    outChannels: c.O,
    kernelHeight: c.KH,
    kernelWidth: c.KW,
    strideH: c.sh,
    strideW: c.sw,
    padTop: c.pt,
    padBottom: c.pb,
    padLeft: c.pl,
    padRight: c.pr,
    dilationH: c.dh,
    dilationW: c.dw,
  };
}

const base: ConvCase = { N: 2, C: 3, H: 7, W: 6, O: 4, KH: 3, KW: 3, sh: 1, sw: 1, pt: 0, pb: 0, pl: 0, pr: 0, dh: 1, dw: 1 };
const cases: [string, ConvCase][] = [
  ["3×3 valid", base],
  ["3×3 same padding", { ...base, pt: 1, pb: 1, pl: 1, pr: 1 }],
  ["asymmetric padding, stride 2", { ...base, H: 9, W: 8, sh: 2, sw: 2, pt: 0, pb: 1, pl: 2, pr: 0 }],
  ["stride 3×2 with a remainder", { ...base, H: 10, W: 9, KH: 2, KW: 4, sh: 3, sw: 2 }],
  ["dilation 2×3", { ...base, H: 9, W: 11, dh: 2, dw: 3, pt: 1, pr: 2 }],
  ["1×1 direct path", { ...base, KH: 1, KW: 1 }],
  ["1×1 with stride (im2col path)", { ...base, KH: 1, KW: 1, sh: 2, sw: 2 }],
  ["kernel larger than the input, padded", { ...base, H: 2, W: 3, KH: 4, KW: 5, pt: 1, pb: 1, pl: 1, pr: 1 }],
  ["one image, one channel, 5×5", { ...base, N: 1, C: 1, O: 1, H: 11, W: 12, KH: 5, KW: 5, pt: 2, pb: 2, pl: 2, pr: 2 }],
  ["wider channels", { ...base, N: 3, C: 9, O: 17, H: 12, W: 10, pt: 1, pb: 1, pl: 1, pr: 1 }],
];

const types: [string, Ctor, number][] = [
  ["float64", Float64Array, 1e-12],
  ["float32", Float32Array, 1e-5],
];

describe("conv2d forward against a direct convolution", () => {
  for (const [tname, C, tol] of types) {
    for (const [name, c] of cases) {
      it(`${tname}: ${name}`, () => {
        const g = geometry(c);
        const [OH, OW] = convOut(c);
        expect(conv2dOutputShape(g)).toEqual({ outHeight: OH, outWidth: OW });
        const next = rng(11);
        const x = randomArray(C, c.N * c.C * c.H * c.W, next);
        const w = randomArray(C, c.O * c.C * c.KH * c.KW, next);
        const expected = refConv(c, x, w);
        for (const backend of ["naive", "js", "wasm", "auto"] as const) {
          const y = new C(expected.length).fill(Number.NaN);
          conv2d(g, x, w, y, { backend });
          expect(relErr(y, expected)).toBeLessThan(tol);
        }
        // With a caller's workspace and accumulate.
        const ws = new C(conv2dWorkspaceSize(g));
        const y = new C(expected.length).fill(1);
        conv2d(g, x, w, y, { workspace: ws, accumulate: true });
        expect(
          relErr(
            y,
            expected.map((v) => v + 1),
          ),
        ).toBeLessThan(tol);
      });
    }
  }
});

describe("conv2d derivatives satisfy the adjoint identity ⟨conv(x, w), g⟩ = ⟨x, ∂x⟩ = ⟨w, ∂w⟩", () => {
  for (const [tname, C, tol] of types) {
    for (const [name, c] of cases) {
      for (const backend of ["js", "wasm"] as const) {
        it(`${tname}, ${backend}: ${name}`, () => {
          const gm = geometry(c);
          const next = rng(5);
          const [OH, OW] = convOut(c);
          const x = randomArray(C, c.N * c.C * c.H * c.W, next);
          const w = randomArray(C, c.O * c.C * c.KH * c.KW, next);
          for (let trial = 0; trial < 2; trial++) {
            const g = randomArray(C, c.N * c.O * OH * OW, next);
            const y = new C(g.length);
            conv2d(gm, x, w, y, { backend: "naive" });
            const dx = new C(x.length).fill(Number.NaN);
            conv2dInputGrad(gm, g, w, dx, { backend });
            const dw = new C(w.length).fill(Number.NaN);
            conv2dFilterGrad(gm, x, g, dw, { backend });
            const lhs = dot(y, g);
            const scale = Math.max(1, Math.abs(lhs), Math.sqrt(g.length * w.length));
            expect(Math.abs(dot(x, dx) - lhs) / scale).toBeLessThan(tol);
            expect(Math.abs(dot(w, dw) - lhs) / scale).toBeLessThan(tol);

            // Accumulating adds exactly one more copy.
            const acc = C.from(dx);
            conv2dInputGrad(gm, g, w, acc, { accumulate: true, backend });
            expect(
              relErr(
                acc,
                Float64Array.from(dx, (v) => 2 * v),
              ),
            ).toBeLessThan(tol);
            const accW = C.from(dw);
            conv2dFilterGrad(gm, x, g, accW, { accumulate: true, backend });
            expect(
              relErr(
                accW,
                Float64Array.from(dw, (v) => 2 * v),
              ),
            ).toBeLessThan(tol * 10);
          }
        });
      }
    }
  }

  it("float64: the input gradient equals a finite difference of ⟨conv(x, w), g⟩ (exact for a linear map)", () => {
    const c = cases[2][1];
    const gm = geometry(c);
    const next = rng(8);
    const [OH, OW] = convOut(c);
    const x = randomArray(Float64Array, c.N * c.C * c.H * c.W, next);
    const w = randomArray(Float64Array, c.O * c.C * c.KH * c.KW, next);
    const g = randomArray(Float64Array, c.N * c.O * OH * OW, next);
    const dx = new Float64Array(x.length);
    conv2dInputGrad(gm, g, w, dx);
    const y = new Float64Array(g.length);
    const f = (xx: Float64Array) => {
      conv2d(gm, xx, w, y);
      return dot(y, g);
    };
    for (let i = 0; i < x.length; i += 7) {
      const xp = Float64Array.from(x);
      const xm = Float64Array.from(x);
      xp[i] += 1e-3;
      xm[i] -= 1e-3;
      expect((f(xp) - f(xm)) / 2e-3).toBeCloseTo(dx[i], 8);
    }
  });
});

describe("conv2d contract", () => {
  it("rejects a kernel that does not fit, short arrays, a short workspace and mixed types", () => {
    const g = geometry(base);
    expect(() => conv2dOutputShape({ ...g, kernelHeight: 9 })).toThrow(KernelArgumentError);
    const x = new Float64Array(2 * 3 * 7 * 6);
    const w = new Float64Array(4 * 3 * 9);
    const y = new Float64Array(2 * 4 * 5 * 4);
    expect(() => conv2d(g, x, w, y.subarray(1))).toThrow(KernelArgumentError);
    expect(() => conv2d(g, x, w, y, { workspace: new Float64Array(3) })).toThrow(KernelArgumentError);
    expect(() => conv2d(g, x, new Float32Array(w.length), y)).toThrow(KernelArgumentError);
    expect(() => conv2d({ ...g, strideH: 0 }, x, w, y)).toThrow(KernelArgumentError);
  });
});
