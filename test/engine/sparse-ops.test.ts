import { describe, expect, it } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { sparsePlan } from "../../src/engine/modes/index.js";
import type { Value } from "../../src/engine/values.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import type { Graph } from "../../src/ir/graph.js";
import { allOps } from "../../src/ops/registry.js";
import type { TensorCase } from "../../src/ops/types.js";
import { sizeOf } from "../../src/tensor/shape.js";
import { rng } from "../ad/sparsity-helpers.js";
import { csrToDense, denseBlock } from "./sparse-helpers.js";

type Nested = Record<string, Record<string, Value>>;

const cases = allOps().flatMap((def) =>
  (def.tensorCases ?? []).map((c): [string, string, TensorCase] => [`${def.name}: ${c.name}`, def.name, c]),
);

/** The op on its case's operands (integer operands as constants); `squared` sums its square, for a Hessian. */
function opGraph(op: string, c: TensorCase, squared: boolean): Graph {
  const b = new GraphBuilder();
  const args = c.args.map((a, k) => (a.ints ? b.tensorConstantInt(a.shape, a.ints) : b.input(`a${k}`, a.shape)));
  const y = b.op(op, args, c.attrs);
  const out = squared ? b.op("sum", [b.op("square", [b.op("sin", [y])])]) : y;
  return b.build([{ name: "y", node: out }]);
}

function randomPoint(c: TensorCase, seed: number): Record<string, { shape: number[]; data: Float64Array } | number> {
  const next = rng(seed);
  const point: Record<string, { shape: number[]; data: Float64Array } | number> = {};
  c.args.forEach((a, k) => {
    if (a.ints) return;
    const draw = () => (a.range ? a.range[0] + (a.range[1] - a.range[0]) * next() : 4 * next() - 2);
    point[`a${k}`] = a.shape.length ? { shape: [...a.shape], data: Float64Array.from({ length: sizeOf(a.shape) }, draw) } : draw();
  });
  return point;
}

function expectSparseEqualsDense(fn: CompiledFunction, point: ReturnType<typeof randomPoint>, mode: "jacobian" | "hessian") {
  const dense = fn.evaluate(point, { mode, ...(mode === "jacobian" ? { method: "forward" as const } : {}) })[mode] as Nested;
  const sparse = fn.evaluate(point, { mode, sparse: true })[mode] as Nested;
  for (const block of sparsePlan(fn, mode, fn.wrtOf(undefined), undefined).blocks) {
    const data = sparse[block.row][block.col];
    const got = csrToDense(block, denseBlock(data));
    const want = denseBlock(dense[block.row][block.col]);
    want.forEach((v, i) => {
      expect(got[i]).toBeCloseTo(v, 8);
    });
  }
}

describe.each(cases)("op %s: sparse derivatives equal the dense ones", (_name, op, c) => {
  it("jacobian and hessian at random points", () => {
    if (c.args.every((a) => a.ints)) return;
    for (const seed of [3, 4]) {
      const point = randomPoint(c, seed);
      expectSparseEqualsDense(new CompiledFunction(opGraph(op, c, false)), point, "jacobian");
      const def = allOps().find((d) => d.name === op);
      if ((def?.maxOrder ?? 2) >= 2) expectSparseEqualsDense(new CompiledFunction(opGraph(op, c, true)), point, "hessian");
    }
  });
});
