/**
 * Matrix multiply in plain JavaScript: a naive loop (fastest for tiny products) and a cache-blocked,
 * register-tiled kernel (GotoBLAS/BLIS structure: packed panels, a 4×4 micro-kernel), used where
 * WebAssembly SIMD is unavailable.
 *
 * Both share one strided signature. op(A) is m×k with element (i, p) at a[ao + i·ars + p·acs]; op(B)
 * is k×n with element (p, j) at b[bo + p·brs + j·bcs]; C is m×n with element (i, j) at c[co + i·ldc + j].
 * beta = 0 overwrites C, beta = 1 adds to it. Requires m, n, k ≥ 1.
 *
 * The blocked kernel packs into Float64Array panels whatever the element type, so it computes in
 * double precision and rounds once when it stores into a Float32Array C. Each C element is the sum
 * over p in increasing order (blocks of KC added to C in order), whatever rows are computed with it.
 */
import type { FloatArray } from "./types.js";

export type GemmStrided = (
  m: number,
  n: number,
  k: number,
  a: FloatArray,
  ao: number,
  ars: number,
  acs: number,
  b: FloatArray,
  bo: number,
  brs: number,
  bcs: number,
  c: FloatArray,
  co: number,
  ldc: number,
  beta: number,
) => void;

let rowScratch = new Float64Array(256);

/**
 * Plain loops, for tiny products and matrix–vector shapes. Each C element is the sum over p in
 * increasing order, added to C at the end; the loop order follows the layout: when op(B)'s rows are
 * contiguous (bcs = 1) a row of C is built as a running sum of B's rows (streaming B), otherwise
 * each element is one dot product.
 */
export const gemmNaive: GemmStrided = (m, n, k, a, ao, ars, acs, b, bo, brs, bcs, c, co, ldc, beta) => {
  if (bcs === 1 && n > 1) {
    if (rowScratch.length < n) rowScratch = new Float64Array(Math.max(n, 2 * rowScratch.length));
    const t = rowScratch;
    for (let i = 0; i < m; i++) {
      t.fill(0, 0, n);
      let pa = ao + i * ars;
      let pb = bo;
      for (let p = 0; p < k; p++) {
        const av = a[pa];
        for (let j = 0; j < n; j++) t[j] += av * b[pb + j];
        pa += acs;
        pb += brs;
      }
      const ci = co + i * ldc;
      if (beta) for (let j = 0; j < n; j++) c[ci + j] += t[j];
      else for (let j = 0; j < n; j++) c[ci + j] = t[j];
    }
    return;
  }
  for (let i = 0; i < m; i++) {
    const ai = ao + i * ars;
    const ci = co + i * ldc;
    for (let j = 0; j < n; j++) {
      let s = 0;
      let pa = ai;
      let pb = bo + j * bcs;
      for (let p = 0; p < k; p++) {
        s += a[pa] * b[pb];
        pa += acs;
        pb += brs;
      }
      c[ci + j] = beta ? c[ci + j] + s : s;
    }
  }
};

const MR = 4;
const NR = 4;
const MC = 64;
const KC = 256;
const NC = 1024;

// Per-thread scratch: packed panels and one register tile. Module state, allocated once (~2.2 MB).
let apack: Float64Array | null = null;
let bpack: Float64Array | null = null;
const tile = new Float64Array(MR * NR);

/**
 * Packs rows [0, rows) × depth of a strided matrix into panels of R rows: panel q holds, for each p,
 * the R values src[so + (qR + r)·rs + p·cs], zero-padded past `rows`.
 */
function pack(src: FloatArray, so: number, rs: number, cs: number, rows: number, depth: number, dst: Float64Array, R: number): void {
  let d = 0;
  for (let i = 0; i < rows; i += R) {
    const live = Math.min(rows - i, R);
    const base = so + i * rs;
    for (let p = 0; p < depth; p++) {
      let s = base + p * cs;
      let r = 0;
      for (; r < live; r++, s += rs) dst[d++] = src[s];
      for (; r < R; r++) dst[d++] = 0;
    }
  }
}

/** 4×4 register tile over packed panels: tile[r·4 + q] = Σ_p ap[ao + 4p + r]·bp[bo + 4p + q]. */
function micro4x4(kc: number, ap: Float64Array, ao: number, bp: Float64Array, bo: number, out: Float64Array): void {
  let c00 = 0;
  let c01 = 0;
  let c02 = 0;
  let c03 = 0;
  let c10 = 0;
  let c11 = 0;
  let c12 = 0;
  let c13 = 0;
  let c20 = 0;
  let c21 = 0;
  let c22 = 0;
  let c23 = 0;
  let c30 = 0;
  let c31 = 0;
  let c32 = 0;
  let c33 = 0;
  for (let p = 0; p < kc; p++) {
    const a0 = ap[ao];
    const a1 = ap[ao + 1];
    const a2 = ap[ao + 2];
    const a3 = ap[ao + 3];
    const b0 = bp[bo];
    const b1 = bp[bo + 1];
    const b2 = bp[bo + 2];
    const b3 = bp[bo + 3];
    c00 += a0 * b0;
    c01 += a0 * b1;
    c02 += a0 * b2;
    c03 += a0 * b3;
    c10 += a1 * b0;
    c11 += a1 * b1;
    c12 += a1 * b2;
    c13 += a1 * b3;
    c20 += a2 * b0;
    c21 += a2 * b1;
    c22 += a2 * b2;
    c23 += a2 * b3;
    c30 += a3 * b0;
    c31 += a3 * b1;
    c32 += a3 * b2;
    c33 += a3 * b3;
    ao += 4;
    bo += 4;
  }
  out[0] = c00;
  out[1] = c01;
  out[2] = c02;
  out[3] = c03;
  out[4] = c10;
  out[5] = c11;
  out[6] = c12;
  out[7] = c13;
  out[8] = c20;
  out[9] = c21;
  out[10] = c22;
  out[11] = c23;
  out[12] = c30;
  out[13] = c31;
  out[14] = c32;
  out[15] = c33;
}

function storeTile(t: Float64Array, c: FloatArray, co: number, ldc: number, mr: number, nr: number, beta: number): void {
  for (let r = 0; r < mr; r++) {
    const row = co + r * ldc;
    const tr = r * NR;
    if (beta) for (let q = 0; q < nr; q++) c[row + q] += t[tr + q];
    else for (let q = 0; q < nr; q++) c[row + q] = t[tr + q];
  }
}

/** Cache-blocked, register-tiled multiply (see the file comment). */
export const gemmBlocked: GemmStrided = (m, n, k, a, ao, ars, acs, b, bo, brs, bcs, c, co, ldc, beta) => {
  if (apack === null || bpack === null) {
    apack = new Float64Array(MC * KC);
    bpack = new Float64Array(KC * NC);
  }
  const ap = apack;
  const bp = bpack;
  // Depth blocks of equal size (at most KC), so no tiny last block re-reads C.
  const kcb = Math.ceil(k / Math.ceil(k / KC));
  for (let jc = 0; jc < n; jc += NC) {
    const nc = Math.min(n - jc, NC);
    for (let pc = 0; pc < k; pc += kcb) {
      const kc = Math.min(k - pc, kcb);
      // B's block seen as its transpose: nc rows of depth kc.
      pack(b, bo + pc * brs + jc * bcs, bcs, brs, nc, kc, bp, NR);
      const bt = pc > 0 ? 1 : beta;
      for (let ic = 0; ic < m; ic += MC) {
        const mc = Math.min(m - ic, MC);
        pack(a, ao + ic * ars + pc * acs, ars, acs, mc, kc, ap, MR);
        for (let jr = 0; jr < nc; jr += NR) {
          const nr = Math.min(nc - jr, NR);
          for (let ir = 0; ir < mc; ir += MR) {
            const mr = Math.min(mc - ir, MR);
            micro4x4(kc, ap, ir * kc, bp, jr * kc, tile);
            storeTile(tile, c, co + (ic + ir) * ldc + jc + jr, ldc, mr, nr, bt);
          }
        }
      }
    }
  }
};
