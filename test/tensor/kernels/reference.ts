/** Naive reference implementations and helpers for the kernel tests (independent of src/). */
import type { FloatArray } from "../../../src/tensor/kernels/index.js";

export type Ctor = Float64ArrayConstructor | Float32ArrayConstructor;

/** Deterministic generator (the workloads' LCG), values uniform in [−1, 1). */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) / 8388608 - 1;
  };
}

export function randomArray(C: Ctor, n: number, next: () => number): FloatArray {
  const a = new C(n);
  for (let i = 0; i < n; i++) a[i] = next();
  return a;
}

/** C[i,j] (+)= Σ_p op(A)[i,p]·op(B)[p,j] in double precision, with explicit strides. */
export function refMatmul(
  m: number,
  n: number,
  k: number,
  a: ArrayLike<number>,
  aAt: (i: number, p: number) => number,
  b: ArrayLike<number>,
  bAt: (p: number, j: number) => number,
  out: (i: number, j: number, v: number) => void,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[aAt(i, p)] * b[bAt(p, j)];
      out(i, j, s);
    }
  }
}

export interface ConvCase {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  KH: number;
  KW: number;
  sh: number;
  sw: number;
  pt: number;
  pb: number;
  pl: number;
  pr: number;
  dh: number;
  dw: number;
}

export function convOut(c: ConvCase): [number, number] {
  return [
    Math.floor((c.H + c.pt + c.pb - c.dh * (c.KH - 1) - 1) / c.sh) + 1,
    Math.floor((c.W + c.pl + c.pr - c.dw * (c.KW - 1) - 1) / c.sw) + 1,
  ];
}

/** Direct 7-loop convolution in double precision. */
export function refConv(c: ConvCase, x: ArrayLike<number>, w: ArrayLike<number>): Float64Array {
  const [OH, OW] = convOut(c);
  const y = new Float64Array(c.N * c.O * OH * OW);
  for (let n = 0; n < c.N; n++)
    for (let o = 0; o < c.O; o++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let s = 0;
          for (let ci = 0; ci < c.C; ci++)
            for (let i = 0; i < c.KH; i++)
              for (let j = 0; j < c.KW; j++) {
                const ih = oh * c.sh - c.pt + i * c.dh;
                const iw = ow * c.sw - c.pl + j * c.dw;
                if (ih < 0 || ih >= c.H || iw < 0 || iw >= c.W) continue;
                s += x[((n * c.C + ci) * c.H + ih) * c.W + iw] * w[((o * c.C + ci) * c.KH + i) * c.KW + j];
              }
          y[((n * c.O + o) * OH + oh) * OW + ow] = s;
        }
  return y;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

/** Largest |a − b| relative to max(1, max |b|). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < b.length; i++) e = Math.max(e, Math.abs(a[i] - b[i]));
  return e / Math.max(1, maxAbs(b));
}
