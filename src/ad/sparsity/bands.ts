import { BudgetExceeded } from "../../ir/budget.js";
import type { OperandMap } from "../../ops/types.js";
import type { SparsityPattern } from "./csr.js";

/**
 * The structured pattern representation: a node's pattern as a few affine bands instead of one
 * index set per element. Elementwise ops, broadcasts, slices, pads, concats and shifts map element
 * r of their output to element c·r + e of an operand on a few row ranges, so bands compose through
 * them symbolically, in time independent of the number of elements; explicit CSR is built once, at
 * the end (or where an op breaks the structure: reductions, matmul, data-dependent gathers).
 */

/** Row r, for lo ≤ r < hi, holds column a·r + b. As an operand map: output r reads operand row a·r + b. */
export interface Band {
  readonly lo: number;
  readonly hi: number;
  readonly a: number;
  readonly b: number;
}

/** A pattern whose row r is the union of the columns of the bands covering r. */
export interface Banded {
  readonly rows: number;
  readonly cols: number;
  readonly bands: readonly Band[];
}

/**
 * Past this many bands a node goes explicit: materialising costs rows × bands, and a pattern that
 * needs this many affine pieces (a 2-D slice has one per row) is no longer small to describe.
 */
export const MAX_BANDS = 64;

export const isBanded = (p: Banded | SparsityPattern): p is Banded => (p as Banded).bands !== undefined;

/** ⌊p / q⌋ in integers; the floating quotient alone can round onto an integer for large operands. */
function floorDiv(p: number, q: number): number {
  if (q < 0) return floorDiv(-p, -q);
  let k = Math.floor(p / q);
  while (k * q > p) k--;
  while ((k + 1) * q <= p) k++;
  return k;
}

const ceilDiv = (p: number, q: number) => -floorDiv(-p, q);

/**
 * An operand map (one operand element or none, -1, per output element) as affine pieces, found by
 * one scan that extends each piece while the step stays the same; undefined for multi-element maps
 * or past `MAX_BANDS` pieces.
 */
export function piecesOf(map: OperandMap, rows: number): Band[] | undefined {
  if (map.indptr !== undefined) return undefined;
  const { rowOf } = map;
  let at = map.indices;
  if (rowOf !== undefined) {
    at = new Int32Array(rows);
    for (let r = 0; r < rows; r++) at[r] = map.indices[rowOf[r]];
  }
  const pieces: Band[] = [];
  let r = 0;
  while (r < rows) {
    const v = at[r];
    if (v < 0) {
      r++;
      continue;
    }
    const a = r + 1 < rows && at[r + 1] >= 0 ? at[r + 1] - v : 0;
    let end = r + 1;
    for (let next = v + a; end < rows && at[end] === next; next += a) end++;
    if (pieces.length === MAX_BANDS) return undefined;
    pieces.push({ lo: r, hi: end, a, b: v - a * r });
    r = end;
  }
  return pieces;
}

/** The bands of y = operand ∘ map: output r reads operand row c·r + e, whose column is a·(c·r + e) + b. */
export function compose(bands: readonly Band[], pieces: readonly Band[], out: Band[]): void {
  for (const { lo: plo, hi: phi, a: c, b: e } of pieces) {
    for (const { lo, hi, a, b } of bands) {
      let from = plo;
      let to = phi;
      // The outputs r whose operand row c·r + e lies in [lo, hi).
      if (c === 0) {
        if (e < lo || e >= hi) continue;
      } else if (c > 0) {
        from = Math.max(from, ceilDiv(lo - e, c));
        to = Math.min(to, floorDiv(hi - 1 - e, c) + 1);
      } else {
        from = Math.max(from, ceilDiv(hi - 1 - e, c));
        to = Math.min(to, floorDiv(lo - e, c) + 1);
      }
      if (from < to) out.push({ lo: from, hi: to, a: a * c, b: a * e + b });
    }
  }
}

/** Bands of one line (a, b) merged where their ranges meet: the same union in fewer bands. */
export function mergeBands(bands: Band[]): Band[] {
  bands.sort((x, y) => x.a - y.a || x.b - y.b || x.lo - y.lo);
  const out: Band[] = [];
  for (const band of bands) {
    const last = out[out.length - 1];
    if (last !== undefined && last.a === band.a && last.b === band.b && band.lo <= last.hi) {
      if (band.hi > last.hi) out[out.length - 1] = { ...last, hi: band.hi };
    } else out.push(band);
  }
  return out;
}

/**
 * The transpose, where every band is a diagonal or an anti-diagonal (|a| = 1, which is what index
 * shifts give): row s of the transpose holds column r exactly where row r holds column s. Other
 * slopes map a row to several columns or none, so they are left to the explicit transpose.
 */
export function transposeBands(p: Banded): Banded | undefined {
  const bands: Band[] = [];
  for (const { lo, hi, a, b } of p.bands) {
    if (a === 1) bands.push({ lo: lo + b, hi: hi + b, a: 1, b: -b });
    else if (a === -1) bands.push({ lo: b - hi + 1, hi: b - lo + 1, a: -1, b });
    else return undefined;
  }
  return { rows: p.cols, cols: p.rows, bands };
}

/**
 * CSR in O(rows + entries): each band writes its column into its rows' slots, then each short row
 * is sorted and its duplicates (two bands meeting in one entry) dropped.
 */
export function materialize(p: Banded, maxEntries: number): SparsityPattern {
  const { rows, bands } = p;
  if (bands.every((band) => band.a === bands[0].a) && sortedByOffset(bands)) return materializeSorted(p, maxEntries);
  const start = new Int32Array(rows + 1);
  for (const { lo, hi } of bands) {
    start[lo + 1]++;
    if (hi < rows) start[hi + 1]--;
  }
  // Band counts per row (a difference array), then their prefix sums: where each row's slots begin.
  for (let r = 1; r <= rows; r++) start[r] += start[r - 1];
  for (let r = 1; r <= rows; r++) start[r] += start[r - 1];
  const buffer = new Int32Array(start[rows]);
  const fill = start.slice(0, rows);
  for (const { lo, hi, a, b } of bands) for (let r = lo; r < hi; r++) buffer[fill[r]++] = a * r + b;
  const indptr = new Int32Array(rows + 1);
  let at = 0;
  for (let r = 0; r < rows; r++) {
    const to = start[r + 1];
    for (let i = start[r]; i < to; i++) {
      // Insertion into the row written so far (rows hold a few entries), skipping repeats.
      const v = buffer[i];
      const first = indptr[r];
      let j = at - 1;
      while (j >= first && buffer[j] > v) j--;
      if (j >= first && buffer[j] === v) continue;
      for (let k = at; k > j + 1; k--) buffer[k] = buffer[k - 1];
      buffer[j + 1] = v;
      at++;
    }
    indptr[r + 1] = at;
  }
  if (at > maxEntries) tooDense(maxEntries);
  return { rows, cols: p.cols, indptr, indices: buffer.slice(0, at) };
}

/**
 * One slope for all (index shifts): bands in order of offset give each row's columns in order, and
 * merged bands of one line cover disjoint rows, so rows are written once, in place, sorted and free
 * of repeats, with no sorting pass.
 */
function materializeSorted(p: Banded, maxEntries: number): SparsityPattern {
  const { rows, bands } = p;
  const total = bands.reduce((n, band) => n + band.hi - band.lo, 0);
  if (total > maxEntries) tooDense(maxEntries);
  const lo = Int32Array.from(bands, (band) => band.lo);
  const hi = Int32Array.from(bands, (band) => band.hi);
  const b = Int32Array.from(bands, (band) => band.b);
  const a = bands.length === 0 ? 0 : bands[0].a;
  const indptr = new Int32Array(rows + 1);
  const indices = new Int32Array(total);
  let at = 0;
  for (let r = 0; r < rows; r++) {
    for (let t = 0; t < lo.length; t++) if (r >= lo[t] && r < hi[t]) indices[at++] = a * r + b[t];
    indptr[r + 1] = at;
  }
  return { rows, cols: p.cols, indptr, indices };
}

function sortedByOffset(bands: readonly Band[]): boolean {
  for (let k = 1; k < bands.length; k++) if (bands[k].b < bands[k - 1].b) return false;
  return true;
}

function tooDense(maxEntries: number): never {
  throw new BudgetExceeded(
    `the sparsity pattern of one node would hold more than ${maxEntries} index entries; the derivative is too dense for a sparse answer`,
    false,
  );
}

/** Banded patterns one above the other (row offset R turns a·r + b into a·(r − R) + b), where all are banded. */
export function stackBanded(parts: readonly (Banded | SparsityPattern)[], cols: number): Banded | undefined {
  const bands: Band[] = [];
  let offset = 0;
  for (const p of parts) {
    if (!isBanded(p)) return undefined;
    for (const { lo, hi, a, b } of p.bands) bands.push({ lo: lo + offset, hi: hi + offset, a, b: b - a * offset });
    offset += p.rows;
  }
  return { rows: offset, cols, bands };
}
