import type { SparsityPattern } from "../../src/ad/sparsity/index.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import type { Graph } from "../../src/ir/graph.js";

/** Extended Rosenbrock: Σ 100 (x[i+1] − x[i]²)² + (1 − x[i])², over a vector input (tridiagonal Hessian). */
export function rosenbrock(n: number): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", [n]);
  const head = b.op("slice", [x], { begin: [0], end: [n - 1] });
  const tail = b.op("slice", [x], { begin: [1] });
  const t1 = b.sub(tail, b.op("square", [head]));
  const t2 = b.sub(b.constant(1), head);
  const f = b.op("sum", [b.add(b.mul(b.constant(100), b.op("square", [t1])), b.op("square", [t2]))]);
  return b.build([{ name: "f", node: f }]);
}

/** A discretised ODE residual r_i = x_{i−1} − 2x_i + x_{i+1} + x_i², zero boundary values (banded Jacobian). */
export function odeResidual(n: number): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", [n]);
  const left = b.op("pad", [b.op("slice", [x], { begin: [0], end: [n - 1] })], { before: [1], after: [0] });
  const right = b.op("pad", [b.op("slice", [x], { begin: [1] })], { before: [0], after: [1] });
  const r = b.add(b.add(b.sub(left, b.mul(b.constant(2), x)), right), b.op("square", [x]));
  return b.build([{ name: "r", node: r }]);
}

export function denseOf(p: SparsityPattern): boolean[][] {
  const m = Array.from({ length: p.rows }, () => new Array<boolean>(p.cols).fill(false));
  for (let r = 0; r < p.rows; r++) for (let k = p.indptr[r]; k < p.indptr[r + 1]; k++) m[r][p.indices[k]] = true;
  return m;
}

export function fromDense(m: readonly (readonly boolean[])[], cols: number): SparsityPattern {
  const indptr = new Int32Array(m.length + 1);
  const indices: number[] = [];
  m.forEach((row, r) => {
    row.forEach((v, c) => {
      if (v) indices.push(c);
    });
    indptr[r + 1] = indices.length;
  });
  return { rows: m.length, cols, indptr, indices: Int32Array.from(indices) };
}

export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
