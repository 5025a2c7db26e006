import type { SparsityPattern } from "./csr.js";

/** The pattern of the transpose. Rows come out sorted since rows are visited in order. */
export function transposePattern(p: SparsityPattern): SparsityPattern {
  const indptr = new Int32Array(p.cols + 1);
  for (let k = 0; k < p.indices.length; k++) indptr[p.indices[k] + 1]++;
  for (let c = 0; c < p.cols; c++) indptr[c + 1] += indptr[c];
  const fill = indptr.slice(0, p.cols);
  const indices = new Int32Array(p.indices.length);
  for (let r = 0; r < p.rows; r++) for (let k = p.indptr[r]; k < p.indptr[r + 1]; k++) indices[fill[p.indices[k]]++] = r;
  return { rows: p.cols, cols: p.rows, indptr, indices };
}

/** Entrywise union of two patterns of one shape (sorted merge per row). */
export function unionPatterns(a: SparsityPattern, b: SparsityPattern): SparsityPattern {
  const indptr = new Int32Array(a.rows + 1);
  const indices = new Int32Array(a.indices.length + b.indices.length);
  let at = 0;
  for (let r = 0; r < a.rows; r++) {
    let i = a.indptr[r];
    let j = b.indptr[r];
    const ie = a.indptr[r + 1];
    const je = b.indptr[r + 1];
    while (i < ie || j < je) {
      const x = i < ie ? a.indices[i] : Number.POSITIVE_INFINITY;
      const y = j < je ? b.indices[j] : Number.POSITIVE_INFINITY;
      const v = Math.min(x, y);
      if (x === v) i++;
      if (y === v) j++;
      indices[at++] = v;
    }
    indptr[r + 1] = at;
  }
  return { rows: a.rows, cols: a.cols, indptr, indices: indices.slice(0, at) };
}

/** The pattern as a dense 0/1 matrix (tests and small answers). */
export function patternEntries(p: SparsityPattern): [number, number][] {
  const out: [number, number][] = [];
  for (let r = 0; r < p.rows; r++) for (let k = p.indptr[r]; k < p.indptr[r + 1]; k++) out.push([r, p.indices[k]]);
  return out;
}
