import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Banded, compose, materialize, mergeBands, piecesOf, transposeBands } from "../../src/ad/sparsity/bands.js";
import { columnColoring, hessianPattern, jacobianPattern, starColoring, transposePattern } from "../../src/ad/sparsity/index.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import { denseOf, odeResidual, randomGraph, step } from "./sparsity-helpers.js";

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
