/**
 * W2: the extended Rosenbrock function f(x) = Σ_{i=0}^{n−2} 100·(x[i+1] − x[i]²)² + (1 − x[i])², at
 * x[i] = 0.5 + 0.001·(i mod 100) (../shared/workloads.md). The hand-written contenders are fused loops in
 * float64; both sum left to right.
 */

export const W2_SIZES = [1_000, 100_000] as const;
/** Published values of f at the generated point, by n. */
export const W2_REFERENCE: Readonly<Record<number, number>> = { 1000: 6300.6078165699, 100000: 630274.07881622 };

export function w2Point(n: number): Float64Array {
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = 0.5 + 0.001 * (i % 100);
  return x;
}

/** f alone, one fused loop. */
export function w2Value(x: Float64Array): number {
  let f = 0;
  const n = x.length;
  for (let i = 0; i < n - 1; i++) {
    const xi = x[i];
    const d = x[i + 1] - xi * xi;
    const e = 1 - xi;
    f += 100 * d * d + e * e;
  }
  return f;
}

/** f and its gradient (written to g, length n) in one fused loop; returns f. */
export function w2ValueAndGradient(x: Float64Array, g: Float64Array): number {
  let f = 0;
  let carry = 0;
  const n = x.length;
  for (let i = 0; i < n - 1; i++) {
    const xi = x[i];
    const d = x[i + 1] - xi * xi;
    const e = 1 - xi;
    f += 100 * d * d + e * e;
    g[i] = carry - 400 * d * xi - 2 * e;
    carry = 200 * d;
  }
  if (n > 0) g[n - 1] = carry;
  return f;
}
