import { AdjointError } from "../errors.js";
import { cauchyPoint, dotN, projectedGradientNorm } from "./cauchy.js";
import { type LineSearchOptions, type LineSearchResult, wolfeSearch } from "./line-search.js";
import { LbfgsMemory } from "./memory.js";
import { allFinite, dot, nonNegativeInteger, nonNegativeNumber, positiveInteger, Run } from "./run.js";
import { subspaceMinimum } from "./subspace.js";
import type { MinimizeOptions, MinimizeResult, Objective } from "./types.js";
import { UnboundedMemory } from "./unbounded-memory.js";
import { type Box, Workspace } from "./workspace.js";

/** scipy's defaults: factr 1e7 × machine epsilon, pgtol 1e-5, maxiter 15000, m 10. */
const DEFAULTS = { maxIterations: 15000, gtol: 1e-5, ftol: 2.220446049250313e-9, memory: 10 };
const BIG_STEP = 1e10;

/** One run's state: the iterate, its value and gradient, the memory and the preallocated buffers. */
interface State {
  f: Objective;
  box: Box;
  run: Run;
  mem: LbfgsMemory;
  ws: Workspace;
  x: Float64Array;
  g: Float64Array;
  value: number;
  pg: number;
  gtol: number;
  ftol: number;
  maxIterations: number;
  /** The Fortran code's line search: 20 evaluations at most, dcsrch with ftol 1e-3, gtol 0.9, xtol 0.1. */
  search: LineSearchOptions;
  /** φ(α) along the current direction, writing the trial point and gradient into the workspace. */
  phi: (step: number) => { value: number; slope: number };
}

/**
 * L-BFGS-B (Byrd, Lu, Nocedal and Zhu 1995; version 3.0 of Zhu, Byrd, Lu, Nocedal and Morales): each
 * iteration takes the generalised Cauchy point, minimises the model over the variables it leaves free,
 * and searches along the direction to that point for a step meeting the strong Wolfe conditions. It
 * follows the Fortran code's choices (first step, maximal feasible step, curvature skip, restarts after
 * a failed line search) so that its iterates and counts track scipy's `minimize(method="L-BFGS-B")`.
 * All buffers are allocated before the first iteration.
 */
export function lbfgsb(f: Objective, x0: Float64Array, options: MinimizeOptions = {}): MinimizeResult {
  const st = start(f, x0, options);
  const { run, mem } = st;
  if (!allFinite(st.value, st.g)) {
    return run.finish(st.x, st.value, st.pg, "non_finite", "the value or gradient is not finite at the starting point");
  }
  run.progress(st.value, st.pg);
  if (st.pg <= st.gtol) return run.finish(st.x, st.value, st.pg, "converged", "the projected gradient's norm is at most gtol at the start");
  for (;;) {
    const stop = run.interruption();
    if (stop) return run.finish(st.x, st.value, st.pg, stop.status, stop.message);
    if (run.iterations >= st.maxIterations) {
      return run.finish(st.x, st.value, st.pg, "max_iterations", `stopped after ${st.maxIterations} iterations`);
    }
    const slope = direction(st);
    if (!(slope < 0)) {
      // Round-off in the model can yield an ascent direction; the Fortran code then drops its memory.
      if (mem.size === 0)
        return run.finish(st.x, st.value, st.pg, "line_search_failed", "no descent direction from the projected gradient");
      mem.reset();
      continue;
    }
    const ls = lineSearch(st, slope);
    if (ls.status !== "ok") {
      // The Fortran code's recovery: forget the curvature pairs and retry from steepest descent once.
      if (mem.size === 0) {
        return run.finish(st.x, st.value, st.pg, ls.status === "non_finite" ? "non_finite" : "line_search_failed", ls.message);
      }
      mem.reset();
      continue;
    }
    const done = step(st, ls, slope);
    if (done) return done;
  }
}

/** Validates the options, projects the start into the box and evaluates there. */
function start(f: Objective, x0: Float64Array, options: MinimizeOptions): State {
  const n = x0.length;
  const maxIterations = nonNegativeInteger(options.maxIterations ?? DEFAULTS.maxIterations, "maxIterations");
  const gtol = nonNegativeNumber(options.gtol ?? DEFAULTS.gtol, "gtol");
  const ftol = nonNegativeNumber(options.ftol ?? DEFAULTS.ftol, "ftol");
  const memory = positiveInteger(options.memory ?? DEFAULTS.memory, "memory");
  const box = makeBox(n, options.lower, options.upper);
  const run = new Run(options);
  const ws = new Workspace(n, memory);
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.min(box.upper[i], Math.max(box.lower[i], x0[i]));
  const g = new Float64Array(n);
  const value = run.evaluate(f, x, g);
  const line = { value: 0, slope: 0 };
  const { trial, trialGradient, xbar, du: d } = ws;
  const unbounded = !hasBounds(box);
  const phi = (t: number) => {
    if (unbounded) for (let i = 0; i < n; i++) trial[i] = t === 1 ? xbar[i] : x[i] + t * d[i];
    else for (let i = 0; i < n; i++) trial[i] = Math.min(box.upper[i], Math.max(box.lower[i], t === 1 ? xbar[i] : x[i] + t * d[i]));
    line.value = run.evaluate(f, trial, trialGradient);
    line.slope = dot(trialGradient, d);
    return line;
  };
  const search = { ftol: 1e-3, gtol: 0.9, xtol: 0.1, stpmin: 0, stpmax: BIG_STEP, maxEvaluations: 20 };
  const mem = unbounded ? new UnboundedMemory(memory, n) : new LbfgsMemory(memory, n);
  const pg = projectedGradientNorm(x, g, box);
  return { f, box, run, mem, ws, x, g, value, pg, gtol, ftol, maxIterations, search, phi };
}

/**
 * The Cauchy point, the subspace step, and d = x̄ − x in ws.du; returns the slope gᵀd. Without bounds
 * the two land on x − B⁻¹g, which the unbounded memory computes directly, several times cheaper.
 */
function direction(st: State): number {
  const { x, g, box, mem, ws } = st;
  const { xbar, du: d } = ws;
  if (mem instanceof UnboundedMemory) {
    mem.newtonStep(g, d, ws.p, ws.u);
    let slope = 0;
    for (let i = 0; i < x.length; i++) {
      xbar[i] = x[i] + d[i];
      slope += g[i] * d[i];
    }
    return slope;
  }
  cauchyPoint(x, g, box, mem, ws);
  subspaceMinimum(x, g, box, mem, ws);
  for (let i = 0; i < x.length; i++) d[i] = xbar[i] - x[i];
  return dotN(g, d, x.length);
}

function lineSearch(st: State, slope: number): LineSearchResult {
  const initial = st.run.iterations === 0;
  const max = maximalStep(st.x, st.ws.du, st.box, initial);
  const d = st.ws.du;
  const first = initial && !isBoxed(st.box) ? Math.min(1 / Math.sqrt(dot(d, d)), max) : 1;
  st.search.stpmax = max;
  return wolfeSearch(st.phi, st.value, slope, first, st.search);
}

/** Accepts the line search's point, tests convergence and updates the memory; returns the result when done. */
function step(st: State, ls: LineSearchResult, slope: number): MinimizeResult | undefined {
  const { x, g, ws, run } = st;
  const { s, y, trial, trialGradient } = ws;
  for (let i = 0; i < x.length; i++) {
    s[i] = trial[i] - x[i];
    y[i] = trialGradient[i] - g[i];
  }
  const previous = st.value;
  st.value = ls.value;
  x.set(trial);
  g.set(trialGradient);
  run.iterations++;
  st.pg = projectedGradientNorm(x, g, st.box);
  run.progress(st.value, st.pg);
  if (st.pg <= st.gtol) return run.finish(x, st.value, st.pg, "converged", "the projected gradient's norm is at most gtol");
  if (previous - st.value <= st.ftol * Math.max(Math.abs(previous), Math.abs(st.value), 1)) {
    return run.finish(x, st.value, st.pg, "converged", "the relative reduction of the value is at most ftol");
  }
  // Skip a pair whose curvature sᵀy is not safely positive: B would stop being positive definite.
  if (dot(s, y) > Number.EPSILON * -slope * ls.step) st.mem.push(s, y);
  return undefined;
}

/**
 * The Fortran code's maximal step along d: the largest step keeping the bounded variables feasible,
 * and on the very first iteration of a problem with any bound a step of at most 1.
 */
function maximalStep(x: Float64Array, d: Float64Array, box: Box, initial: boolean): number {
  let max = BIG_STEP;
  let constrained = false;
  for (let i = 0; i < x.length; i++) {
    const lo = box.lower[i] > Number.NEGATIVE_INFINITY;
    const hi = box.upper[i] < Number.POSITIVE_INFINITY;
    if (lo || hi) constrained = true;
    if (d[i] < 0 && lo) {
      const room = box.lower[i] - x[i];
      if (room >= 0) max = 0;
      else if (d[i] * max < room) max = room / d[i];
    } else if (d[i] > 0 && hi) {
      const room = box.upper[i] - x[i];
      if (room <= 0) max = 0;
      else if (d[i] * max > room) max = room / d[i];
    }
  }
  return constrained && initial ? 1 : max;
}

function hasBounds(box: Box): boolean {
  for (let i = 0; i < box.lower.length; i++) {
    if (box.lower[i] > Number.NEGATIVE_INFINITY || box.upper[i] < Number.POSITIVE_INFINITY) return true;
  }
  return false;
}

/** True when every variable has both bounds: the first step is then 1 rather than 1/‖d‖ (d = −g carries no curvature). */
function isBoxed(box: Box): boolean {
  for (let i = 0; i < box.lower.length; i++) {
    if (!(box.lower[i] > Number.NEGATIVE_INFINITY && box.upper[i] < Number.POSITIVE_INFINITY)) return false;
  }
  return true;
}

function makeBox(n: number, lower: Float64Array | undefined, upper: Float64Array | undefined): Box {
  const box: Box = {
    lower: lower ? Float64Array.from(lower) : new Float64Array(n).fill(Number.NEGATIVE_INFINITY),
    upper: upper ? Float64Array.from(upper) : new Float64Array(n).fill(Number.POSITIVE_INFINITY),
  };
  if (box.lower.length !== n || box.upper.length !== n) {
    throw new AdjointError("invalid_argument", `bounds must have one entry per variable (${n})`);
  }
  for (let i = 0; i < n; i++) {
    if (Number.isNaN(box.lower[i]) || Number.isNaN(box.upper[i]) || box.lower[i] > box.upper[i]) {
      throw new AdjointError("invalid_argument", `bounds of variable ${i} are not an interval: [${box.lower[i]}, ${box.upper[i]}]`);
    }
  }
  return box;
}
