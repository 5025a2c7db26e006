import { GraphBuilder } from "../../src/ir/builder.js";
import type { Graph } from "../../src/ir/graph.js";

/**
 * The Bratu residual F_i = x_{i−1} − 2x_i + x_{i+1} + h²·exp(x_i), h = 1/(n + 1), zero boundary
 * values: a discretised −u'' = e^u whose Jacobian is tridiagonal (the sparse-Jacobian workload).
 */
export function bratu(n: number): Graph {
  const h2 = 1 / (n + 1) ** 2;
  const b = new GraphBuilder();
  const x = b.input("x", [n]);
  const left = b.op("pad", [b.op("slice", [x], { begin: [0], end: [n - 1] })], { before: [1], after: [0] });
  const right = b.op("pad", [b.op("slice", [x], { begin: [1] })], { before: [0], after: [1] });
  const lap = b.add(b.sub(left, b.mul(b.constant(2), x)), right);
  const F = b.add(lap, b.mul(b.constant(h2), b.op("exp", [x])));
  return b.build([{ name: "F", node: F }]);
}

/** Its Jacobian's three diagonals in closed form: 1 off the diagonal, −2 + h²·exp(x_i) on it. */
export function bratuDiagonal(x: Float64Array): Float64Array {
  const h2 = 1 / (x.length + 1) ** 2;
  return Float64Array.from(x, (v) => -2 + h2 * Math.exp(v));
}

/** A point inside the solution's range, varied along the grid. */
export function bratuPoint(n: number): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => 0.1 * Math.sin((Math.PI * (i + 1)) / (n + 1)));
}
