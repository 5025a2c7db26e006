import { forward } from "../../src/ad/forward.js";
import { reverse } from "../../src/ad/reverse.js";
import { compileProgram } from "../../src/compile/program.js";
import type { Precision } from "../../src/compile/scalar-program.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import type { Graph } from "../../src/ir/graph.js";
import type { Attrs } from "../../src/ops/types.js";
import { sizeOf } from "../../src/tensor/shape.js";
import { rng } from "../support/numeric.js";

export interface OperandSpec {
  readonly shape: readonly number[];
  /** Sampling interval (default [−2, 2]). */
  readonly range?: readonly [number, number];
  /** Integer operands (indices, labels) are fixed data, not differentiated. */
  readonly ints?: readonly number[];
}

export interface OpCase {
  readonly op: string;
  readonly args: readonly OperandSpec[];
  readonly attrs?: Attrs;
}

/** s = Σ w ⊙ op(args): a scalar that weights every output element differently, so each one is checked. */
export function caseGraph(c: OpCase): { graph: Graph; floatInputs: number[]; outShape: readonly number[] } {
  const b = new GraphBuilder();
  const next = rng(7);
  const args = c.args.map((a, k) => (a.ints ? b.tensorConstantInt(a.shape, a.ints) : b.input(`a${k}`, a.shape)));
  const y = b.op(c.op, args, c.attrs);
  const outShape = b.shape(y);
  const w =
    outShape.length === 0
      ? b.constant(0.5 + next())
      : b.tensorConstant(
          outShape,
          Float64Array.from({ length: sizeOf(outShape) }, () => next() * 2 - 1),
        );
  const s = b.op("sum", [b.mul(y, w)]);
  const graph = b.build([{ name: "s", node: s }]);
  return { graph, floatInputs: c.args.flatMap((a, k) => (a.ints ? [] : [k])), outShape };
}

export function samplePoint(c: OpCase, seed: number): Float64Array[] {
  const next = rng(seed);
  return c.args
    .filter((a) => !a.ints)
    .map((a) => {
      const [lo, hi] = a.range ?? [-2, 2];
      return Float64Array.from({ length: sizeOf(a.shape) }, () => lo + (hi - lo) * next());
    });
}

function scalar(v: number | ArrayLike<number>): number {
  return typeof v === "number" ? v : v[0];
}

export function evaluate(graph: Graph, x: readonly Float64Array[], precision: Precision = "float64"): number {
  const p = compileProgram(graph, [graph.outputs[0].node], { precision });
  x.forEach((v, k) => {
    p.setInput(k, graph.nodes[graph.inputs[k].node].shape.length ? v : v[0]);
  });
  p.run();
  return scalar(p.read(graph.outputs[0].node));
}

export function gradient(graph: Graph, x: readonly Float64Array[]): Float64Array[] {
  const r = reverse(graph, { cotangent: "seed" });
  const p = compileProgram(r.graph, r.gradients);
  x.forEach((v, k) => {
    p.setInput(k, graph.nodes[graph.inputs[k].node].shape.length ? v : v[0]);
  });
  p.run();
  return r.gradients.map((g) => {
    const v = p.read(g);
    return typeof v === "number" ? Float64Array.of(v) : Float64Array.from(v);
  });
}

export function jvp(graph: Graph, x: readonly Float64Array[], u: readonly Float64Array[]): number {
  const f = forward(graph);
  const p = compileProgram(f.graph, f.outputTangents);
  [...x, ...u].forEach((v, k) => {
    p.setInput(k, f.graph.nodes[f.graph.inputs[k].node].shape.length ? v : v[0]);
  });
  p.run();
  return scalar(p.read(f.outputTangents[0]));
}

/** Central differences on every element of every input. */
export function fdGradient(graph: Graph, x: readonly Float64Array[], rel = 1e-6): Float64Array[] {
  return x.map((xk, k) =>
    Float64Array.from(xk, (v, i) => {
      const h = rel * Math.max(1, Math.abs(v));
      const up = x.map((a) => Float64Array.from(a));
      const down = x.map((a) => Float64Array.from(a));
      up[k][i] = v + h;
      down[k][i] = v - h;
      return (evaluate(graph, up) - evaluate(graph, down)) / (2 * h);
    }),
  );
}
