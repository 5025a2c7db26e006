import { forward } from "../../ad/forward.js";
import { gradientOutput, reverse } from "../../ad/reverse.js";
import { recordOf } from "../../names.js";
import { type CompiledGraph, selectionKey } from "../compiled-graph.js";
import type { InputData } from "../run.js";
import { run } from "../run.js";
import { readNamed, readResult, readSingle } from "./shared.js";
import { gatherBlocks, perColour, sparsePlan } from "./sparse-plan.js";
import { nestedBlocks, patternOf } from "./sparsity.js";
import type { Evaluation, ModeOptions } from "./types.js";

/**
 * The sparse Hessian of the scalar output (mode hessian with `sparse`): one Hessian-vector product
 * (forward over reverse) per star colour, all colours in one program whose results are the output,
 * the gradient, then each block's CSR data, decompressed by a gather with constant indices.
 */
export function sparseHessian(fn: CompiledGraph, inputs: InputData[], options: ModeOptions): Evaluation {
  const wrt = fn.wrtOf(options.wrt);
  const names = wrt.map((w) => w.name);
  const budget = options.budget;
  const plan = sparsePlan(fn, "hessian", wrt, budget);
  const p = fn.prepare(
    `sparse-hessian|${selectionKey(wrt)}`,
    options.precision ?? "float64",
    () => {
      const single = fn.singleOutput();
      const r = reverse(fn.graph, { outputs: [single.name], wrt: names, cotangent: "seed", budget });
      const f = forward(r.graph, { wrt: names, outputs: names.map(gradientOutput), budget });
      const { builder, maps } = perColour(fn, f.graph, f.tangentInputs, plan, budget);
      const data = gatherBlocks(
        builder,
        maps.map((m) => f.outputTangents.map((t) => m[t])),
        plan,
      );
      const results = [maps[0][single.node], ...r.gradients.map((g) => maps[0][g]), ...data];
      const graph = builder.snapshot(results.map((node, k) => ({ name: `sparse:${k}`, node })));
      return { graph, results, extraInputs: [], pass: "tangent" as const };
    },
    budget,
  );
  run(p.program, inputs);
  const offset = 1 + wrt.length;
  const hessian = recordOf(wrt.map((a, i) => [a.name, recordOf(wrt.map((b, j) => [b.name, readResult(p, offset + i * wrt.length + j)]))]));
  return {
    outputs: readSingle(fn, p),
    gradient: readNamed(p, wrt, 1),
    hessian,
    colors: plan.coloring.count,
    csr: nestedBlocks(plan.blocks, patternOf),
  };
}
