/**
 * A line search satisfying the strong Wolfe conditions, after Moré and Thuente (1994) as MINPACK-2's
 * dcsrch/dcstep implement it. L-BFGS-B's published iterates depend on this exact step choice (its
 * safeguarded cubic and quadratic interpolants), so it follows dcsrch step for step rather than a
 * simpler backtracking rule; matching it keeps our evaluation counts close to scipy's.
 */

/** φ(α) = f(x + α d) and φ'(α) = ∇f(x + α d)·d; NaN or ±Infinity marks a step outside the domain. */
export type LineFunction = (step: number) => { value: number; slope: number };

export interface LineSearchOptions {
  ftol: number;
  gtol: number;
  xtol: number;
  stpmin: number;
  stpmax: number;
  maxEvaluations: number;
}

export interface LineSearchResult {
  /** "ok": the last evaluated step is accepted (converged, or a dcsrch warning such as rounding limits). */
  status: "ok" | "failed" | "non_finite";
  step: number;
  value: number;
  slope: number;
  evaluations: number;
  message: string;
}

/** The bracketing state dcstep updates: the best step so far (x) and the other end of the interval (y). */
interface Bracket {
  stx: number;
  fx: number;
  gx: number;
  sty: number;
  fy: number;
  gy: number;
  brackt: boolean;
}

const XTRAPL = 1.1;
const XTRAPU = 4.0;

export function wolfeSearch(phi: LineFunction, f0: number, g0: number, step: number, o: LineSearchOptions): LineSearchResult {
  const gtest = o.ftol * g0;
  const b: Bracket = { stx: 0, fx: f0, gx: g0, sty: 0, fy: f0, gy: g0, brackt: false };
  let stage = 1;
  let width = o.stpmax - o.stpmin;
  let width1 = width / 0.5;
  let stmin = 0;
  let stmax = step + XTRAPU * step;
  let last = { value: Number.NaN, slope: Number.NaN };
  // The smallest step known to give a non-finite value: later trials stay below it.
  let ceiling = Number.POSITIVE_INFINITY;
  for (let evaluations = 1; evaluations <= o.maxEvaluations; evaluations++) {
    last = phi(step);
    const { value: f, slope: g } = last;
    if (!Number.isFinite(f) || !Number.isFinite(g)) {
      // Outside the function's domain: halve towards the best finite step and never go past this one again.
      ceiling = Math.min(ceiling, step);
      step = b.stx + 0.5 * (step - b.stx);
      if (step <= o.stpmin || step - b.stx <= Number.EPSILON * Math.max(1, b.stx)) break;
      continue;
    }
    const ftest = f0 + step * gtest;
    if (stage === 1 && f <= ftest && g >= 0) stage = 2;
    if (b.brackt && (step <= stmin || step >= stmax)) return accepted(step, f, g, evaluations, "rounding errors prevent progress");
    if (b.brackt && stmax - stmin <= o.xtol * stmax) return accepted(step, f, g, evaluations, "xtol test satisfied");
    if (step === o.stpmax && f <= ftest && g <= gtest) return accepted(step, f, g, evaluations, "step at the upper limit");
    if (step === o.stpmin && (f > ftest || g >= gtest)) return accepted(step, f, g, evaluations, "step at the lower limit");
    if (f <= ftest && Math.abs(g) <= o.gtol * -g0) return accepted(step, f, g, evaluations, "strong Wolfe conditions satisfied");
    if (stage === 1 && f <= b.fx && f > ftest) {
      // The modified function ψ(α) = φ(α) − φ(0) − α·ftol·φ'(0) keeps stage one from stalling (Moré–Thuente §3).
      const m: Bracket = { ...b, fx: b.fx - b.stx * gtest, fy: b.fy - b.sty * gtest, gx: b.gx - gtest, gy: b.gy - gtest };
      const next = dcstep(m, step, f - step * gtest, g - gtest, stmin, stmax);
      Object.assign(b, m, { fx: m.fx + m.stx * gtest, fy: m.fy + m.sty * gtest, gx: m.gx + gtest, gy: m.gy + gtest });
      step = next;
    } else {
      step = dcstep(b, step, f, g, stmin, stmax);
    }
    if (b.brackt) {
      // Force a sufficient shrink of the interval: bisect when the last two steps did not halve it enough.
      if (Math.abs(b.sty - b.stx) >= 0.66 * width1) step = b.stx + 0.5 * (b.sty - b.stx);
      width1 = width;
      width = Math.abs(b.sty - b.stx);
      stmin = Math.min(b.stx, b.sty);
      stmax = Math.max(b.stx, b.sty);
    } else {
      stmin = step + XTRAPL * (step - b.stx);
      stmax = step + XTRAPU * (step - b.stx);
    }
    step = Math.min(Math.max(step, o.stpmin), o.stpmax);
    if ((b.brackt && (step <= stmin || step >= stmax)) || (b.brackt && stmax - stmin <= o.xtol * stmax)) step = b.stx;
    if (step >= ceiling) step = b.stx + 0.5 * (ceiling - b.stx);
  }
  const finite = Number.isFinite(last.value) && Number.isFinite(last.slope);
  return {
    status: finite ? "failed" : "non_finite",
    step,
    value: last.value,
    slope: last.slope,
    evaluations: o.maxEvaluations,
    message: finite
      ? `the line search found no step satisfying the Wolfe conditions in ${o.maxEvaluations} evaluations`
      : "the line search met non-finite values and could not find a finite step",
  };
}

/**
 * The answer for an accepted step. A function of its own rather than a closure in the loop: a closure
 * there would keep step, f and g in a heap context, allocating a boxed number at every update.
 */
function accepted(step: number, value: number, slope: number, evaluations: number, message: string): LineSearchResult {
  return { status: "ok", step, value, slope, evaluations, message };
}

/** Interpolates the next trial step (dcstep's four cases) and updates the bracket in place. */
function dcstep(b: Bracket, stp: number, fp: number, dp: number, stpmin: number, stpmax: number): number {
  const { stx, fx, gx: dx, sty, fy, gy: dy } = b;
  const sgnd = dp * Math.sign(dx);
  let stpf: number;
  if (fp > fx) {
    // Case 1: higher value, the minimum is bracketed; take the cubic step unless it is far from stx.
    const theta = (3 * (fx - fp)) / (stp - stx) + dx + dp;
    const s = Math.max(Math.abs(theta), Math.abs(dx), Math.abs(dp));
    let gamma = s * Math.sqrt((theta / s) ** 2 - (dx / s) * (dp / s));
    if (stp < stx) gamma = -gamma;
    const r = (gamma - dx + theta) / (gamma - dx + gamma + dp);
    const stpc = stx + r * (stp - stx);
    const stpq = stx + (dx / ((fx - fp) / (stp - stx) + dx) / 2) * (stp - stx);
    stpf = Math.abs(stpc - stx) < Math.abs(stpq - stx) ? stpc : stpc + (stpq - stpc) / 2;
    b.brackt = true;
  } else if (sgnd < 0) {
    // Case 2: lower value and the derivatives change sign: bracketed; take the step farther from stp.
    const theta = (3 * (fx - fp)) / (stp - stx) + dx + dp;
    const s = Math.max(Math.abs(theta), Math.abs(dx), Math.abs(dp));
    let gamma = s * Math.sqrt((theta / s) ** 2 - (dx / s) * (dp / s));
    if (stp > stx) gamma = -gamma;
    const r = (gamma - dp + theta) / (gamma - dp + gamma + dx);
    const stpc = stp + r * (stx - stp);
    const stpq = stp + (dp / (dp - dx)) * (stx - stp);
    stpf = Math.abs(stpc - stp) > Math.abs(stpq - stp) ? stpc : stpq;
    b.brackt = true;
  } else if (Math.abs(dp) < Math.abs(dx)) {
    stpf = case3(b, stp, fp, dp, stpmin, stpmax);
  } else if (b.brackt) {
    // Case 4: lower value, same sign, derivative not decreasing: cubic towards sty.
    const theta = (3 * (fp - fy)) / (sty - stp) + dy + dp;
    const s = Math.max(Math.abs(theta), Math.abs(dy), Math.abs(dp));
    let gamma = s * Math.sqrt((theta / s) ** 2 - (dy / s) * (dp / s));
    if (stp > sty) gamma = -gamma;
    const r = (gamma - dp + theta) / (gamma - dp + gamma + dy);
    stpf = stp + r * (sty - stp);
  } else {
    stpf = stp > stx ? stpmax : stpmin;
  }
  if (fp > fx) {
    b.sty = stp;
    b.fy = fp;
    b.gy = dp;
  } else {
    if (sgnd < 0) {
      b.sty = stx;
      b.fy = fx;
      b.gy = dx;
    }
    b.stx = stp;
    b.fx = fp;
    b.gx = dp;
  }
  return stpf;
}

/** Case 3: lower value, same-sign derivative that decreases in magnitude; the cubic may not have a minimiser. */
function case3(b: Bracket, stp: number, fp: number, dp: number, stpmin: number, stpmax: number): number {
  const { stx, fx, gx: dx, sty } = b;
  const theta = (3 * (fx - fp)) / (stp - stx) + dx + dp;
  const s = Math.max(Math.abs(theta), Math.abs(dx), Math.abs(dp));
  // The cubic tends to infinity in the step direction only when gamma would be imaginary: clamp at zero.
  let gamma = s * Math.sqrt(Math.max(0, (theta / s) ** 2 - (dx / s) * (dp / s)));
  if (stp > stx) gamma = -gamma;
  const r = (gamma - dp + theta) / (gamma + (dx - dp) + gamma);
  let stpc: number;
  if (r < 0 && gamma !== 0) stpc = stp + r * (stx - stp);
  else stpc = stp > stx ? stpmax : stpmin;
  const stpq = stp + (dp / (dp - dx)) * (stx - stp);
  if (b.brackt) {
    const stpf = Math.abs(stpc - stp) < Math.abs(stpq - stp) ? stpc : stpq;
    return stp > stx ? Math.min(stp + 0.66 * (sty - stp), stpf) : Math.max(stp + 0.66 * (sty - stp), stpf);
  }
  const stpf = Math.abs(stpc - stp) > Math.abs(stpq - stp) ? stpc : stpq;
  return Math.max(stpmin, Math.min(stpmax, stpf));
}
