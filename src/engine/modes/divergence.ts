import { invalid } from "../../errors.js";
import { selectInputs } from "../../ir/select.js";
import { sizeOf } from "../../tensor/shape.js";
import { run } from "../run.js";
import { prepareJvp } from "./forward.js";
import { Directions, element, readOutputs } from "./shared.js";
import type { ModeDefinition } from "./types.js";

/**
 * ∇·F = Σᵢ ∂Fᵢ/∂xᵢ for a vector field: the outputs' elements, in order, pair with the inputs'
 * elements. One forward sweep per input element; only the diagonal entry of each is kept.
 */
export const divergence: ModeDefinition = {
  evaluate(fn, inputs, options) {
    const wrt = selectInputs(fn.graph, options.wrt);
    const dirs = new Directions(fn, wrt);
    const outs = fn.graph.outputs;
    const outSizes = outs.map((o) => sizeOf(fn.graph.nodes[o.node].shape));
    const outTotal = outSizes.reduce((a, b) => a + b, 0);
    if (outTotal !== dirs.total) {
      throw invalid(
        `divergence needs as many output elements as input elements: the outputs have ${outTotal}, the inputs (wrt) ${dirs.total}`,
        { field: "mode" },
      );
    }
    const p = prepareJvp(fn, wrt, options.precision ?? "float64", options.budget);
    // Output element `flat` lives in output o at position a.
    const locate = (flat: number): [number, number] => {
      let o = 0;
      while (flat >= outSizes[o]) flat -= outSizes[o++];
      return [o, flat];
    };
    let sum = 0;
    for (const { k, e, flat } of dirs.each()) {
      run(p.program, [...inputs, ...dirs.unit(k, e)]);
      const [o, a] = locate(flat);
      sum += element(p.program.read(p.results[outs.length + o]), a);
    }
    if (dirs.total === 0) run(p.program, inputs);
    return { outputs: readOutputs(fn, p), divergence: sum };
  },
};
