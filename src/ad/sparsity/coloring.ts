import type { SparsityPattern } from "./csr.js";
import { transposePattern } from "./pattern-ops.js";

/** Colours 0 … count − 1, one per column (or row, or vertex). */
export interface Coloring {
  readonly colors: Int32Array;
  readonly count: number;
  /** Set where any two vertices within distance two differ (the cyclic colourings): every entry is then read directly. */
  readonly distanceTwo?: boolean;
}

/**
 * Column colouring for forward mode: columns that share a row get different colours (a distance-2
 * colouring of the bipartite graph), so one JVP per colour recovers every entry. Greedy in
 * largest-first order, as ColPack's default. Loops over the typed arrays directly: at 10⁵ columns
 * a closure or subarray per visit costs more than the colouring.
 */
export function columnColoring(p: SparsityPattern): Coloring {
  const cyclic = cyclicColumns(p);
  if (cyclic !== undefined) return cyclic;
  const t = transposePattern(p);
  const { indptr, indices } = p;
  // A column's conflicts are the other columns of its rows; their count orders it.
  const degrees = new Int32Array(p.cols);
  for (let c = 0; c < p.cols; c++) {
    let d = 0;
    for (let k = t.indptr[c]; k < t.indptr[c + 1]; k++) d += indptr[t.indices[k] + 1] - indptr[t.indices[k]];
    degrees[c] = d;
  }
  const colors = new Int32Array(p.cols).fill(-1);
  const forbidden = new Int32Array(p.cols + 1).fill(-1);
  let count = 0;
  for (const c of byDegree(degrees)) {
    for (let k = t.indptr[c]; k < t.indptr[c + 1]; k++) {
      const r = t.indices[k];
      for (let q = indptr[r]; q < indptr[r + 1]; q++) {
        const other = colors[indices[q]];
        if (other >= 0) forbidden[other] = c;
      }
    }
    let color = 0;
    while (forbidden[color] === c) color++;
    colors[c] = color;
    if (color >= count) count = color + 1;
  }
  return { colors, count };
}

/** Row colouring for reverse mode: rows sharing a column differ, so one VJP per colour suffices. */
export function rowColoring(p: SparsityPattern): Coloring {
  return columnColoring(transposePattern(p));
}

/** Vertices by decreasing degree (ties by index), the largest-first ordering. */
export function largestFirst(n: number, degree: (v: number) => number): Int32Array {
  return byDegree(Int32Array.from({ length: n }, (_, v) => degree(v)));
}

function byDegree(degrees: Int32Array): Int32Array {
  // A counting sort by degree (degrees are small integers): the same order as a comparison sort, in linear time.
  const n = degrees.length;
  let max = 0;
  for (let v = 0; v < n; v++) if (degrees[v] > max) max = degrees[v];
  const start = new Int32Array(max + 2);
  for (let v = 0; v < n; v++) start[max - degrees[v] + 1]++;
  for (let d = 0; d <= max; d++) start[d + 1] += start[d];
  const order = new Int32Array(n);
  for (let v = 0; v < n; v++) order[start[max - degrees[v]]++] = v;
  return order;
}

/**
 * Star colouring of a symmetric pattern (Gebremedhin, Manne, Pothen 2005, Algorithm 4.1): a proper
 * colouring in which every path on four vertices uses at least three colours, so every off-diagonal
 * entry is recovered directly from one Hessian-vector product per colour. The diagonal is ignored.
 */
export function starColoring(p: SparsityPattern): Coloring {
  const cyclic = cyclicStar(p);
  if (cyclic !== undefined) return cyclic;
  const n = p.rows;
  const { indptr } = p;
  const degrees = new Int32Array(n);
  for (let v = 0; v < n; v++) degrees[v] = indptr[v + 1] - indptr[v];
  const colors = new Int32Array(n).fill(-1);
  const forbidden = new Int32Array(n + 1).fill(-1);
  let count = 0;
  for (const v of byDegree(degrees)) {
    for (let k = indptr[v]; k < indptr[v + 1]; k++) {
      const w = p.indices[k];
      if (w === v) continue;
      if (colors[w] >= 0) forbidden[colors[w]] = v;
      forbidDistanceTwo(v, w, p, colors, forbidden);
    }
    let color = 0;
    while (forbidden[color] === v) color++;
    colors[v] = color;
    if (color >= count) count = color + 1;
  }
  return { colors, count };
}

/**
 * Along v – w – x: an uncoloured w forbids x's colour outright (v and x would meet through it); a
 * coloured w forbids x's colour where x already has another neighbour y of w's colour, since
 * v – w – x – y would then be a two-coloured path. A colour already forbidden needs no second look,
 * which keeps the search for y off most paths.
 */
function forbidDistanceTwo(v: number, w: number, p: SparsityPattern, colors: Int32Array, forbidden: Int32Array): void {
  const { indptr, indices } = p;
  const cw = colors[w];
  for (let k = indptr[w]; k < indptr[w + 1]; k++) {
    const x = indices[k];
    const cx = colors[x];
    if (x === v || x === w || cx < 0 || forbidden[cx] === v) continue;
    if (cw < 0) {
      forbidden[cx] = v;
      continue;
    }
    for (let q = indptr[x]; q < indptr[x + 1]; q++) {
      const y = indices[q];
      if (y !== w && y !== x && colors[y] === cw) {
        forbidden[cx] = v;
        break;
      }
    }
  }
}

/**
 * Where every row's columns lie within a window of s consecutive columns, colour j mod s keeps any
 * two columns of a row apart; when some row holds s entries no colouring does with fewer, so this
 * is optimal, and in O(rows) instead of the greedy pass (banded Jacobians, as from index shifts).
 */
function cyclicColumns(p: SparsityPattern): Coloring | undefined {
  const { indptr, indices } = p;
  let span = 0;
  let most = 0;
  for (let r = 0; r < p.rows; r++) {
    const from = indptr[r];
    const to = indptr[r + 1];
    if (to === from) continue;
    span = Math.max(span, indices[to - 1] - indices[from] + 1);
    most = Math.max(most, to - from);
  }
  return most === 0 || span !== most ? undefined : cyclic(p.cols, span);
}

/**
 * The symmetric counterpart, for the tridiagonal case: with every vertex's neighbours within one of
 * it, colour i mod 3 gives any two vertices at distance two different colours (which implies a
 * star colouring), and three colours are the optimum once a path on four vertices exists (two
 * colours would alternate along it). Wider bands go to the greedy colouring, whose optimum is not
 * known in closed form.
 */
function cyclicStar(p: SparsityPattern): Coloring | undefined {
  const { rows: n, indptr, indices } = p;
  let run = 0;
  let path = false;
  for (let i = 0; i < n; i++) {
    const from = indptr[i];
    const to = indptr[i + 1];
    if (to > from && (indices[from] < i - 1 || indices[to - 1] > i + 1)) return undefined;
    // Consecutive edges (i, i + 1): three in a row make a path on four vertices.
    run = to > from && indices[to - 1] === i + 1 ? run + 1 : 0;
    if (run >= 3) path = true;
  }
  return path ? { ...cyclic(n, 3), distanceTwo: true } : undefined;
}

function cyclic(n: number, s: number): Coloring {
  const colors = new Int32Array(n);
  for (let j = 0, c = 0; j < n; j++, c = c + 1 === s ? 0 : c + 1) colors[j] = c;
  return { colors, count: s };
}
