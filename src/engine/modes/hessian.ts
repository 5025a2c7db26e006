import { forward } from "../../ad/forward.js";
import { gradientOutput, reverse } from "../../ad/reverse.js";
import type { Precision } from "../../compile/scalar-program.js";
import { invalid } from "../../errors.js";
import type { Budget } from "../../ir/budget.js";
import type { NamedNode } from "../../ir/graph.js";
import { selectInputs } from "../../ir/select.js";
import { recordOf } from "../../names.js";
import type { CompiledGraph, Prepared } from "../compiled-graph.js";
import { run } from "../run.js";
import { asValue, Directions, element, readNamed, readSingle } from "./shared.js";
import { sparseHessian } from "./sparse-hessian.js";
import type { ModeDefinition } from "./types.js";

/**
 * Second derivatives of the scalar output by forward-over-reverse: the tangent of the gradient along
 * v is H·v, with no Hessian built. Results: the output, the gradient per wrt input, then H·v per wrt input.
 */
function prepareHvp(fn: CompiledGraph, wrt: readonly NamedNode[], precision: Precision, budget: Budget | undefined): Prepared {
  const names = wrt.map((w) => w.name);
  const make = () => {
    const single = fn.singleOutput();
    const r = reverse(fn.graph, { outputs: [single.name], wrt: names, cotangent: "seed", budget });
    const f = forward(r.graph, { wrt: names, outputs: names.map(gradientOutput), budget });
    // Attribute the nodes of both passes to the primal node whose rule made them.
    const origin = Int32Array.from(f.origin, (o, id) =>
      id < r.graph.nodes.length ? r.origin[id] : o >= fn.graph.nodes.length ? r.origin[o] : o,
    );
    return {
      graph: f.graph,
      results: [single.node, ...r.gradients, ...f.outputTangents],
      extraInputs: f.tangentInputs,
      derivatives: f.tangents.slice(0, fn.graph.nodes.length),
      origin,
      pass: "tangent" as const,
    };
  };
  return fn.prepare(`hvp|${names.join(",")}`, precision, make, budget);
}

/** hessian[a][b] = ∂²f/∂a∂b, a tensor of shape a.shape ++ b.shape: one forward-over-reverse sweep per input element. */
export const hessian: ModeDefinition = {
  evaluate(fn, inputs, options) {
    if (options.sparse) return sparseHessian(fn, inputs, options);
    const wrt = selectInputs(fn.graph, options.wrt);
    const dirs = new Directions(fn, wrt);
    const p = prepareHvp(fn, wrt, options.precision ?? "float64", options.budget);
    const blocks = wrt.map((_, a) => wrt.map((_, b) => new Float64Array(dirs.sizes[a] * dirs.sizes[b])));
    for (const { k, e } of dirs.each()) {
      run(p.program, [...inputs, ...dirs.unit(k, e)]);
      // Column (k, e) of H: the tangent of every gradient.
      wrt.forEach((_, a) => {
        const col = p.program.read(p.results[1 + wrt.length + a]);
        for (let i = 0; i < dirs.sizes[a]; i++) blocks[a][k][i * dirs.sizes[k] + e] = element(col, i);
      });
    }
    if (dirs.total === 0) run(p.program, [...inputs, ...dirs.unit(-1, 0)]);
    const result = recordOf(
      wrt.map((a, i) => [a.name, recordOf(wrt.map((b, j) => [b.name, asValue([...dirs.shapes[i], ...dirs.shapes[j]], blocks[i][j])]))]),
    );
    return { outputs: readSingle(fn, p), gradient: readNamed(p, wrt, 1), hessian: result };
  },
};

/** H·v along the request's tangent, by one forward-over-reverse sweep. */
export const hvp: ModeDefinition = {
  evaluate(fn, inputs, options) {
    const wrt = selectInputs(fn.graph, options.wrt);
    if (!options.tangent) throw invalid("mode hvp needs a tangent: the vector v of H·v, by input name", { field: "tangent" });
    const p = prepareHvp(fn, wrt, options.precision ?? "float64", options.budget);
    const tangent = fn.decode(
      options.tangent,
      wrt.map((w, k) => ({ name: w.name, node: p.extraInputs[k].node })),
      "tangent",
      "input",
      options.allowNonFinite ?? false,
      p.graph,
    );
    run(p.program, [...inputs, ...tangent]);
    return { outputs: readSingle(fn, p), gradient: readNamed(p, wrt, 1), hvp: readNamed(p, wrt, 1 + wrt.length) };
  },
};

/** Δf = Σᵢ ∂²f/∂xᵢ²: one forward-over-reverse sweep per input element, keeping the diagonal only. */
export const laplacian: ModeDefinition = {
  evaluate(fn, inputs, options) {
    const wrt = selectInputs(fn.graph, options.wrt);
    const dirs = new Directions(fn, wrt);
    const p = prepareHvp(fn, wrt, options.precision ?? "float64", options.budget);
    let sum = 0;
    for (const { k, e } of dirs.each()) {
      run(p.program, [...inputs, ...dirs.unit(k, e)]);
      sum += element(p.program.read(p.results[1 + wrt.length + k]), e);
    }
    if (dirs.total === 0) run(p.program, [...inputs, ...dirs.unit(-1, 0)]);
    return { outputs: readSingle(fn, p), laplacian: sum };
  },
};
