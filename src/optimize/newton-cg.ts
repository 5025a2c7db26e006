import { wolfeSearch } from "./line-search.js";
import { dot, infNorm, nonNegativeInteger, nonNegativeNumber, Run } from "./run.js";
import type { HessianVectorProduct, MinimizeOptions, MinimizeResult, Objective } from "./types.js";

/**
 * Iterations default to min(200·n, 15000): scipy's 200·n, capped at L-BFGS-B's default so a model with
 * millions of parameters is bounded by the time limit rather than an unreachable count.
 */
const MAX_ITERATIONS_PER_VARIABLE = 200;
const MAX_ITERATIONS_CAP = 15000;
/** scipy's line_search_wolfe1: dcsrch with c1 1e-4, c2 0.9, steps up to 50. */
const LINE_SEARCH = { ftol: 1e-4, gtol: 0.9, xtol: 1e-14, stpmin: 0, stpmax: 50, maxEvaluations: 30 };

/**
 * Truncated Newton (Newton-CG, as scipy's `minimize(method="Newton-CG")`): each step solves
 * ∇²f p = −∇f by conjugate gradients on exact Hessian-vector products, stopped early by the
 * forcing term min(0.5, √‖g‖₁)·‖g‖₁ so that steps far from the minimum stay cheap, then takes a
 * strong-Wolfe line search along p. No Hessian is ever formed.
 */
export function newtonCg(f: Objective, hvp: HessianVectorProduct, x0: Float64Array, options: MinimizeOptions = {}): MinimizeResult {
  const n = x0.length;
  const maxIterations = nonNegativeInteger(
    options.maxIterations ?? Math.min(MAX_ITERATIONS_PER_VARIABLE * n, MAX_ITERATIONS_CAP),
    "maxIterations",
  );
  const gtol = nonNegativeNumber(options.gtol ?? 1e-5, "gtol");
  const run = new Run(options);
  const first = run.begin(f, x0);
  if (first.refused) return first.refused;
  const { x, g } = first;
  let { value, norm } = first;
  run.progress(value, norm);
  if (norm <= gtol) return run.finish(x, value, norm, "converged", "the gradient's norm is at most gtol at the start");
  const trial = new Float64Array(n);
  const trialGradient = new Float64Array(n);
  for (;;) {
    const stop = run.interruption();
    if (stop) return run.finish(x, value, norm, stop.status, stop.message);
    if (run.iterations >= maxIterations) return run.finish(x, value, norm, "max_iterations", `stopped after ${maxIterations} iterations`);
    const p = newtonDirection(hvp, x, g, run);
    if (p === undefined) return run.finish(x, value, norm, "non_finite", "a Hessian-vector product is not finite");
    const slope = dot(g, p);
    const phi = (step: number) => {
      for (let i = 0; i < n; i++) trial[i] = x[i] + step * p[i];
      const v = run.evaluate(f, trial, trialGradient);
      return { value: v, slope: dot(trialGradient, p) };
    };
    const ls = wolfeSearch(phi, value, slope, 1, LINE_SEARCH);
    if (ls.status !== "ok") return run.finish(x, value, norm, ls.status === "non_finite" ? "non_finite" : "line_search_failed", ls.message);
    value = ls.value;
    x.set(trial);
    g.set(trialGradient);
    norm = infNorm(g);
    run.iterations++;
    run.progress(value, norm);
    if (norm <= gtol) return run.finish(x, value, norm, "converged", "the gradient's norm is at most gtol");
  }
}

/**
 * Conjugate gradients on H p = −g from p = 0. On negative curvature it stops with the iterate so far,
 * or on the first CG step with steepest descent scaled by the curvature, so p is always a descent direction.
 */
function newtonDirection(hvp: HessianVectorProduct, x: Float64Array, g: Float64Array, run: Run): Float64Array | undefined {
  const n = x.length;
  let l1 = 0;
  for (let i = 0; i < n; i++) l1 += Math.abs(g[i]);
  const tolerance = Math.min(0.5, Math.sqrt(l1)) * l1;
  const p = new Float64Array(n);
  const r = Float64Array.from(g);
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = -r[i];
  const hd = new Float64Array(n);
  let rr = dot(r, r);
  for (let k = 0; k < 20 * n; k++) {
    let rl1 = 0;
    for (let i = 0; i < n; i++) rl1 += Math.abs(r[i]);
    if (rl1 <= tolerance) break;
    hvp(x, d, hd);
    run.hvps++;
    const curvature = dot(d, hd);
    if (!Number.isFinite(curvature)) return undefined;
    if (curvature >= 0 && curvature <= 3 * Number.EPSILON) break;
    if (curvature < 0) {
      if (k === 0) for (let i = 0; i < n; i++) p[i] = (rr / -curvature) * d[i];
      break;
    }
    const alpha = rr / curvature;
    for (let i = 0; i < n; i++) {
      p[i] += alpha * d[i];
      r[i] += alpha * hd[i];
    }
    const next = dot(r, r);
    const beta = next / rr;
    rr = next;
    for (let i = 0; i < n; i++) d[i] = -r[i] + beta * d[i];
  }
  // A zero direction (curvature ≈ 0 at once) would stall the line search: fall back to steepest descent.
  if (infNorm(p) === 0) for (let i = 0; i < n; i++) p[i] = -g[i];
  return p;
}
