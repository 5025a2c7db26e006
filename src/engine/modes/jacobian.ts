import { selectInputs } from "../../ir/select.js";
import { record, recordOf } from "../../names.js";
import { sizeOf } from "../../tensor/shape.js";
import type { CompiledGraph } from "../compiled-graph.js";
import { run } from "../run.js";
import type { Value } from "../values.js";
import { prepareJvp } from "./forward.js";
import { prepareVjp } from "./reverse.js";
import { asValue, Directions, element, readOutputs } from "./shared.js";
import { sparseJacobian } from "./sparse-jacobian.js";
import type { ModeDefinition, ModeOptions } from "./types.js";

/** Forward sweeps when the inputs have no more elements than the outputs, reverse sweeps otherwise. */
export function jacobianMethod(fn: CompiledGraph, options: Pick<ModeOptions, "wrt" | "method">): "forward" | "reverse" {
  if (options.method) return options.method;
  const inputs = selectInputs(fn.graph, options.wrt).reduce((n, w) => n + sizeOf(fn.graph.nodes[w.node].shape), 0);
  const outputs = fn.graph.outputs.reduce((n, o) => n + sizeOf(fn.graph.nodes[o.node].shape), 0);
  return inputs <= outputs ? "forward" : "reverse";
}

/**
 * The full Jacobian: jacobian[output][input] is a tensor of shape output.shape ++ input.shape (a number
 * for scalars), by forward sweeps (one per input element) when inputs are fewer than outputs, by
 * reverse sweeps (one per output element) otherwise.
 */
export const jacobian: ModeDefinition = {
  evaluate(fn, inputs, options) {
    if (options.sparse) return sparseJacobian(fn, inputs, options);
    const precision = options.precision ?? "float64";
    const wrt = selectInputs(fn.graph, options.wrt);
    const dirs = new Directions(fn, wrt);
    const outs = fn.graph.outputs;
    const outShapes = outs.map((o) => fn.graph.nodes[o.node].shape);
    const outSizes = outShapes.map((s) => sizeOf(s));
    const outTotal = outSizes.reduce((a, b) => a + b, 0);
    const method = jacobianMethod(fn, options);
    const blocks = outs.map((_, o) => wrt.map((_, k) => new Float64Array(outSizes[o] * dirs.sizes[k])));
    let values = record<Value>();
    if (method === "forward") {
      const p = prepareJvp(fn, wrt, precision, options.budget);
      for (const { k, e } of dirs.each()) {
        run(p.program, [...inputs, ...dirs.unit(k, e)]);
        outs.forEach((_, o) => {
          const t = p.program.read(p.results[outs.length + o]);
          for (let a = 0; a < outSizes[o]; a++) blocks[o][k][a * dirs.sizes[k] + e] = element(t, a);
        });
      }
      if (dirs.total === 0) run(p.program, inputs);
      values = readOutputs(fn, p);
    } else {
      const p = prepareVjp(fn, wrt, precision, options.budget);
      const cot = outShapes.map((s) => new Float64Array(sizeOf(s)));
      const cotArgs = () => cot.map((c, o) => (outShapes[o].length ? c : c[0]));
      outs.forEach((_, o) => {
        for (let a = 0; a < outSizes[o]; a++) {
          cot[o][a] = 1;
          run(p.program, [...inputs, ...cotArgs()]);
          wrt.forEach((_, k) => {
            const g = p.program.read(p.results[outs.length + k]);
            for (let e = 0; e < dirs.sizes[k]; e++) blocks[o][k][a * dirs.sizes[k] + e] = element(g, e);
          });
          // Only now: a gradient that is the cotangent itself is read through the cotangent's memory.
          cot[o][a] = 0;
        }
      });
      if (outTotal === 0) run(p.program, [...inputs, ...cotArgs()]);
      values = readOutputs(fn, p);
    }
    const result = record<Record<string, Value>>();
    outs.forEach((o, i) => {
      result[o.name] = recordOf(wrt.map((w, k) => [w.name, asValue([...outShapes[i], ...dirs.shapes[k]], blocks[i][k])]));
    });
    return { outputs: values, jacobian: result, method };
  },
};
