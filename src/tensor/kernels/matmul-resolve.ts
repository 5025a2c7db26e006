/** Validation and normalisation of a MatmulSpec into the strided form every backend runs. */
import { checkDim, checkSameType, checkSpan, type FloatArray, KernelArgumentError } from "./types.js";

/**
 * C = op(A)·op(B), or C += op(A)·op(B) with `accumulate`, for one matrix or a batch of them.
 *
 * Storage is row-major. op(A) is m×k: A is stored m×k (row stride lda, default k), or with `transA`
 * k×m (row stride lda, default m). op(B) is k×n: B is stored k×n (ldb, default n) or with `transB` n×k
 * (ldb, default k). C is m×n (ldc, default n). Offsets are in elements from the start of each array,
 * which may itself be a view (subarray) over any buffer, a SharedArrayBuffer included.
 *
 * Batches: `batch` products; product t reads A at aOffset + t·strideA, B at bOffset + t·strideB and
 * writes C at cOffset + t·strideC. Strides default to one whole stored matrix. A stride of 0 broadcasts
 * that operand; strideC = 0 sums the batch into one C (the first product overwrites it unless
 * `accumulate`), which is what the gradient of a broadcast operand needs.
 *
 * Rows: only rows [rowStart, rowEnd) of every C are computed (default all m), reading only those rows
 * of op(A). Several threads may compute disjoint row ranges of the same product over shared buffers;
 * the result is bitwise the same however the rows are split.
 *
 * C must not overlap A or B. All three arrays must have the same element type.
 */
export interface MatmulSpec<T extends FloatArray = FloatArray> {
  /** Rows of op(A) and of C. */
  m: number;
  /** Columns of op(B) and of C. */
  n: number;
  /** Columns of op(A), rows of op(B). */
  k: number;
  a: T;
  aOffset?: number;
  transA?: boolean;
  lda?: number;
  b: T;
  bOffset?: number;
  transB?: boolean;
  ldb?: number;
  c: T;
  cOffset?: number;
  ldc?: number;
  /** Add the product to C instead of overwriting it. */
  accumulate?: boolean;
  batch?: number;
  strideA?: number;
  strideB?: number;
  strideC?: number;
  rowStart?: number;
  rowEnd?: number;
}

/**
 * The product restricted to its row range, in strided form: op(A)[i, p] = a[ao + i·ars + p·acs],
 * op(B)[p, j] = b[bo + p·brs + j·bcs], C[i, j] = c[co + i·ldc + j] for i < rows, plus batch strides and
 * the span (in elements, from the batch's offset) that one batch of each operand occupies.
 */
export interface ResolvedMatmul {
  rows: number;
  n: number;
  k: number;
  batch: number;
  a: FloatArray;
  ao: number;
  ars: number;
  acs: number;
  sa: number;
  aSpan: number;
  b: FloatArray;
  bo: number;
  brs: number;
  bcs: number;
  sb: number;
  bSpan: number;
  c: FloatArray;
  co: number;
  ldc: number;
  sc: number;
  cSpan: number;
  beta: number;
}

function opt(value: number | undefined, fallback: number, name: string, min = 0): number {
  if (value === undefined) return fallback;
  checkDim(value, name, min);
  return value;
}

function rangesOverlap(x: FloatArray, xo: number, xSpan: number, y: FloatArray, yo: number, ySpan: number): boolean {
  if (x.buffer !== y.buffer || xSpan === 0 || ySpan === 0) return false;
  const x0 = x.byteOffset + xo * x.BYTES_PER_ELEMENT;
  const y0 = y.byteOffset + yo * y.BYTES_PER_ELEMENT;
  return x0 < y0 + ySpan * y.BYTES_PER_ELEMENT && y0 < x0 + xSpan * x.BYTES_PER_ELEMENT;
}

export function resolveMatmul(s: MatmulSpec): ResolvedMatmul {
  const { m, n, k, a, b, c } = s;
  checkDim(m, "m");
  checkDim(n, "n");
  checkDim(k, "k");
  checkSameType([a, b, c], "matmul");
  const transA = s.transA === true;
  const transB = s.transB === true;
  const lda = opt(s.lda, transA ? m : k, "lda");
  const ldb = opt(s.ldb, transB ? k : n, "ldb");
  const ldc = opt(s.ldc, n, "ldc");
  if (lda < (transA ? m : k) || ldb < (transB ? k : n) || ldc < n) {
    throw new KernelArgumentError(`matmul: a leading dimension is smaller than its row (lda ${lda}, ldb ${ldb}, ldc ${ldc})`);
  }
  const batch = opt(s.batch, 1, "batch");
  const sa = opt(s.strideA, (transA ? k : m) * lda, "strideA");
  const sb = opt(s.strideB, (transB ? n : k) * ldb, "strideB");
  const sc = opt(s.strideC, m * ldc, "strideC");
  const r0 = opt(s.rowStart, 0, "rowStart");
  const r1 = opt(s.rowEnd, m, "rowEnd");
  if (r0 > r1 || r1 > m) throw new KernelArgumentError(`matmul: row range [${r0}, ${r1}) is not within [0, ${m})`);
  const rows = r1 - r0;
  const ao0 = opt(s.aOffset, 0, "aOffset");
  const bo0 = opt(s.bOffset, 0, "bOffset");
  const co0 = opt(s.cOffset, 0, "cOffset");

  const ao = ao0 + (transA ? r0 : r0 * lda);
  const ars = transA ? 1 : lda;
  const acs = transA ? lda : 1;
  const aSpan = rows === 0 || k === 0 ? 0 : transA ? (k - 1) * lda + rows : (rows - 1) * lda + k;
  const brs = transB ? 1 : ldb;
  const bcs = transB ? ldb : 1;
  const bSpan = n === 0 || k === 0 ? 0 : transB ? (n - 1) * ldb + k : (k - 1) * ldb + n;
  const co = co0 + r0 * ldc;
  const cSpan = rows === 0 || n === 0 ? 0 : (rows - 1) * ldc + n;

  const work = rows * n;
  if (batch > 0 && work > 0) {
    const last = batch - 1;
    if (k > 0) {
      checkSpan(a.length, ao + last * sa, aSpan, "matmul A");
      checkSpan(b.length, bo0 + last * sb, bSpan, "matmul B");
    }
    checkSpan(c.length, co + last * sc, cSpan, "matmul C");
    const cAll = last * sc + cSpan;
    if (
      (k > 0 && rangesOverlap(c, co, cAll, a, ao, last * sa + aSpan)) ||
      (k > 0 && rangesOverlap(c, co, cAll, b, bo0, last * sb + bSpan))
    ) {
      throw new KernelArgumentError("matmul: C overlaps A or B");
    }
  }
  return {
    rows,
    n,
    k,
    batch,
    a,
    ao,
    ars,
    acs,
    sa,
    aSpan,
    b,
    bo: bo0,
    brs,
    bcs,
    sb,
    bSpan,
    c,
    co,
    ldc,
    sc,
    cSpan,
    beta: s.accumulate === true ? 1 : 0,
  };
}
