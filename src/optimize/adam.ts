import { AdjointError } from "../errors.js";
import { allFinite, infNorm, nonNegativeInteger, nonNegativeNumber, positiveNumber, Run } from "./run.js";
import type { MinimizeOptions, MinimizeResult, Objective } from "./types.js";

const DEFAULTS = { maxIterations: 1000, gtol: 1e-5, learningRate: 1e-3, beta1: 0.9, beta2: 0.999, epsilon: 1e-8 };

/**
 * Full-batch Adam (Kingma and Ba 2015, with bias correction). It is not a descent method, so the result
 * is the last iterate rather than the best one seen: that is what a training loop returns, and what a
 * hand-written Adam over the same gradients reproduces step for step. Iteration k evaluates x_k once.
 */
export function adam(f: Objective, x0: Float64Array, options: MinimizeOptions = {}): MinimizeResult {
  const n = x0.length;
  const maxIterations = nonNegativeInteger(options.maxIterations ?? DEFAULTS.maxIterations, "maxIterations");
  const gtol = nonNegativeNumber(options.gtol ?? DEFAULTS.gtol, "gtol");
  const rate = positiveNumber(options.learningRate ?? DEFAULTS.learningRate, "learningRate");
  const beta1 = options.beta1 ?? DEFAULTS.beta1;
  const beta2 = options.beta2 ?? DEFAULTS.beta2;
  for (const [name, b] of [
    ["beta1", beta1],
    ["beta2", beta2],
  ] as const) {
    if (!(b >= 0 && b < 1)) throw new AdjointError("invalid_argument", `${name} must lie in [0, 1), got ${b}`);
  }
  const epsilon = positiveNumber(options.epsilon ?? DEFAULTS.epsilon, "epsilon");
  const run = new Run(options);
  const first = run.begin(f, x0);
  if (first.refused) return first.refused;
  const { x, g } = first;
  let { value, norm } = first;
  run.progress(value, norm);
  const m = new Float64Array(n);
  const v = new Float64Array(n);
  const previous = new Float64Array(n);
  for (;;) {
    if (norm <= gtol) return run.finish(x, value, norm, "converged", "the gradient's norm is at most gtol");
    const stop = run.interruption();
    if (stop) return run.finish(x, value, norm, stop.status, stop.message);
    if (run.iterations >= maxIterations) return run.finish(x, value, norm, "max_iterations", `stopped after ${maxIterations} iterations`);
    const t = run.iterations + 1;
    const c1 = 1 - beta1 ** t;
    const c2 = 1 - beta2 ** t;
    previous.set(x);
    for (let i = 0; i < n; i++) {
      m[i] = beta1 * m[i] + (1 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i];
      x[i] -= (rate * (m[i] / c1)) / (Math.sqrt(v[i] / c2) + epsilon);
    }
    const next = run.evaluate(f, x, g);
    if (!allFinite(next, g)) {
      // Keep the last finite state, so the caller can resume or shrink the learning rate.
      x.set(previous);
      return run.finish(x, value, norm, "non_finite", `the value or gradient became non-finite at iteration ${t}`);
    }
    value = next;
    norm = infNorm(g);
    run.iterations = t;
    run.progress(value, norm);
  }
}
