import type { Precision } from "../../compile/scalar-program.js";
import type { Budget } from "../../ir/budget.js";
import type { CompiledGraph, Prepared } from "../compiled-graph.js";
import { run } from "../run.js";
import { batchFields, finish, pointInputs } from "./shared.js";
import type { ModeDefinition } from "./types.js";

/** The function itself, compiled: results are its outputs. */
export function prepareValue(fn: CompiledGraph, precision: Precision, budget?: Budget): Prepared {
  return fn.prepare("value", precision, () => ({ graph: fn.graph, results: fn.outputNodes(), extraInputs: [], pass: "reverse" }), budget);
}

/** The outputs only. */
export const value: ModeDefinition = {
  evaluate(fn, inputs, options) {
    const p = prepareValue(fn, options.precision ?? "float64", options.budget);
    run(p.program, inputs);
    return finish(fn, p, inputs, options, "value", {});
  },
  batch(fn, options) {
    const prepared = prepareValue(fn, options.precision ?? "float64", options.budget);
    return { prepared, fields: batchFields("outputs", fn.graph.outputs), inputs: pointInputs(fn) };
  },
};
