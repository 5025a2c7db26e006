import { reverse as reverseTransform } from "../../ad/reverse.js";
import type { Precision } from "../../compile/scalar-program.js";
import type { Budget } from "../../ir/budget.js";
import type { NamedNode } from "../../ir/graph.js";
import { selectInputs } from "../../ir/select.js";
import { type CompiledGraph, type Prepared, selectionKey } from "../compiled-graph.js";
import { type InputData, run } from "../run.js";
import type { NamedValues } from "../values.js";
import { batchFields, finish, pointInputs, readNamed } from "./shared.js";
import type { Evaluation, ModeDefinition, ModeOptions } from "./types.js";

/** Reverse mode seeded at the single scalar output: results are the outputs, then one gradient per wrt input. */
export function prepareGradient(fn: CompiledGraph, wrt: readonly NamedNode[], precision: Precision, budget?: Budget): Prepared {
  const single = fn.singleOutput();
  return fn.prepare(
    `grad|${single.name}|${selectionKey(wrt)}`,
    precision,
    () => {
      const r = reverseTransform(fn.graph, { outputs: [single.name], wrt: wrt.map((w) => w.name), cotangent: "seed", budget });
      return {
        graph: r.graph,
        results: [...fn.outputNodes(), ...r.gradients],
        extraInputs: [],
        derivatives: r.adjoints,
        origin: r.origin,
        pass: "reverse",
      };
    },
    budget,
  );
}

/** Reverse mode with a cotangent input per output: results are the outputs, then vᵀJ per wrt input. */
export function prepareVjp(fn: CompiledGraph, wrt: readonly NamedNode[], precision: Precision, budget?: Budget): Prepared {
  return fn.prepare(
    `vjp|${selectionKey(wrt)}`,
    precision,
    () => {
      const r = reverseTransform(fn.graph, { wrt: wrt.map((w) => w.name), cotangent: "input", budget });
      return {
        graph: r.graph,
        results: [...fn.outputNodes(), ...r.gradients],
        extraInputs: r.cotangents,
        derivatives: r.adjoints,
        origin: r.origin,
        pass: "reverse",
      };
    },
    budget,
  );
}

/** The gradient of the single scalar output, by one reverse sweep. */
export function gradient(fn: CompiledGraph, inputs: InputData[], options: ModeOptions): Evaluation {
  const wrt = fn.wrtOf(options.wrt);
  const p = prepareGradient(fn, wrt, options.precision ?? "float64", options.budget);
  run(p.program, inputs);
  return finish(fn, p, inputs, options, "reverse", { gradient: readNamed(p, wrt, fn.graph.outputs.length) });
}

/** vᵀJ for the cotangent v given per output. */
function vjp(fn: CompiledGraph, inputs: InputData[], options: ModeOptions): Evaluation {
  const wrt = fn.wrtOf(options.wrt);
  const p = prepareVjp(fn, wrt, options.precision ?? "float64", options.budget);
  const cot = fn.decode(
    options.cotangent as NamedValues,
    fn.graph.outputs.map((o, k) => ({ name: o.name, node: p.extraInputs[k].node })),
    "cotangent",
    "output",
    options.allowNonFinite ?? false,
    p.graph,
  );
  const all = [...inputs, ...cot];
  run(p.program, all);
  return finish(fn, p, all, options, "reverse", { vjp: readNamed(p, wrt, fn.graph.outputs.length) });
}

/** Reverse mode: the gradient of the single output, or with a cotangent the vector-Jacobian product. */
export const reverse: ModeDefinition = {
  evaluate: (fn, inputs, options) => (options.cotangent ? vjp(fn, inputs, options) : gradient(fn, inputs, options)),
  batch(fn, options) {
    const precision = options.precision ?? "float64";
    const wrt = selectInputs(fn.graph, options.wrt);
    const outputs = batchFields("outputs", fn.graph.outputs);
    if (options.cotangent) {
      return {
        prepared: prepareVjp(fn, wrt, precision, options.budget),
        fields: [...outputs, ...batchFields("vjp", wrt)],
        inputs: [...pointInputs(fn), ...fn.graph.outputs.map((o) => ({ name: o.name, kind: "cotangent" as const }))],
      };
    }
    return {
      prepared: prepareGradient(fn, wrt, precision, options.budget),
      fields: [...outputs, ...batchFields("gradient", wrt)],
      inputs: pointInputs(fn),
    };
  },
};
