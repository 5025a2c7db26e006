import fc from "fast-check";
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

export type Step = { op: string; a: number; b: number; k: number };

/** One step of a random graph: an op on nodes of the pool picked by index. */
export const step = fc.record({
  op: fc.constantFrom("slice", "slice2", "pad", "concat", "add", "mul", "square", "sin", "scale", "sum", "flipcat", "gather", "reshape"),
  a: fc.nat(),
  b: fc.nat(),
  k: fc.integer({ min: 0, max: 3 }),
});

/**
 * A random graph over vectors x (length n) and y (length m): shifts, pads, concatenations,
 * elementwise products and sums, broadcast scalars, and a few ops that break the band structure
 * (reductions, gathers with constant indices), so both representations and their meeting are exercised.
 */
export function randomGraph(n: number, m: number, steps: readonly Step[], outputs: "both" | "scalar" = "both"): Graph {
  const b = new GraphBuilder();
  const pool = [b.input("x", [n]), b.input("y", [m])];
  const len = (node: number) => b.shape(node)[0] ?? 1;
  for (const s of steps) {
    const x = pool[s.a % pool.length];
    const y = pool[s.b % pool.length];
    const lx = len(x);
    const vec = b.shape(x).length === 1;
    let out: number | undefined;
    if (s.op === "slice" && vec && lx > s.k) out = b.op("slice", [x], { begin: [s.k], end: [lx - (s.k % 2)] });
    else if (s.op === "slice2" && vec && lx > 1) out = b.op("slice", [x], { begin: [s.k % 2], step: [2] });
    else if (s.op === "pad" && vec) out = b.op("pad", [x], { before: [s.k], after: [3 - s.k] });
    else if (s.op === "concat" && vec && b.shape(y).length === 1) out = b.op("concat", [x, y], { axis: 0 });
    else if ((s.op === "add" || s.op === "mul") && len(y) === lx) out = b.op(s.op, [x, y]);
    else if (s.op === "square" || s.op === "sin") out = b.op(s.op, [x]);
    else if (s.op === "scale") out = b.mul(b.constant(s.k + 2), x);
    else if (s.op === "sum" && vec && s.k === 0) out = b.op("sum", [x]);
    else if (s.op === "flipcat" && vec)
      out = b.add(x, b.op("broadcast_to", [b.op("sum", [b.op("slice", [x], { end: [1] })])], { shape: [lx] }));
    else if (s.op === "gather" && vec) {
      const idx = Array.from({ length: lx }, (_, i) => (i * (s.k + 3) + s.b) % lx);
      out = b.op("gather", [x, b.tensorConstantInt([lx], idx)], { axis: 0 });
    } else if (s.op === "reshape" && vec && lx % 2 === 0)
      out = b.op("reshape", [b.op("reshape", [x], { shape: [2, lx / 2] })], { shape: [lx] });
    if (out !== undefined) pool.push(out);
  }
  const last = pool[pool.length - 1];
  const scalar = b.op("sum", [b.op("square", [b.op("sin", [b.shape(last).length ? last : b.op("reshape", [last], { shape: [1] })])])]);
  return b.build(
    outputs === "scalar"
      ? [{ name: "f", node: scalar }]
      : [
          { name: "v", node: last },
          { name: "f", node: scalar },
        ],
  );
}
