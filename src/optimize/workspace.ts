/** Per-variable bounds; ±Infinity marks a free side. */
export interface Box {
  lower: Float64Array;
  upper: Float64Array;
}

/**
 * Every buffer one L-BFGS-B run needs, allocated once at the start so the iterations allocate nothing:
 * length-n vectors for the Cauchy point, the subspace step and the line search, length-2m vectors and
 * a 2m × 2m square for the compact-form algebra (m = memory).
 */
export class Workspace {
  /** The generalised Cauchy point x^c. */
  readonly xc: Float64Array;
  /** Wᵀ(x^c − x), which the subspace step needs to form the reduced gradient without touching B. */
  readonly c: Float64Array;
  /** 1 for the variables left free at x^c (not held at a bound by the path). */
  readonly free: Uint8Array;
  /** The Cauchy path's direction, then the subspace step's reduced gradient. */
  readonly d: Float64Array;
  readonly times: Float64Array;
  /** A binary heap of breakpoint indices, ordered by (time, index). */
  readonly heap: Int32Array;
  /** The subspace step du, then x̄ − x: the search direction. */
  readonly du: Float64Array;
  /** x̄, the end of the search direction. */
  readonly xbar: Float64Array;
  readonly trial: Float64Array;
  readonly trialGradient: Float64Array;
  readonly s: Float64Array;
  readonly y: Float64Array;
  /** Length-2m scratch vectors. */
  readonly p: Float64Array;
  readonly mp: Float64Array;
  readonly mc: Float64Array;
  readonly wb: Float64Array;
  readonly u: Float64Array;
  /** 2m × 2m scratch: the subspace step's system. */
  readonly system: Float64Array;
  readonly gram: Float64Array;

  constructor(n: number, memory: number) {
    const w = 2 * memory;
    this.xc = new Float64Array(n);
    this.c = new Float64Array(w);
    this.free = new Uint8Array(n);
    this.d = new Float64Array(n);
    this.times = new Float64Array(n);
    this.heap = new Int32Array(n);
    this.du = new Float64Array(n);
    this.xbar = new Float64Array(n);
    this.trial = new Float64Array(n);
    this.trialGradient = new Float64Array(n);
    this.s = new Float64Array(n);
    this.y = new Float64Array(n);
    this.p = new Float64Array(w);
    this.mp = new Float64Array(w);
    this.mc = new Float64Array(w);
    this.wb = new Float64Array(w);
    this.u = new Float64Array(w);
    this.system = new Float64Array(w * w);
    this.gram = new Float64Array(w * w);
  }
}
