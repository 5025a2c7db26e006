import type { Graph } from "../../ir/graph.js";
import { selectInputs, selectOutputs } from "../../ir/select.js";
import { gradientOutput, reverse } from "../reverse.js";
import { materialize, mergeBands, stackBanded, transposeBands } from "./bands.js";
import { jacobianPattern, outputPatterns, type PatternBlock, type SparsityPattern } from "./pattern.js";
import { transposePattern, unionPatterns } from "./pattern-ops.js";

export interface HessianPatternOptions {
  /** The scalar output (default: the only one). */
  readonly output?: string;
  readonly wrt?: readonly string[];
  readonly maxEntries?: number;
  /** false: explicit index sets throughout (the reference for tests). */
  readonly bands?: boolean;
}

export interface HessianPattern extends SparsityPattern {
  readonly blocks: readonly PatternBlock[];
}

/**
 * Which pairs of input elements interact nonlinearly: the Jacobian pattern of the gradient graph,
 * so the Jacobian rules serve for both. Symmetrised, since a gradient graph may carry an entry on
 * one side only (a value reused by both partials), and star colouring needs a symmetric pattern.
 * Where the gradient's pattern stayed banded the transpose and union are taken on the bands, and
 * CSR is built once.
 */
export function hessianPattern(graph: Graph, options: HessianPatternOptions = {}): HessianPattern {
  const [output] = selectOutputs(graph, options.output === undefined ? undefined : [options.output]);
  const wrt = selectInputs(graph, options.wrt).map((w) => w.name);
  const r = reverse(graph, { cotangent: "seed", outputs: [output.name], wrt });
  const patternOptions = { outputs: wrt.map(gradientOutput), wrt, maxEntries: options.maxEntries, bands: options.bands };
  const parts = outputPatterns(r.graph, patternOptions);
  const stacked = options.bands === false ? undefined : stackBanded(parts.rows, parts.cols);
  const transposed = stacked && transposeBands(stacked);
  if (stacked !== undefined && transposed !== undefined) {
    const bands = mergeBands([...stacked.bands, ...transposed.bands]);
    return { ...materialize({ rows: stacked.rows, cols: stacked.cols, bands }, parts.maxEntries), blocks: parts.colBlocks };
  }
  const j = jacobianPattern(r.graph, patternOptions);
  return { ...unionPatterns(j, transposePattern(j)), blocks: j.colBlocks };
}
