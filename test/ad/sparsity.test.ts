import { describe, expect, it } from "vitest";
import {
  columnColoring,
  fallbackOps,
  hessianPattern,
  jacobianPattern,
  patternEntries,
  rowColoring,
  starColoring,
} from "../../src/ad/sparsity/index.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import { denseOf, fromDense, odeResidual, rosenbrock } from "./sparsity-helpers.js";

const tridiagonal = (n: number) => Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => Math.abs(i - j) <= 1));

describe("Jacobian patterns of known functions", () => {
  it("the ODE residual is tridiagonal and needs 3 column colours", () => {
    const p = jacobianPattern(odeResidual(12));
    expect(denseOf(p)).toEqual(tridiagonal(12));
    expect(columnColoring(p).count).toBe(3);
    expect(rowColoring(p).count).toBe(3);
  });

  it("an elementwise function is diagonal, 1 colour; sum is one dense row", () => {
    const b = new GraphBuilder();
    const x = b.input("x", [6]);
    const y = b.op("sin", [b.op("exp", [x])]);
    const g = b.build([
      { name: "y", node: y },
      { name: "s", node: b.op("sum", [y]) },
    ]);
    const p = jacobianPattern(g, { outputs: ["y"] });
    expect(patternEntries(p)).toEqual(Array.from({ length: 6 }, (_, i) => [i, i]));
    expect(columnColoring(p).count).toBe(1);
    const s = jacobianPattern(g, { outputs: ["s"] });
    expect(denseOf(s)).toEqual([new Array(6).fill(true)]);
    expect(rowColoring(s).count).toBe(1);
    expect(columnColoring(s).count).toBe(6);
  });

  it("matmul: C[i][j] reads row i of A and column j of B", () => {
    const b = new GraphBuilder();
    const a = b.input("a", [2, 3]);
    const m = b.input("m", [3, 2]);
    const p = jacobianPattern(b.build([{ name: "c", node: b.op("matmul", [a, m]) }]));
    const want = Array.from({ length: 4 }, (_, r) => {
      const [i, j] = [Math.floor(r / 2), r % 2];
      return Array.from({ length: 12 }, (_, c) => (c < 6 ? Math.floor(c / 3) === i : (c - 6) % 2 === j));
    });
    expect(denseOf(p)).toEqual(want);
  });

  it("integer indices and comparisons carry no dependence; select keeps both branches", () => {
    const b = new GraphBuilder();
    const x = b.input("x", [3]);
    const y = b.input("y", [3]);
    const sel = b.op("select", [b.op("gt", [x, y]), b.op("square", [x]), y]);
    const gathered = b.op("gather", [x, b.tensorConstantInt([2], [2, 0])]);
    const p = jacobianPattern(
      b.build([
        { name: "s", node: sel },
        { name: "g", node: gathered },
      ]),
    );
    expect(patternEntries(p)).toEqual([
      [0, 0],
      [0, 3],
      [1, 1],
      [1, 4],
      [2, 2],
      [2, 5],
      [3, 2],
      [4, 0],
    ]);
  });
});

describe("Hessian patterns from the gradient graph", () => {
  it("extended Rosenbrock: exactly tridiagonal, 3 star colours", () => {
    const p = hessianPattern(rosenbrock(20));
    expect(denseOf(p)).toEqual(tridiagonal(20));
    expect(starColoring(p).count).toBe(3);
  });

  it("sum(x·y): only the pairs (xᵢ, yᵢ), no diagonal", () => {
    const b = new GraphBuilder();
    const x = b.input("x", [3]);
    const y = b.input("y", [3]);
    const p = hessianPattern(b.build([{ name: "f", node: b.op("sum", [b.mul(x, y)]) }]));
    expect(patternEntries(p)).toEqual([
      [0, 3],
      [1, 4],
      [2, 5],
      [3, 0],
      [4, 1],
      [5, 2],
    ]);
  });

  it("an arrow (one variable meets every other): a dense first row and column, 2 star colours, the optimum", () => {
    const n = 8;
    const b = new GraphBuilder();
    const a = b.input("a", []);
    const x = b.input("x", [n]);
    const f = b.add(b.add(b.op("sum", [b.mul(a, x)]), b.op("sum", [b.mul(x, x)])), b.mul(a, a));
    const p = hessianPattern(b.build([{ name: "f", node: f }]));
    const arrow = Array.from({ length: n + 1 }, (_, i) => Array.from({ length: n + 1 }, (_, j) => i === 0 || j === 0 || i === j));
    expect(denseOf(p)).toEqual(arrow);
    // Adjacent variables differ in colour, so 2 is the least; a star colouring reaches it.
    expect(starColoring(p).count).toBe(2);
    // One-sided colourings cannot compress it: every column meets the dense first row (n + 1 is optimal).
    expect(columnColoring(p).count).toBe(n + 1);
  });

  it("banded patterns take as many column colours as their width, the optimum", () => {
    for (const halfWidth of [1, 2, 3]) {
      const n = 20;
      const band = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => Math.abs(i - j) <= halfWidth));
      const p = fromDense(band, n);
      // A row holds 2·halfWidth + 1 consecutive columns, which must all differ: the width is a lower bound.
      expect(columnColoring(p).count).toBe(2 * halfWidth + 1);
      expect(rowColoring(p).count).toBe(2 * halfWidth + 1);
    }
  });

  it("a linear function has an empty Hessian pattern", () => {
    const b = new GraphBuilder();
    const x = b.input("x", [4]);
    const p = hessianPattern(b.build([{ name: "f", node: b.op("sum", [b.mul(b.constant(3), x)]) }]));
    expect(p.indices.length).toBe(0);
  });
});

it("no op falls back to the conservative rule (every operand element)", () => {
  // Convolution and pooling declare window rules too (src/ops/tensor/window-sparsity.ts).
  expect(fallbackOps()).toEqual([]);
});

it("a pattern past the entry budget is refused", () => {
  const b = new GraphBuilder();
  const x = b.input("x", [50]);
  const dense = b.op("matmul", [b.op("reshape", [x], { shape: [50, 1] }), b.op("reshape", [x], { shape: [1, 50] })]);
  expect(() => jacobianPattern(b.build([{ name: "d", node: dense }]), { maxEntries: 1000 })).toThrow(/more than 1000 index entries/);
});
