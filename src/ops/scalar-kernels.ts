import erfImpl from "@stdlib/math-base-special-erf";

/**
 * Scalar helpers that op templates call as `H.name(...)`, where one line of JavaScript is not enough
 * or not numerically stable. The interpreter, the generated code and constant folding all share them.
 */
export const scalarKernels = {
  /** 1/(1+e^−x) without overflow: e^−x is only formed for x ≥ 0. */
  sigmoid(x: number): number {
    if (x >= 0) return 1 / (1 + Math.exp(-x));
    const e = Math.exp(x);
    return e / (1 + e);
  },
  /** log(1+e^x) = max(x,0) + log1p(e^−|x|): exact for large |x| and accurate near 0. */
  softplus(x: number): number {
    return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
  },
  erf(x: number): number {
    return erfImpl(x);
  },
  /** sign with sign(0) = 0 and sign(NaN) = NaN. */
  sign(x: number): number {
    return x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : Number.NaN;
  },
};

export type ScalarKernels = typeof scalarKernels;
