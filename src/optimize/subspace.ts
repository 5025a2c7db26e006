import { solveInPlace } from "./dense.js";
import type { LbfgsMemory } from "./memory.js";
import type { Box, Workspace } from "./workspace.js";

/**
 * Subspace minimisation (the direct primal method of Byrd, Lu, Nocedal and Zhu, §5.1): minimise the
 * quadratic model over the variables still free at the Cauchy point, the others held at their bounds.
 * With Sherman–Morrison–Woodbury, B̂⁻¹ = I/θ + ZᵀW (M⁻¹ − WᵀZZᵀW/θ)⁻¹ WᵀZ / θ², so only a 2k × 2k
 * symmetric system is solved (by elimination in place, as formk factors its K). Writes x̄, the end of
 * the search direction, into ws.xbar; needs the Cauchy point in ws (xc, c, free).
 */
export function subspaceMinimum(x: Float64Array, g: Float64Array, box: Box, mem: LbfgsMemory, ws: Workspace): void {
  const { xc, c, free, xbar, mc, u, du } = ws;
  const n = x.length;
  const w = 2 * mem.size;
  xbar.set(xc);
  if (w === 0) return;
  const theta = mem.theta;
  // Reduced gradient of the model at x^c: r = Zᵀ(g + θ(x^c − x) − W M c).
  const r = ws.d;
  mem.mv(c, mc);
  for (let i = 0; i < n; i++) r[i] = g[i] + theta * (xc[i] - x[i]);
  mem.addWv(mc, -1, r);
  let anyFree = false;
  for (let i = 0; i < n; i++) {
    if (free[i]) anyFree = true;
    else r[i] = 0;
  }
  if (!anyFree) return;
  mem.wtv(r, u);
  reducedSystem(mem, free, theta, ws);
  solveInPlace(ws.system, u, w);
  for (let i = 0; i < n; i++) du[i] = -r[i] / theta;
  mem.addWv(u, -1 / (theta * theta), du);
  for (let i = 0; i < n; i++) if (!free[i]) du[i] = 0;
  truncate(x, g, box, ws);
}

/**
 * M⁻¹ − WᵀZZᵀW / θ into ws.system. WᵀZZᵀW is WᵀW less the rows of the fixed variables, or the sum
 * over the free ones, whichever set is smaller: with few bounds active that costs O(k²), not O(n k²).
 */
function reducedSystem(mem: LbfgsMemory, free: Uint8Array, theta: number, ws: Workspace): void {
  const w = 2 * mem.size;
  const k = ws.gram;
  const row = ws.wb;
  let fixed = 0;
  for (let i = 0; i < free.length; i++) if (!free[i]) fixed++;
  const fromFixed = fixed <= free.length - fixed;
  if (fromFixed) mem.gram(k);
  else k.fill(0, 0, w * w);
  const sign = fromFixed ? -1 : 1;
  for (let i = 0; i < free.length; i++) {
    if ((free[i] === 1) === fromFixed) continue;
    mem.row(i, row);
    for (let a = 0; a < w; a++) {
      const ra = sign * row[a];
      if (ra === 0) continue;
      for (let b = 0; b < w; b++) k[a * w + b] += ra * row[b];
    }
  }
  const out = ws.system;
  mem.middleInverse(out);
  for (let a = 0; a < w * w; a++) out[a] -= k[a] / theta;
}

/**
 * L-BFGS-B 3.0 (Morales and Nocedal 2011): project x^c + du onto the box; if the projection hits a
 * bound and no longer descends from x, fall back to the largest feasible fraction of du, as 2.x did.
 */
function truncate(x: Float64Array, g: Float64Array, box: Box, ws: Workspace): void {
  const { xc, du, free, xbar } = ws;
  const n = x.length;
  let clipped = false;
  let slope = 0;
  for (let i = 0; i < n; i++) {
    if (free[i]) {
      const t = Math.min(box.upper[i], Math.max(box.lower[i], xc[i] + du[i]));
      if (t === box.lower[i] || t === box.upper[i]) clipped = true;
      xbar[i] = t;
    }
    slope += (xbar[i] - x[i]) * g[i];
  }
  if (!clipped || slope <= 0) return;
  let alpha = 1;
  let hit = -1;
  for (let i = 0; i < n; i++) {
    const dk = du[i];
    if (!free[i] || dk === 0) continue;
    const room = dk < 0 ? box.lower[i] - xc[i] : box.upper[i] - xc[i];
    let limit = alpha;
    if (dk < 0 ? room >= 0 : room <= 0) limit = 0;
    else if (dk < 0 ? dk * alpha < room : dk * alpha > room) limit = room / dk;
    if (limit < alpha) {
      alpha = limit;
      hit = i;
    }
  }
  for (let i = 0; i < n; i++) xbar[i] = free[i] ? xc[i] + alpha * du[i] : xc[i];
  // Land exactly on the bound that stopped the step, so the next Cauchy point sees it as active.
  if (alpha < 1 && hit >= 0) xbar[hit] = du[hit] > 0 ? box.upper[hit] : box.lower[hit];
}
