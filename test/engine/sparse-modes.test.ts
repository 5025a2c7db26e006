import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { sparsePlan } from "../../src/engine/modes/index.js";
import type { Value } from "../../src/engine/values.js";
import { parseExpression, parseExpressions } from "../../src/ir/expression.js";
import type { Graph } from "../../src/ir/graph.js";
import { odeResidual, randomGraph, rng, rosenbrock, step } from "../ad/sparsity-helpers.js";
import { bratu, bratuJacobian, csrToDense, denseBlock } from "./sparse-helpers.js";

type Nested = Record<string, Record<string, Value>>;

/** Every block of a sparse answer scattered into the dense layout, next to the dense mode's answer. */
function compare(graph: Graph, point: Record<string, number | { shape: number[]; data: Float64Array }>, mode: "jacobian" | "hessian") {
  const fn = new CompiledFunction(graph);
  const dense = fn.evaluate(point, { mode })[mode] as Nested;
  const sparseEval = fn.evaluate(point, { mode, sparse: true });
  const sparse = sparseEval[mode] as Nested;
  const plan = sparsePlan(fn, mode, fn.wrtOf(undefined), undefined);
  for (const block of plan.blocks) {
    const data = sparse[block.row][block.col];
    const got = csrToDense(block, typeof data === "number" ? [data] : Array.from(data.data));
    const want = denseBlock(dense[block.row][block.col]);
    expect(got.length).toBe(want.length);
    got.forEach((v, i) => {
      expect(v).toBeCloseTo(want[i], 10);
    });
  }
  return sparseEval;
}

function randomVector(n: number, seed: number): Float64Array {
  const r = rng(seed);
  return Float64Array.from({ length: n }, () => r() * 2 - 1);
}

describe("sparse jacobian and hessian modes", () => {
  it("equal the dense modes on random graphs (shifts, pads, gathers, products, reductions) at random points", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 5 }),
        fc.array(step, { maxLength: 8 }),
        fc.nat(),
        (n, m, steps, seed) => {
          const point = { x: { shape: [n], data: randomVector(n, seed) }, y: { shape: [m], data: randomVector(m, seed + 1) } };
          compare(randomGraph(n, m, steps), point, "jacobian");
          compare(randomGraph(n, m, steps, "scalar"), point, "hessian");
        },
      ),
      { numRuns: 40 },
    );
  });

  it("equal the dense Hessian on Rosenbrock, with 3 colours", () => {
    const e = compare(rosenbrock(12), { x: { shape: [12], data: randomVector(12, 1) } }, "hessian");
    expect(e.colors).toBe(3);
  });

  it("equal the dense Jacobian on a banded residual, forward and reverse", () => {
    const g = odeResidual(10);
    const point = { x: { shape: [10], data: randomVector(10, 2) } };
    expect(compare(g, point, "jacobian").colors).toBe(3);
    const fn = new CompiledFunction(g);
    const dense = fn.evaluate(point, { mode: "jacobian" }).jacobian as Nested;
    const rev = fn.evaluate(point, { mode: "jacobian", sparse: true, method: "reverse" });
    expect(rev.method).toBe("reverse");
    const block = sparsePlan(fn, "jacobian", fn.wrtOf(undefined), undefined, "reverse").blocks[0];
    const got = csrToDense(block, Array.from(((rev.jacobian as Nested).r.x as { data: ArrayLike<number> }).data));
    denseBlock(dense.r.x).forEach((v, i) => {
      expect(got[i]).toBeCloseTo(v, 12);
    });
  });

  it("equal the dense modes on scalar expressions with several inputs and outputs", () => {
    const f = parseExpression("x1*exp(-0.5*(x1^2+x2^2)) + sin(x3)*x4 + x5^3 + x2*x5");
    const point = { x1: 0.3, x2: -0.7, x3: 1.1, x4: 0.4, x5: 0.9 };
    compare(f, point, "hessian");
    compare(f, point, "jacobian");
    const multi = parseExpressions({
      outputs: [
        { name: "a", text: "x*y + sin(z)" },
        { name: "b", text: "exp(y) - z^2" },
        { name: "c", text: "x^2" },
      ],
    });
    compare(multi, { x: 0.5, y: -0.2, z: 1.3 }, "jacobian");
  });

  it("equal the dense modes on tensor functions with mixed scalar and tensor inputs", () => {
    const g = parseExpression("sum(w * x[1:]^2 * x[:-1]) + s*sum(exp(x))", [
      { name: "x", shape: [6] },
      { name: "w", shape: [5] },
      { name: "s", shape: [] },
    ]);
    const point = { x: { shape: [6], data: randomVector(6, 3) }, w: { shape: [5], data: randomVector(5, 4) }, s: 0.7 };
    compare(g, point, "hessian");
    const v = parseExpression("x[1:] * x[:-1] + w", [
      { name: "x", shape: [6] },
      { name: "w", shape: [5] },
    ]);
    compare(v, { x: point.x, w: point.w }, "jacobian");
  });

  it("match the Bratu residual's closed-form tridiagonal Jacobian at n = 200 with 3 colours", () => {
    const n = 200;
    const x = randomVector(n, 5);
    const fn = new CompiledFunction(bratu(n));
    const e = fn.evaluate({ x: { shape: [n], data: x } }, { mode: "jacobian", sparse: true });
    expect(e.colors).toBe(3);
    const block = sparsePlan(fn, "jacobian", fn.wrtOf(undefined), undefined).blocks[0];
    const got = csrToDense(block, Array.from(((e.jacobian as Nested).F.x as { data: ArrayLike<number> }).data));
    const want = bratuJacobian(x);
    want.forEach((v, i) => {
      expect(got[i]).toBeCloseTo(v, 12);
    });
  });
});

describe("the sparse Rosenbrock Hessian against scipy", () => {
  it("equals scipy.optimize.rosen_hess at n = 1,000 (test/fixtures/rosen-hess.py), with 3 colours", () => {
    const fixture = JSON.parse(readFileSync(new URL("../fixtures/rosen-hess-1000.json", import.meta.url), "utf8")) as {
      n: number;
      diagonal: number[];
      offDiagonal: number[];
      nonzeros: number;
    };
    const n = fixture.n;
    const x = Float64Array.from({ length: n }, (_, i) => 0.5 + 0.001 * (i % 100) + 0.3 * Math.sin(i));
    const fn = new CompiledFunction(rosenbrock(n));
    const e = fn.evaluate({ x: { shape: [n], data: x } }, { mode: "hessian", sparse: true });
    expect(e.colors).toBe(3);
    const block = sparsePlan(fn, "hessian", fn.wrtOf(undefined), undefined).blocks[0];
    expect(block.indices.length).toBe(fixture.nonzeros);
    const data = ((e.hessian as Nested).x.x as { data: ArrayLike<number> }).data;
    for (let i = 0; i < n; i++) {
      for (let k = block.indptr[i]; k < block.indptr[i + 1]; k++) {
        const j = block.indices[k];
        const want = j === i ? fixture.diagonal[i] : fixture.offDiagonal[Math.min(i, j)];
        expect(Math.abs(data[k] - want)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(want)));
      }
    }
  });
});
