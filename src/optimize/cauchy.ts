import type { LbfgsMemory } from "./memory.js";
import type { Box, Workspace } from "./workspace.js";

export type { Box } from "./workspace.js";

/**
 * The generalised Cauchy point (Byrd, Lu, Nocedal and Zhu 1995, Algorithm CP): the first local
 * minimiser of the quadratic model along the projected steepest-descent path x(t) = P(x − t g). The
 * path bends at each variable's breakpoint, where that variable reaches its bound; the model's first
 * and second derivatives along each segment are updated in O(k²) per breakpoint from the compact form.
 * Breakpoints come off a heap as the Fortran code's dcauchy takes them, so only those passed are sorted.
 * Writes x^c, Wᵀ(x^c − x) and the free set into the workspace.
 */
export function cauchyPoint(x: Float64Array, g: Float64Array, box: Box, mem: LbfgsMemory, ws: Workspace): void {
  const n = x.length;
  const w = 2 * mem.size;
  const { xc, free, d, times, heap, c, p, mp, mc, wb } = ws;
  xc.set(x);
  let count = 0;
  for (let i = 0; i < n; i++) {
    const t = breakpoint(x[i], g[i], box.lower[i], box.upper[i]);
    times[i] = t;
    free[i] = 0;
    d[i] = 0;
    if (t === 0) continue; // already at the bound it moves towards: fixed for this iteration
    d[i] = -g[i];
    free[i] = 1;
    if (t < Number.POSITIVE_INFINITY) heap[count++] = i;
  }
  for (let i = (count >> 1) - 1; i >= 0; i--) siftDown(heap, count, i, times);
  mem.wtv(d, p);
  c.fill(0, 0, w);
  let f1 = -dotN(d, d, n);
  if (f1 === 0) return;
  mem.mv(p, mp);
  let f2 = -mem.theta * f1 - dotN(p, mp, w);
  // dcauchy's guard: round-off must not let the curvature along later segments fall to zero or below.
  const f2Floor = Number.EPSILON * f2;
  let dtMin = -f1 / f2;
  let tOld = 0;
  while (count > 0) {
    const b = heap[0];
    const dt = times[b] - tOld;
    if (dtMin < dt) break;
    heap[0] = heap[--count];
    siftDown(heap, count, 0, times);
    // The model still decreases past this breakpoint: fix variable b at its bound and bend the path.
    const gb = g[b];
    const bound = d[b] > 0 ? box.upper[b] : box.lower[b];
    const zb = bound - x[b];
    xc[b] = bound;
    free[b] = 0;
    for (let j = 0; j < w; j++) c[j] += dt * p[j];
    mem.row(b, wb);
    mem.mv(c, mc);
    mem.mv(p, mp);
    f1 += dt * f2 + gb * gb + mem.theta * gb * zb - gb * dotN(wb, mc, w);
    f2 -= mem.theta * gb * gb + 2 * gb * dotN(wb, mp, w) + gb * gb * mem.quadraticForm(wb, mc);
    f2 = Math.max(f2, f2Floor);
    for (let j = 0; j < w; j++) p[j] += gb * wb[j];
    d[b] = 0;
    tOld = times[b];
    dtMin = -f1 / f2;
    if (f1 >= 0) {
      dtMin = 0;
      break;
    }
  }
  dtMin = Math.max(dtMin, 0);
  tOld += dtMin;
  for (let i = 0; i < n; i++) if (d[i] !== 0) xc[i] = x[i] + tOld * d[i];
  for (let j = 0; j < w; j++) c[j] += dtMin * p[j];
}

/** Restores the heap order (smallest time first, ties by index) below position i. */
function siftDown(heap: Int32Array, count: number, i: number, times: Float64Array): void {
  const item = heap[i];
  for (;;) {
    let child = 2 * i + 1;
    if (child >= count) break;
    if (child + 1 < count && before(heap[child + 1], heap[child], times)) child++;
    if (!before(heap[child], item, times)) break;
    heap[i] = heap[child];
    i = child;
  }
  heap[i] = item;
}

function before(a: number, b: number, times: Float64Array): boolean {
  return times[a] < times[b] || (times[a] === times[b] && a < b);
}

/** The step t at which x − t g reaches the bound it moves towards (0 if already there, ∞ if none). */
function breakpoint(x: number, g: number, lower: number, upper: number): number {
  if (g < 0 && upper < Number.POSITIVE_INFINITY) return (x - upper) / g;
  if (g > 0 && lower > Number.NEGATIVE_INFINITY) return (x - lower) / g;
  return g === 0 && lower === upper ? 0 : Number.POSITIVE_INFINITY;
}

export function dotN(a: Float64Array, b: Float64Array, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

/** Infinity norm of the projected gradient P(x − g) − x, L-BFGS-B's stationarity measure. */
export function projectedGradientNorm(x: Float64Array, g: Float64Array, box: Box): number {
  let norm = 0;
  for (let i = 0; i < x.length; i++) {
    let gi = g[i];
    if (gi < 0) gi = Math.max(x[i] - box.upper[i], gi);
    else gi = Math.min(x[i] - box.lower[i], gi);
    const a = Math.abs(gi);
    if (!(a <= norm)) norm = a;
  }
  return norm;
}
