import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Banded, compose, materialize, mergeBands, piecesOf, transposeBands } from "../../src/ad/sparsity/bands.js";
import { columnColoring, hessianPattern, jacobianPattern, starColoring, transposePattern } from "../../src/ad/sparsity/index.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import type { Graph } from "../../src/ir/graph.js";
import { denseOf, odeResidual } from "./sparsity-helpers.js";

type Step = { op: string; a: number; b: number; k: number };

/** One step of a random graph: an op on nodes of the pool picked by index. */
const step = fc.record({
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
function randomGraph(n: number, m: number, steps: readonly Step[]): Graph {
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
  return b.build([
    { name: "v", node: last },
    { name: "f", node: scalar },
  ]);
}

const sameCsr = (a: { indptr: Int32Array; indices: Int32Array }, b: { indptr: Int32Array; indices: Int32Array }) => {
  expect(Array.from(a.indptr)).toEqual(Array.from(b.indptr));
  expect(Array.from(a.indices)).toEqual(Array.from(b.indices));
};

describe("banded patterns", () => {
  it("give the same CSR as explicit index sets on random graphs (Jacobian and Hessian)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 6 }), fc.array(step, { maxLength: 12 }), (n, m, steps) => {
        const g = randomGraph(n, m, steps);
        sameCsr(jacobianPattern(g), jacobianPattern(g, { bands: false }));
        sameCsr(hessianPattern(g, { output: "f" }), hessianPattern(g, { output: "f", bands: false }));
      }),
      { numRuns: 300 },
    );
  });

  it("compose, merge and transpose as their dense meaning does", () => {
    const band = fc.record({
      lo: fc.integer({ min: 0, max: 9 }),
      len: fc.integer({ min: 0, max: 9 }),
      a: fc.integer({ min: -2, max: 2 }),
      b: fc.integer({ min: -20, max: 20 }),
    });
    fc.assert(
      fc.property(
        fc.array(band, { maxLength: 5 }),
        fc.array(fc.integer({ min: -1, max: 11 }), { minLength: 1, maxLength: 15 }),
        (raw, map) => {
          // Operand bands over 12 rows whose columns stay within [0, 40).
          const bands = raw
            .map(({ lo, len, a, b }) => ({ lo, hi: Math.min(12, lo + len), a, b: b + 20 - a * lo }))
            .filter(
              ({ lo, hi, a, b }) => lo < hi && Math.min(a * lo + b, a * (hi - 1) + b) >= 0 && Math.max(a * lo + b, a * (hi - 1) + b) < 40,
            );
          const operand: Banded = { rows: 12, cols: 40, bands };
          const dense = denseOf(materialize(operand, Number.POSITIVE_INFINITY));
          const pieces = piecesOf({ indices: Int32Array.from(map) }, map.length) ?? [];
          const out: Banded = { rows: map.length, cols: 40, bands: [] };
          compose(bands, pieces, out.bands as never);
          const got = denseOf(materialize({ ...out, bands: mergeBands([...out.bands]) }, Number.POSITIVE_INFINITY));
          expect(got).toEqual(map.map((e) => (e < 0 ? new Array(40).fill(false) : dense[e])));
          const t = transposeBands(operand);
          if (t !== undefined)
            expect(denseOf(materialize(t, Number.POSITIVE_INFINITY))).toEqual(
              denseOf(transposePattern(materialize(operand, Number.POSITIVE_INFINITY))),
            );
        },
      ),
    );
  });

  it("cyclic colourings of banded patterns keep the greedy's optimum", () => {
    // Tridiagonal: 3 colours for both the column and the star colouring, the optimum.
    const j = jacobianPattern(odeResidual(50));
    expect(columnColoring(j).count).toBe(3);
    expect(Array.from(columnColoring(j).colors.slice(0, 6))).toEqual([0, 1, 2, 0, 1, 2]);
    const b = new GraphBuilder();
    const x = b.input("x", [40]);
    const d = b.sub(b.op("slice", [x], { begin: [1] }), b.op("square", [b.op("slice", [x], { end: [39] })]));
    const h = hessianPattern(b.build([{ name: "f", node: b.op("sum", [b.op("square", [d])]) }]));
    expect(starColoring(h).count).toBe(3);
  });
});
