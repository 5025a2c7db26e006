import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { reverse } from "../../src/ad/reverse.js";
import { compileProgram } from "../../src/compile/program.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import type { Graph } from "../../src/ir/graph.js";
import { rng } from "../support/numeric.js";

/**
 * The tensor compiler fuses loops, reads views and zero padding in place, turns sums of shifted
 * values into accumulating writes, and reuses arena space. A program that keeps every node does none
 * of that (every node is its own loop and buffer), so on random graphs the two must agree.
 */

const N = 6;

interface Step {
  readonly kind: number;
  readonly a: number;
  readonly b: number;
  readonly k: number;
}

const UNARY = ["sin", "tanh", "square", "exp", "neg"] as const;

/** A random graph over x [N] and y [N, 1]: elementwise ops with broadcasting, slices, pads, reshapes, reductions. */
function randomGraph(steps: readonly Step[]): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", [N]);
  const y = b.input("y", [N, 1]);
  const vectors: number[] = [x, b.op("reshape", [y], { shape: [N] })];
  const matrices: number[] = [b.op("mul", [y, x])];
  for (const s of steps) {
    const v = vectors[s.a % vectors.length];
    const w = vectors[s.b % vectors.length];
    switch (s.kind % 10) {
      case 0:
        vectors.push(b.op(UNARY[s.k % UNARY.length], [b.mul(v, b.constant(0.5))]));
        break;
      case 1:
        vectors.push(b.op(s.k % 2 ? "add" : "mul", [v, w]));
        break;
      case 2: {
        // A shifted window padded back to length N: what slicing's reverse rule produces.
        const shift = 1 + (s.k % 2);
        const sliced = b.op("slice", [v], { begin: [s.k % 3 === 0 ? shift : 0], end: [s.k % 3 === 0 ? N : N - shift], step: [1] });
        vectors.push(b.op("pad", [sliced], { before: [s.k % 3 === 0 ? 0 : shift], after: [s.k % 3 === 0 ? shift : 0] }));
        break;
      }
      case 3:
        matrices.push(b.op(s.k % 2 ? "add" : "mul", [matrices[s.a % matrices.length], b.op("reshape", [v], { shape: [1, N] })]));
        break;
      case 4:
        vectors.push(b.op("sum", [matrices[s.b % matrices.length]], { axes: [s.k % 2] }));
        break;
      case 5:
        matrices.push(b.op("transpose", [matrices[s.a % matrices.length]]));
        break;
      case 6:
        vectors.push(b.op("sub", [v, b.op("sum", [w])]));
        break;
      case 7:
        vectors.push(b.op("select", [b.op("gt", [v, w]), v, b.op("tanh", [w])]));
        break;
      case 8: {
        // A kernel reading views: a row vector times a (maybe transposed) matrix.
        const row = b.op("reshape", [v], { shape: [1, N] });
        const product = b.op("matmul", [row, matrices[s.b % matrices.length]], { transpose_b: s.k % 2 === 1 });
        vectors.push(b.op("reshape", [product], { shape: [N] }));
        break;
      }
      case 9: {
        const head = b.op("slice", [v], { begin: [0], end: [2], step: [1] });
        const tail = b.op("slice", [w], { begin: [2], end: [N], step: [1] });
        vectors.push(b.op("concat", [head, tail], { axis: 0 }));
        break;
      }
    }
  }
  const total = b.add(b.op("sum", [vectors[vectors.length - 1]]), b.op("sum", [matrices[matrices.length - 1]]));
  return b.build([{ name: "f", node: total }]);
}

function run(
  graph: Graph,
  results: readonly number[],
  keepAll: boolean,
  x: Float64Array,
  y: Float64Array,
  precision: "float64" | "float32" = "float64",
): Float64Array[] {
  const p = compileProgram(graph, results, { keepAll, precision });
  p.setInput(0, x);
  p.setInput(1, y);
  p.run();
  return results.map((r) => {
    const v = p.read(r);
    return typeof v === "number" ? Float64Array.of(v) : Float64Array.from(v);
  });
}

describe("fused tensor programs", () => {
  it("agree with unfused ones on random graphs and their gradients", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ kind: fc.nat(), a: fc.nat(), b: fc.nat(), k: fc.nat() }), { minLength: 1, maxLength: 14 }),
        fc.nat(),
        (steps, seed) => {
          const graph = randomGraph(steps);
          const r = reverse(graph, { cotangent: "seed" });
          const results = [graph.outputs[0].node, ...r.gradients];
          const next = rng(seed);
          const x = Float64Array.from({ length: N }, () => next() * 2 - 1);
          const y = Float64Array.from({ length: N }, () => next() * 2 - 1);
          for (const [precision, tolerance] of [
            ["float64", 1e-12],
            ["float32", 1e-5],
          ] as const) {
            const fused = run(r.graph, results, false, x, y, precision);
            const plain = run(r.graph, results, true, x, y, precision);
            fused.forEach((values, k) => {
              values.forEach((v, i) => {
                const want = plain[k][i];
                const where = `${precision} result ${k}[${i}]: fused ${v}, unfused ${want}`;
                expect(Math.abs(v - want), where).toBeLessThanOrEqual(tolerance * (1 + Math.abs(want)));
              });
            });
          }
        },
      ),
      { numRuns: 300, seed: 42 },
    );
  });
});
