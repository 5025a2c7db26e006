/**
 * W1: the worked example f(x) = x1·exp(−½(x1² + x2²)) at (2, 0.5) (../shared/workloads.md), and the
 * closed form a person would write by hand for its value and gradient.
 */

export const W1_EXPRESSION = "x1*exp(-0.5*(x1^2+x2^2))";
export const W1_POINT = { x1: 2, x2: 0.5 } as const;
/** Published value and gradient at W1_POINT. */
export const W1_REFERENCE = { f: 0.23886593653343924, x1: -0.35829890480015886, x2: -0.11943296826671962 } as const;

/** Hand-written value and gradient: out = [f, ∂f/∂x1, ∂f/∂x2]. */
export function w1ValueAndGradient(x1: number, x2: number, out: Float64Array): void {
  const e = Math.exp(-0.5 * (x1 * x1 + x2 * x2));
  out[0] = x1 * e;
  out[1] = (1 - x1 * x1) * e;
  out[2] = -x1 * x2 * e;
}
