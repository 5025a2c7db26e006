/**
 * The shared vocabulary of the optimisers: plain Float64Array callbacks in, a result record out. The
 * optimisers are synchronous because they run inside a pool worker, next to the compiled function;
 * cancellation and the time limit are polled once per iteration rather than delivered as events.
 */

/** Writes ∇f(x) into `gradient` and returns f(x). */
export type Objective = (x: Float64Array, gradient: Float64Array) => number;

/** Writes ∇²f(x)·v into `out`, without ever forming the Hessian. */
export type HessianVectorProduct = (x: Float64Array, v: Float64Array, out: Float64Array) => void;

export type MinimizeStatus = "converged" | "max_iterations" | "time_limit" | "cancelled" | "line_search_failed" | "non_finite";

export interface Progress {
  iteration: number;
  value: number;
  gradientNorm: number;
  evaluations: number;
  elapsedMs: number;
}

export interface MinimizeOptions {
  maxIterations?: number;
  /** Convergence when the infinity norm of the (projected) gradient is at most this. */
  gtol?: number;
  /** Convergence when (f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) ≤ ftol (L-BFGS-B only). */
  ftol?: number;
  timeLimitMs?: number;
  /** L-BFGS: the number of correction pairs kept (default 10). */
  memory?: number;
  learningRate?: number;
  beta1?: number;
  beta2?: number;
  epsilon?: number;
  /** L-BFGS-B only: per-variable bounds; ±Infinity leaves a side unbounded. */
  lower?: Float64Array;
  upper?: Float64Array;
  /** Iterations between progress records (default 1); the final state is always recorded. */
  progressEvery?: number;
  onProgress?: (p: Progress) => void;
  /** Polled once per iteration: true cancels the run, which returns the point reached. */
  shouldStop?: () => boolean;
  /** The clock in milliseconds (default performance.now); injectable so tests can drive the time limit. */
  now?: () => number;
}

export interface MinimizeResult {
  x: Float64Array;
  value: number;
  /** Infinity norm of the projected gradient at `x`. */
  gradientNorm: number;
  iterations: number;
  /** Objective (value and gradient) evaluations. */
  evaluations: number;
  /** Hessian-vector products (Newton-CG only, 0 otherwise). */
  hvps: number;
  status: MinimizeStatus;
  message: string;
  /** One entry per progress record: iteration 0 (the start), every `progressEvery` iterations, and the final state. */
  history: Progress[];
}
