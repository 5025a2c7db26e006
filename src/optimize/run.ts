import { AdjointError } from "../errors.js";
import type { MinimizeOptions, MinimizeResult, MinimizeStatus, Objective, Progress } from "./types.js";

/**
 * The bookkeeping every optimiser shares: counting evaluations, polling cancellation and the clock,
 * and recording progress. Keeping it here means the three methods report the same way, so the
 * service can stream any of them without knowing which one runs.
 */
export class Run {
  evaluations = 0;
  hvps = 0;
  iterations = 0;
  readonly history: Progress[] = [];
  private readonly now: () => number;
  private readonly start: number;
  private readonly every: number;
  private lastRecorded = -1;

  constructor(private readonly options: MinimizeOptions) {
    this.now = options.now ?? (() => performance.now());
    this.start = this.now();
    this.every = positiveInteger(options.progressEvery ?? 1, "progressEvery");
    if (options.timeLimitMs !== undefined && !(options.timeLimitMs >= 0)) {
      throw new AdjointError("invalid_argument", `timeLimitMs must be a non-negative number, got ${options.timeLimitMs}`);
    }
  }

  /** Evaluates f and counts it; the caller checks finiteness, since what to do about it differs. */
  /**
   * The first evaluation, at a copy of `x0`: the point, its gradient, value and gradient norm, and the
   * answer already made when the start is not finite (nothing can be done from there).
   */
  begin(f: Objective, x0: Float64Array): { x: Float64Array; g: Float64Array; value: number; norm: number; refused?: MinimizeResult } {
    const x = Float64Array.from(x0);
    const g = new Float64Array(x.length);
    const value = this.evaluate(f, x, g);
    const norm = infNorm(g);
    if (allFinite(value, g)) return { x, g, value, norm };
    return {
      x,
      g,
      value,
      norm,
      refused: this.finish(x, value, norm, "non_finite", "the value or gradient is not finite at the starting point"),
    };
  }

  evaluate(f: Objective, x: Float64Array, gradient: Float64Array): number {
    this.evaluations++;
    return f(x, gradient);
  }

  /** Why the run must stop before the next iteration, if it must: cancellation wins over the clock. */
  interruption(): { status: MinimizeStatus; message: string } | undefined {
    if (this.options.shouldStop?.()) return { status: "cancelled", message: "cancelled by the caller" };
    const limit = this.options.timeLimitMs;
    if (limit !== undefined && this.now() - this.start >= limit) {
      return { status: "time_limit", message: `stopped at the time limit of ${limit} ms` };
    }
    return undefined;
  }

  /** Records the state after an iteration when it falls on the progress interval. */
  progress(value: number, gradientNorm: number): void {
    if (this.iterations % this.every === 0) this.record(value, gradientNorm);
  }

  finish(x: Float64Array, value: number, gradientNorm: number, status: MinimizeStatus, message: string): MinimizeResult {
    if (this.lastRecorded !== this.iterations) this.record(value, gradientNorm);
    return {
      x,
      value,
      gradientNorm,
      iterations: this.iterations,
      evaluations: this.evaluations,
      hvps: this.hvps,
      status,
      message,
      history: this.history,
    };
  }

  private record(value: number, gradientNorm: number): void {
    const p: Progress = {
      iteration: this.iterations,
      value,
      gradientNorm,
      evaluations: this.evaluations,
      elapsedMs: this.now() - this.start,
    };
    this.lastRecorded = this.iterations;
    this.history.push(p);
    this.options.onProgress?.(p);
  }
}

export function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) throw new AdjointError("invalid_argument", `${name} must be a positive integer, got ${value}`);
  return value;
}

export function nonNegativeInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 0)
    throw new AdjointError("invalid_argument", `${name} must be a non-negative integer, got ${value}`);
  return value;
}

export function positiveNumber(value: number, name: string): number {
  if (!(value > 0) || !Number.isFinite(value))
    throw new AdjointError("invalid_argument", `${name} must be a positive number, got ${value}`);
  return value;
}

export function nonNegativeNumber(value: number, name: string): number {
  if (!(value >= 0) || !Number.isFinite(value)) {
    throw new AdjointError("invalid_argument", `${name} must be a non-negative number, got ${value}`);
  }
  return value;
}

export function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

export function infNorm(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const v = Math.abs(a[i]);
    // A NaN must not hide behind the max, so the caller's finiteness checks see it.
    if (!(v <= m)) m = v;
  }
  return m;
}

export function allFinite(value: number, a: Float64Array): boolean {
  if (!Number.isFinite(value)) return false;
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}
