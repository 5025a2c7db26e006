import type { Coloring } from "./coloring.js";
import type { SparsityPattern } from "./csr.js";

/** A sparse derivative in compressed sparse row form. */
export interface CsrMatrix {
  readonly format: "csr";
  readonly shape: [number, number];
  readonly indptr: Int32Array;
  readonly indices: Int32Array;
  readonly data: Float64Array;
}

/** The seed matrix, colours × n row-major: S[c][j] = 1 where j has colour c. Its rows are the JVP (or VJP, HVP) directions. */
export function seedMatrix(coloring: Coloring): Float64Array {
  const n = coloring.colors.length;
  const seed = new Float64Array(coloring.count * n);
  coloring.colors.forEach((c, j) => {
    seed[c * n + j] = 1;
  });
  return seed;
}

/**
 * From one JVP per column colour, J·S[c] laid end to end (colour c's product at c·rows), the
 * Jacobian: J[i][j] is entry i of the product for j's colour, the only column of that colour in row i.
 */
export function decompressColumns(p: SparsityPattern, coloring: Coloring, products: Float64Array): CsrMatrix {
  return csr(p, gatherData(columnGather(p, coloring), products));
}

/** From one VJP per row colour, S[c]ᵀ·J laid end to end (colour c's at c·cols), the Jacobian. */
export function decompressRows(p: SparsityPattern, coloring: Coloring, products: Float64Array): CsrMatrix {
  return csr(p, gatherData(rowGather(p, coloring), products));
}

/** From one HVP per star colour (colour c's at c·n), the Hessian (see starGather). */
export function decompressStar(p: SparsityPattern, coloring: Coloring, products: Float64Array): CsrMatrix {
  return csr(p, gatherData(starGather(p, coloring), products));
}

/** For every stored entry of a column-coloured Jacobian, its element of the products. */
export function columnGather(p: SparsityPattern, { colors }: Coloring): Int32Array {
  const { rows, indptr, indices } = p;
  const gather = new Int32Array(indices.length);
  for (let i = 0; i < rows; i++) for (let k = indptr[i]; k < indptr[i + 1]; k++) gather[k] = colors[indices[k]] * rows + i;
  return gather;
}

/** For every stored entry of a row-coloured Jacobian, its element of the products. */
export function rowGather(p: SparsityPattern, { colors }: Coloring): Int32Array {
  const gather = new Int32Array(p.indices.length);
  for (let i = 0; i < p.rows; i++) {
    const base = colors[i] * p.cols;
    for (let k = p.indptr[i]; k < p.indptr[i + 1]; k++) gather[k] = base + p.indices[k];
  }
  return gather;
}

/**
 * Direct recovery from a star colouring: H[i][j] is entry i of j's colour's product when j is the
 * only neighbour of i with that colour, and otherwise entry j of i's colour's product, which the
 * star condition makes unique.
 */
export function starGather(p: SparsityPattern, coloring: Coloring): Int32Array {
  // Neighbours of one vertex all differ in colour: each entry comes from its column's colour, as for a Jacobian.
  if (coloring.distanceTwo) return columnGather(p, coloring);
  const { colors, count } = coloring;
  const { rows: n, indptr, indices } = p;
  const gather = new Int32Array(indices.length);
  const seen = new Int32Array(count);
  for (let i = 0; i < n; i++) {
    const from = indptr[i];
    const to = indptr[i + 1];
    for (let k = from; k < to; k++) seen[colors[indices[k]]]++;
    const own = colors[i] * n;
    for (let k = from; k < to; k++) {
      const j = indices[k];
      const c = colors[j];
      gather[k] = seen[c] === 1 ? c * n + i : own + j;
    }
    // Cleared entry by entry: a row touches few of the colours.
    for (let k = from; k < to; k++) seen[colors[indices[k]]] = 0;
  }
  return gather;
}

function gatherData(gather: Int32Array, products: Float64Array): Float64Array {
  const data = new Float64Array(gather.length);
  for (let k = 0; k < gather.length; k++) data[k] = products[gather[k]];
  return data;
}

function csr(p: SparsityPattern, data: Float64Array): CsrMatrix {
  return { format: "csr", shape: [p.rows, p.cols], indptr: p.indptr, indices: p.indices, data };
}
