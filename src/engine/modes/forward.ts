import { forward as forwardTransform } from "../../ad/forward.js";
import type { Precision } from "../../compile/scalar-program.js";
import type { Budget } from "../../ir/budget.js";
import type { NamedNode } from "../../ir/graph.js";
import { selectInputs } from "../../ir/select.js";
import { record, recordOf } from "../../names.js";
import { type CompiledGraph, type Prepared, selectionKey } from "../compiled-graph.js";
import { type InputData, run } from "../run.js";
import { buildTrace } from "../trace.js";
import type { NamedValues, Value } from "../values.js";
import {
  batchFields,
  Directions,
  element,
  finish,
  firstNonFiniteResult,
  type Mutable,
  pointInputs,
  readNamed,
  readOutputs,
} from "./shared.js";
import type { Evaluation, ModeDefinition, ModeOptions } from "./types.js";

/** Forward mode with a tangent input per wrt input: results are the outputs, then J·v per output. */
export function prepareJvp(fn: CompiledGraph, wrt: readonly NamedNode[], precision: Precision, budget?: Budget): Prepared {
  return fn.prepare(
    `jvp|${selectionKey(wrt)}`,
    precision,
    () => {
      const f = forwardTransform(fn.graph, { wrt: wrt.map((w) => w.name), budget });
      return {
        graph: f.graph,
        results: [...fn.outputNodes(), ...f.outputTangents],
        extraInputs: f.tangentInputs,
        derivatives: f.tangents,
        origin: f.origin,
        pass: "tangent",
      };
    },
    budget,
  );
}

/** J·v along the tangent v given per input. */
function jvp(fn: CompiledGraph, inputs: InputData[], options: ModeOptions): Evaluation {
  const wrt = fn.wrtOf(options.wrt);
  const p = prepareJvp(fn, wrt, options.precision ?? "float64", options.budget);
  const tangentNames = wrt.map((w, k) => ({ name: w.name, node: p.extraInputs[k].node }));
  const tan = fn.decode(options.tangent as NamedValues, tangentNames, "tangent", "input", options.allowNonFinite ?? false, p.graph);
  const all = [...inputs, ...tan];
  run(p.program, all);
  return finish(fn, p, all, options, "forward", { jvp: readNamed(p, fn.graph.outputs, fn.graph.outputs.length) });
}

/**
 * The gradient by forward mode: one sweep per input element, the tangent a unit vector each time.
 * A sweep that yields a non-finite derivative is redone on a program that differentiates with
 * respect to that input alone: there the other tangents are symbolic zeros, so an infinite partial
 * elsewhere (√x at 0, say) cannot turn 0·∞ into NaN, and the answer agrees with reverse mode.
 */
function forwardGradient(fn: CompiledGraph, inputs: InputData[], options: ModeOptions): Evaluation {
  const precision = options.precision ?? "float64";
  const wrt = fn.wrtOf(options.wrt);
  const single = fn.singleOutput();
  const resultIndex = fn.graph.outputs.length + fn.graph.outputs.indexOf(single);
  const p = prepareJvp(fn, wrt, precision, options.budget);
  const dirs = new Directions(fn, wrt);
  const sweeps: { input: number; element: number }[] = [];
  const gradient = record<Value>();
  let failed: { program: Prepared; inputs: InputData[] } | undefined;
  wrt.forEach((w, k) => {
    const g = new Float64Array(dirs.sizes[k]);
    for (let e = 0; e < g.length; e++) {
      run(p.program, [...inputs, ...dirs.unit(k, e)]);
      let d = element(p.program.read(p.results[resultIndex]), 0);
      if (!Number.isFinite(d)) {
        const alone = prepareJvp(fn, [w], precision, options.budget);
        const args = [...inputs, dirs.unit(k, e)[k]];
        run(alone.program, args);
        d = element(alone.program.read(alone.results[resultIndex]), 0);
        if (!Number.isFinite(d)) failed ??= { program: alone, inputs: args };
      }
      g[e] = d;
      sweeps.push({ input: k, element: e });
    }
    gradient[w.name] = dirs.shapes[k].length ? { shape: [...dirs.shapes[k]], data: g } : g[0];
  });
  if (wrt.length === 0) run(p.program, inputs);
  const evaluation: Mutable<Evaluation> = { outputs: readOutputs(fn, p), gradient };
  if (failed) evaluation.nonFinite = fn.diagnose(failed.program, failed.inputs, options.budget).report;
  else if (firstNonFiniteResult(p) !== undefined)
    evaluation.nonFinite = fn.diagnose(p, [...inputs, ...dirs.unit(-1, 0)], options.budget).report;
  if (options.trace) {
    // The trace's tangent column holds one entry per sweep, keyed by the input (and element) swept.
    const columns = sweeps.map(({ input, element: e }) => {
      const { read } = fn.diagnose(p, [...inputs, ...dirs.unit(input, e)], options.budget);
      const key = dirs.shapes[input].length ? `${wrt[input].name}[${e}]` : wrt[input].name;
      const values = new Map<number, Value>();
      p.graph.nodes.forEach((_, id) => {
        if (id < fn.graph.nodes.length) values.set(id, p.derivatives?.[id] == null ? 0 : read(p.derivatives[id] as number));
      });
      return { key, values };
    });
    const { read } = fn.diagnose(p, [...inputs, ...dirs.unit(-1, 0)], options.budget);
    evaluation.trace = buildTrace(fn.graph, "forward", read, (id) => recordOf(columns.map((c) => [c.key, c.values.get(id)])));
  }
  return evaluation;
}

/** Forward mode: with a tangent the Jacobian-vector product, without one the gradient by one sweep per input element. */
export const forward: ModeDefinition = {
  evaluate: (fn, inputs, options) => (options.tangent ? jvp(fn, inputs, options) : forwardGradient(fn, inputs, options)),
  batch(fn, options) {
    if (!options.tangent) return undefined;
    const wrt = selectInputs(fn.graph, options.wrt);
    return {
      prepared: prepareJvp(fn, wrt, options.precision ?? "float64", options.budget),
      fields: [...batchFields("outputs", fn.graph.outputs), ...batchFields("jvp", fn.graph.outputs)],
      inputs: [...pointInputs(fn), ...wrt.map((x) => ({ name: x.name, kind: "tangent" as const }))],
    };
  },
};
