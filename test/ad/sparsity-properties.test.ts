import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Coloring,
  columnColoring,
  decompressColumns,
  decompressRows,
  decompressStar,
  jacobianPattern,
  rowColoring,
  type SparsityPattern,
  seedMatrix,
  starColoring,
  transposePattern,
  unionPatterns,
} from "../../src/ad/sparsity/index.js";
import { compileProgram } from "../../src/compile/program.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import type { Graph } from "../../src/ir/graph.js";
import { allOps } from "../../src/ops/registry.js";
import type { TensorCase } from "../../src/ops/types.js";
import { sizeOf } from "../../src/tensor/shape.js";
import { denseOf, fromDense, rng } from "./sparsity-helpers.js";

const cases = allOps().flatMap((def) =>
  (def.tensorCases ?? []).map((c): [string, string, TensorCase] => [`${def.name}: ${c.name}`, def.name, c]),
);

function opGraph(op: string, c: TensorCase): Graph {
  const b = new GraphBuilder();
  const args = c.args.map((a, k) => (a.ints ? b.tensorConstantInt(a.shape, a.ints) : b.input(`a${k}`, a.shape)));
  return b.build([{ name: "y", node: b.op(op, args, c.attrs) }]);
}

function evaluate(graph: Graph, x: readonly Float64Array[]): Float64Array {
  const p = compileProgram(graph, [graph.outputs[0].node]);
  x.forEach((v, k) => {
    p.setInput(k, graph.nodes[graph.inputs[k].node].shape.length ? v : v[0]);
  });
  p.run();
  const out = p.read(graph.outputs[0].node);
  return typeof out === "number" ? Float64Array.of(out) : Float64Array.from(out);
}

describe.each(cases)("op %s", (_name, op, c) => {
  it("every nonzero of the Jacobian (central differences at random points) lies in the detected pattern", () => {
    const graph = opGraph(op, c);
    const pattern = denseOf(jacobianPattern(graph));
    const floats = c.args.filter((a) => !a.ints);
    for (const seed of [1, 2]) {
      const next = rng(seed);
      const x = floats.map((a) =>
        Float64Array.from({ length: sizeOf(a.shape) }, () => (a.range ? a.range[0] + (a.range[1] - a.range[0]) * next() : 4 * next() - 2)),
      );
      let col = 0;
      x.forEach((xk, k) => {
        for (let i = 0; i < xk.length; i++, col++) {
          const h = 1e-6 * Math.max(1, Math.abs(xk[i]));
          const up = x.map((v) => Float64Array.from(v));
          const down = x.map((v) => Float64Array.from(v));
          up[k][i] += h;
          down[k][i] -= h;
          const fu = evaluate(graph, up);
          const fd = evaluate(graph, down);
          fu.forEach((v, r) => {
            const d = (v - fd[r]) / (2 * h);
            if (Math.abs(d) > 1e-5) expect(pattern[r][col], `∂y[${r}]/∂x[${col}] = ${d} outside the pattern`).toBe(true);
          });
        }
      });
    }
  });
});

const sparse = (maxRows: number, maxCols: number) =>
  fc
    .record({
      rows: fc.integer({ min: 1, max: maxRows }),
      cols: fc.integer({ min: 1, max: maxCols }),
      seed: fc.integer(),
      density: fc.double({ min: 0.05, max: 0.5, noNaN: true }),
    })
    .map(({ rows, cols, seed, density }) => {
      const next = rng(seed);
      return fromDense(
        Array.from({ length: rows }, () => Array.from({ length: cols }, () => next() < density)),
        cols,
      );
    });

const symmetric = sparse(25, 25).map((p) => {
  const n = Math.min(p.rows, p.cols);
  const square = fromDense(
    denseOf(p)
      .slice(0, n)
      .map((row, i) => row.slice(0, n).map((v, j) => v || i === j)),
    n,
  );
  return unionPatterns(square, transposePattern(square));
});

function structurallyOrthogonal(p: SparsityPattern, coloring: Coloring): boolean {
  for (let r = 0; r < p.rows; r++) {
    const seen = new Set<number>();
    for (let k = p.indptr[r]; k < p.indptr[r + 1]; k++) {
      const c = coloring.colors[p.indices[k]];
      if (seen.has(c)) return false;
      seen.add(c);
    }
  }
  return true;
}

/** Proper, and no path on four vertices uses only two colours. */
function isStar(p: SparsityPattern, { colors }: Coloring): boolean {
  const m = denseOf(p);
  const n = p.rows;
  const adj = (i: number, j: number) => i !== j && m[i][j];
  for (let a = 0; a < n; a++) {
    for (let b = 0; b < n; b++) {
      if (!adj(a, b)) continue;
      if (colors[a] === colors[b]) return false;
      for (let c = 0; c < n; c++) {
        if (c === a || !adj(b, c) || colors[c] !== colors[a]) continue;
        for (let d = 0; d < n; d++) if (d !== b && adj(c, d) && colors[d] === colors[b]) return false;
      }
    }
  }
  return true;
}

function randomValues(p: SparsityPattern, seed: number): number[][] {
  const next = rng(seed);
  const m = denseOf(p).map((row) => row.map((v) => (v ? Math.round(next() * 2000 - 1000) / 8 || 1 : 0)));
  return m;
}

it("column colourings give structurally orthogonal columns; row colourings orthogonal rows", () => {
  fc.assert(
    fc.property(
      sparse(30, 30),
      (p) => structurallyOrthogonal(p, columnColoring(p)) && structurallyOrthogonal(transposePattern(p), rowColoring(p)),
    ),
  );
});

it("star colourings are proper and two-colour no path on four vertices", () => {
  fc.assert(fc.property(symmetric, (p) => isStar(p, starColoring(p))));
});

it("decompression recovers a random sparse matrix exactly from its compressed products", () => {
  fc.assert(
    fc.property(sparse(20, 20), fc.integer(), (p, seed) => {
      const a = randomValues(p, seed);
      const cols = columnColoring(p);
      const s = seedMatrix(cols);
      const jvps = new Float64Array(cols.count * p.rows);
      for (let c = 0; c < cols.count; c++)
        for (let i = 0; i < p.rows; i++) jvps[c * p.rows + i] = a[i].reduce((t, v, j) => t + v * s[c * p.cols + j], 0);
      const rows = rowColoring(p);
      const r = seedMatrix(rows);
      const vjps = new Float64Array(rows.count * p.cols);
      for (let c = 0; c < rows.count; c++)
        for (let j = 0; j < p.cols; j++) vjps[c * p.cols + j] = a.reduce((t, row, i) => t + r[c * p.rows + i] * row[j], 0);
      const expected = Float64Array.from(denseOf(p).flatMap((row, i) => row.flatMap((v, j) => (v ? [a[i][j]] : []))));
      expect(decompressColumns(p, cols, jvps).data).toEqual(expected);
      expect(decompressRows(p, rows, vjps).data).toEqual(expected);
    }),
  );
});

it("star decompression recovers a random symmetric matrix exactly from its Hessian-vector products", () => {
  fc.assert(
    fc.property(symmetric, fc.integer(), (p, seed) => {
      const upper = randomValues(p, seed);
      const h = upper.map((row, i) => row.map((v, j) => (i <= j ? v : upper[j][i])));
      const coloring = starColoring(p);
      const s = seedMatrix(coloring);
      const n = p.rows;
      const hvps = new Float64Array(coloring.count * n);
      for (let c = 0; c < coloring.count; c++)
        for (let i = 0; i < n; i++) hvps[c * n + i] = h[i].reduce((t, v, j) => t + v * s[c * n + j], 0);
      const result = decompressStar(p, coloring, hvps);
      expect(result.data).toEqual(Float64Array.from(denseOf(p).flatMap((row, i) => row.flatMap((v, j) => (v ? [h[i][j]] : [])))));
      expect(result.shape).toEqual([n, n]);
    }),
  );
});
