import { describe, expect, it } from "vitest";
import {
  avgPool2d,
  avgPool2dBackward,
  maxPool2d,
  maxPool2dBackward,
  maxPool2dBackwardFromArgmax,
  type Pool2dGeometry,
  pool2dOutputShape,
} from "../../../src/tensor/kernels/index.js";
import { type Ctor, dot, randomArray, relErr, rng } from "./reference.js";

interface Case {
  N: number;
  C: number;
  H: number;
  W: number;
  KH: number;
  KW: number;
  sh: number;
  sw: number;
  pt: number;
  pb: number;
  pl: number;
  pr: number;
}

const geometry = (c: Case): Pool2dGeometry => ({
  batch: c.N,
  channels: c.C,
  inHeight: c.H,
  inWidth: c.W,
  kernelHeight: c.KH,
  kernelWidth: c.KW,
  strideH: c.sh,
  strideW: c.sw,
  padTop: c.pt,
  padBottom: c.pb,
  padLeft: c.pl,
  padRight: c.pr,
});

const out = (c: Case): [number, number] => [
  Math.floor((c.H + c.pt + c.pb - c.KH) / c.sh) + 1,
  Math.floor((c.W + c.pl + c.pr - c.KW) / c.sw) + 1,
];

/** The window's in-bounds elements in row-major order, as flat indices into x. */
function windowOf(c: Case, plane: number, oh: number, ow: number): number[] {
  const idx: number[] = [];
  for (let i = 0; i < c.KH; i++)
    for (let j = 0; j < c.KW; j++) {
      const ih = oh * c.sh - c.pt + i;
      const iw = ow * c.sw - c.pl + j;
      if (ih >= 0 && ih < c.H && iw >= 0 && iw < c.W) idx.push(plane * c.H * c.W + ih * c.W + iw);
    }
  return idx;
}

const base: Case = { N: 2, C: 3, H: 7, W: 8, KH: 2, KW: 2, sh: 2, sw: 2, pt: 0, pb: 0, pl: 0, pr: 0 };
const cases: [string, Case][] = [
  ["2×2 stride 2", base],
  ["3×3 stride 1 padded", { ...base, KH: 3, KW: 3, sh: 1, sw: 1, pt: 1, pb: 1, pl: 1, pr: 1 }],
  ["3×2 stride 2×1, asymmetric padding", { ...base, KH: 3, KW: 2, sh: 2, sw: 1, pt: 0, pb: 2, pl: 1, pr: 0 }],
  ["overlapping 3×3 stride 2 (ceil mode via padding)", { ...base, KH: 3, KW: 3, pb: 1, pr: 1 }],
  ["global 7×8", { ...base, KH: 7, KW: 8, sh: 1, sw: 1 }],
];

const types: [string, Ctor, number][] = [
  ["float64", Float64Array, 1e-14],
  ["float32", Float32Array, 1e-6],
];

describe("max pooling", () => {
  for (const [tname, C, tol] of types) {
    for (const [name, c] of cases) {
      it(`${tname}: ${name}: forward, argmax and backward against the definition`, () => {
        const g = geometry(c);
        const [OH, OW] = out(c);
        expect(pool2dOutputShape(g)).toEqual({ outHeight: OH, outWidth: OW });
        const next = rng(21);
        const x = randomArray(C, c.N * c.C * c.H * c.W, next);
        // Ties: quantise so that windows often hold equal maxima.
        for (let i = 0; i < x.length; i++) x[i] = Math.round(x[i] * 2);
        const y = new C(c.N * c.C * OH * OW);
        const argmax = new Int32Array(y.length);
        maxPool2d(g, x, y, argmax);
        const dy = randomArray(C, y.length, next);
        const expectedDx = new Float64Array(x.length);
        let o = 0;
        for (let p = 0; p < c.N * c.C; p++)
          for (let oh = 0; oh < OH; oh++)
            for (let ow = 0; ow < OW; ow++, o++) {
              const win = windowOf(c, p, oh, ow);
              let best = win[0];
              for (const i of win) if (x[i] > x[best]) best = i; // first maximum wins
              expect(y[o]).toBe(x[best]);
              expect(argmax[o]).toBe(best - p * c.H * c.W);
              expectedDx[best] += dy[o];
            }
        const dx = new C(x.length).fill(Number.NaN);
        maxPool2dBackward(g, x, dy, dx);
        expect(relErr(dx, expectedDx)).toBeLessThan(tol);
        const dx2 = new C(x.length).fill(Number.NaN);
        maxPool2dBackwardFromArgmax(g, argmax, dy, dx2);
        expect(Array.from(dx2)).toEqual(Array.from(dx));
        maxPool2dBackward(g, x, dy, dx2, { accumulate: true });
        expect(
          relErr(
            dx2,
            expectedDx.map((v) => 2 * v),
          ),
        ).toBeLessThan(tol);
      });
    }
  }

  it("ties go to the first element in row-major window order; NaN propagates", () => {
    const g: Pool2dGeometry = { batch: 1, channels: 1, inHeight: 2, inWidth: 4, kernelHeight: 2, kernelWidth: 2 };
    const x = new Float64Array([1, 5, 2, 2, 5, 5, 2, Number.NaN]);
    const y = new Float64Array(2);
    const argmax = new Int32Array(2);
    maxPool2d(g, x, y, argmax);
    expect(y[0]).toBe(5);
    expect(argmax[0]).toBe(1);
    expect(y[1]).toBeNaN();
    expect(argmax[1]).toBe(7);
    const dx = new Float64Array(8);
    maxPool2dBackward(g, x, new Float64Array([10, 20]), dx);
    expect(Array.from(dx)).toEqual([0, 10, 0, 0, 0, 0, 0, 20]);
  });

  it("float64: backward equals a finite difference of ⟨maxPool(x), g⟩ away from ties", () => {
    const c = cases[1][1];
    const g = geometry(c);
    const [OH, OW] = out(c);
    const next = rng(4);
    const x = randomArray(Float64Array, c.N * c.C * c.H * c.W, next) as Float64Array;
    const dy = randomArray(Float64Array, c.N * c.C * OH * OW, next);
    const dx = new Float64Array(x.length);
    maxPool2dBackward(g, x, dy, dx);
    const y = new Float64Array(dy.length);
    const f = (xx: Float64Array) => {
      maxPool2d(g, xx, y);
      return dot(y, dy);
    };
    const h = 1e-7;
    for (let i = 0; i < x.length; i++) {
      const xp = Float64Array.from(x);
      const xm = Float64Array.from(x);
      xp[i] += h;
      xm[i] -= h;
      expect((f(xp) - f(xm)) / (2 * h)).toBeCloseTo(dx[i], 5);
    }
  });
});

describe("average pooling", () => {
  for (const [tname, C, tol] of types) {
    for (const [name, c] of cases) {
      for (const countIncludePad of [false, true]) {
        it(`${tname}: ${name}, countIncludePad ${countIncludePad}: forward against the definition, backward as its adjoint`, () => {
          const g = geometry(c);
          const [OH, OW] = out(c);
          const next = rng(31);
          const x = randomArray(C, c.N * c.C * c.H * c.W, next);
          const y = new C(c.N * c.C * OH * OW);
          avgPool2d(g, x, y, { countIncludePad });
          const expected = new Float64Array(y.length);
          let o = 0;
          for (let p = 0; p < c.N * c.C; p++)
            for (let oh = 0; oh < OH; oh++)
              for (let ow = 0; ow < OW; ow++, o++) {
                const win = windowOf(c, p, oh, ow);
                let s = 0;
                for (const i of win) s += x[i];
                expected[o] = s / (countIncludePad ? c.KH * c.KW : win.length);
              }
          expect(relErr(y, expected)).toBeLessThan(tol);
          const dy = randomArray(C, y.length, next);
          const dx = new C(x.length).fill(Number.NaN);
          avgPool2dBackward(g, dy, dx, { countIncludePad });
          const lhs = dot(y, dy);
          expect(Math.abs(dot(x, dx) - lhs) / Math.max(1, Math.abs(lhs))).toBeLessThan(tol * 10);
          const acc = C.from(dx);
          avgPool2dBackward(g, dy, acc, { countIncludePad, accumulate: true });
          expect(
            relErr(
              acc,
              Float64Array.from(dx, (v) => 2 * v),
            ),
          ).toBeLessThan(tol);
        });
      }
    }
  }
});
