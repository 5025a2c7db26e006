import { lbfgsb } from "./lbfgsb.js";
import type { Objective } from "./types.js";

/**
 * The extended Rosenbrock function (scipy.optimize.rosen) with its gradient: a small stand-in with the
 * curvature L-BFGS-B meets in practice, and the tests' first objective.
 */
export const rosenbrock: Objective = (x, g) => {
  g.fill(0);
  let f = 0;
  for (let i = 0; i < x.length - 1; i++) {
    const a = x[i + 1] - x[i] * x[i];
    const b = 1 - x[i];
    f += 100 * a * a + b * b;
    g[i] += -400 * x[i] * a - 2 * b;
    g[i + 1] += 200 * a;
  }
  return f;
};

/**
 * Runs L-BFGS-B on small problems, unbounded and bounded, so that V8 has optimised its code before the
 * first real request: a fresh worker otherwise runs the first minimisation in the interpreter and
 * baseline code, several times slower than warm (measured: ~40 ms against ~8 ms for Rosenbrock
 * n = 100). A pool worker calls it once at start-up; it takes tens of milliseconds.
 */
export function warmOptimisers(rounds = 6): void {
  const n = 20;
  const start = new Float64Array(n).map((_, i) => (i % 2 === 0 ? -1.2 : 1));
  const lower = new Float64Array(n).fill(-2);
  const upper = new Float64Array(n).fill(0.8);
  for (let r = 0; r < rounds; r++) {
    lbfgsb(rosenbrock, start, { gtol: 1e-8, ftol: 1e-12 });
    lbfgsb(rosenbrock, start, { gtol: 1e-8, ftol: 1e-12, lower, upper });
  }
}
