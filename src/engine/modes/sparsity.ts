export type { PatternCsr, SparsityReport } from "./types.js";

import type { Budget } from "../../ir/budget.js";
import type { NamedNode } from "../../ir/graph.js";
import { recordOf } from "../../names.js";
import type { CompiledGraph } from "../compiled-graph.js";
import { run } from "../run.js";
import { readOutputs } from "./shared.js";
import { type SparseBlock, sparsePlan } from "./sparse-plan.js";
import type { ModeDefinition, PatternCsr, SparsityReport } from "./types.js";
import { prepareValue } from "./value.js";

/** Blocks by row name, then column name, as the dense sections are keyed. */
export function nestedBlocks<T>(blocks: readonly SparseBlock[], each: (b: SparseBlock) => T): Record<string, Record<string, T>> {
  const rows = [...new Set(blocks.map((b) => b.row))];
  return recordOf(rows.map((r) => [r, recordOf(blocks.filter((b) => b.row === r).map((b) => [b.col, each(b)]))]));
}

export const patternOf = (b: SparseBlock): PatternCsr => ({ format: "csr", shape: b.shape, indptr: b.indptr, indices: b.indices });

/** The patterns (the same at every point: they read the graph only), from the cached sparse plans. */
export function sparsityReport(fn: CompiledGraph, wrt: readonly NamedNode[], budget: Budget | undefined): SparsityReport {
  const j = sparsePlan(fn, "jacobian", wrt, budget);
  const scalar = fn.graph.outputs.length === 1 && fn.graph.nodes[fn.graph.outputs[0].node].shape.length === 0;
  const h = scalar ? sparsePlan(fn, "hessian", wrt, budget) : undefined;
  return {
    jacobian: nestedBlocks(j.blocks, patternOf),
    ...(h ? { hessian: nestedBlocks(h.blocks, patternOf) } : {}),
    colors: {
      jacobian: j.coloring.count,
      method: j.method === "reverse" ? "reverse" : "forward",
      ...(h ? { hessian: h.coloring.count } : {}),
    },
  };
}

/** The Jacobian and Hessian patterns with the outputs at the point (patterns need only the shapes; the point is checked like any other). */
export const sparsity: ModeDefinition = {
  evaluate(fn, inputs, options) {
    const p = prepareValue(fn, options.precision ?? "float64", options.budget);
    run(p.program, inputs);
    return { outputs: readOutputs(fn, p), sparsity: sparsityReport(fn, fn.wrtOf(options.wrt), options.budget) };
  },
};
