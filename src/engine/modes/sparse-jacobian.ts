import { forward } from "../../ad/forward.js";
import { reverse } from "../../ad/reverse.js";
import { recordOf } from "../../names.js";
import { type CompiledGraph, selectionKey } from "../compiled-graph.js";
import type { InputData } from "../run.js";
import { run } from "../run.js";
import { readOutputs, readResult } from "./shared.js";
import { gatherBlocks, perColour, type SparsePlan, sparsePlan } from "./sparse-plan.js";
import { nestedBlocks, patternOf } from "./sparsity.js";
import type { Evaluation, ModeOptions } from "./types.js";

/**
 * The sparse Jacobian (mode jacobian with `sparse`): one JVP per column colour or one VJP per row
 * colour, whichever colouring has fewer colours (or the request's method), all colours in one
 * program whose results are the outputs, then each block's CSR data.
 */
export function sparseJacobian(fn: CompiledGraph, inputs: InputData[], options: ModeOptions): Evaluation {
  const wrt = fn.wrtOf(options.wrt);
  const budget = options.budget;
  const plan = sparsePlan(fn, "jacobian", wrt, budget, options.method);
  const p = fn.prepare(
    `sparse-jacobian|${plan.method}|${selectionKey(wrt)}`,
    options.precision ?? "float64",
    () =>
      derive(
        fn,
        plan,
        wrt.map((w) => w.name),
        budget,
      ),
    budget,
  );
  run(p.program, inputs);
  const outs = fn.graph.outputs;
  const jacobian = recordOf(
    outs.map((o, i) => [o.name, recordOf(wrt.map((w, k) => [w.name, readResult(p, outs.length + i * wrt.length + k)]))]),
  );
  const method = plan.method === "reverse" ? "reverse" : "forward";
  return { outputs: readOutputs(fn, p), jacobian, method, colors: plan.coloring.count, csr: nestedBlocks(plan.blocks, patternOf) };
}

function derive(fn: CompiledGraph, plan: SparsePlan, names: string[], budget: ModeOptions["budget"]) {
  let parts: number[][];
  let built: ReturnType<typeof perColour>;
  if (plan.method === "forward") {
    const f = forward(fn.graph, { wrt: names, budget });
    built = perColour(fn, f.graph, f.tangentInputs, plan, budget);
    parts = built.maps.map((m) => f.outputTangents.map((t) => m[t]));
  } else {
    const r = reverse(fn.graph, { wrt: names, cotangent: "input", budget });
    built = perColour(fn, r.graph, r.cotangents, plan, budget);
    parts = built.maps.map((m) => r.gradients.map((g) => m[g]));
  }
  const { builder, maps } = built;
  const data = gatherBlocks(builder, parts, plan);
  const results = [...fn.outputNodes().map((o) => maps[0][o]), ...data];
  const graph = builder.snapshot(results.map((node, k) => ({ name: `sparse:${k}`, node })));
  return { graph, results, extraInputs: [], pass: "tangent" as const };
}
