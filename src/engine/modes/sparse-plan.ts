import {
  type Coloring,
  columnColoring,
  columnGather,
  hessianPattern,
  jacobianPattern,
  type PatternBlock,
  rowColoring,
  rowGather,
  type SparsityPattern,
  starColoring,
  starGather,
} from "../../ad/sparsity/index.js";
import type { Budget } from "../../ir/budget.js";
import { GraphBuilder } from "../../ir/builder.js";
import type { Graph, NamedNode } from "../../ir/graph.js";
import { sizeOf } from "../../tensor/shape.js";
import type { CompiledGraph } from "../compiled-graph.js";

/** One block of a sparse answer (jacobian[row][col], hessian[row][col]) in CSR form over its flattened elements. */
export interface SparseBlock {
  readonly row: string;
  readonly col: string;
  readonly shape: [number, number];
  readonly indptr: Int32Array;
  readonly indices: Int32Array;
  /** For each stored entry, its element in the products of all colours laid end to end. */
  readonly gather: Int32Array;
}

/**
 * What a sparse Jacobian or Hessian needs besides a point: the pattern, its colouring, and where each
 * entry is read from the compressed products. It depends only on the graph and wrt, so it is made
 * once per function (and per kind and wrt) and reused at every point.
 */
export interface SparsePlan {
  readonly kind: "jacobian" | "hessian";
  /** forward: column colouring and JVPs; reverse: row colouring and VJPs; star: HVPs. */
  readonly method: "forward" | "reverse" | "star";
  readonly coloring: Coloring;
  /** The seed rows' length: the flattened wrt (forward, star) or outputs (reverse). */
  readonly seedLength: number;
  readonly blocks: readonly SparseBlock[];
  readonly pattern: SparsityPattern;
}

const plans = new WeakMap<CompiledGraph, Map<string, SparsePlan>>();

/**
 * The plan of a sparse Jacobian (every output by the wrt inputs) or Hessian (the single output),
 * cached with the function. `maxEntries` bounds pattern detection (and so the colouring, which walks
 * the pattern); past it the request is refused as too dense.
 */
export function sparsePlan(
  fn: CompiledGraph,
  kind: "jacobian" | "hessian",
  wrt: readonly NamedNode[],
  budget: Budget | undefined,
  method?: "forward" | "reverse",
): SparsePlan {
  const key = `${kind}|${method ?? ""}|${wrt.map((w) => w.name).join(",")}`;
  let cache = plans.get(fn);
  if (cache === undefined) plans.set(fn, (cache = new Map()));
  let plan = cache.get(key);
  if (plan === undefined) {
    plan = makePlan(fn, kind, wrt, budget?.maxElements, method);
    cache.set(key, plan);
  }
  return plan;
}

function makePlan(
  fn: CompiledGraph,
  kind: "jacobian" | "hessian",
  wrt: readonly NamedNode[],
  maxEntries: number | undefined,
  forced?: "forward" | "reverse",
): SparsePlan {
  const names = wrt.map((w) => w.name);
  if (kind === "hessian") {
    const single = fn.singleOutput();
    const p = hessianPattern(fn.graph, { output: single.name, wrt: names, maxEntries });
    const coloring = starColoring(p);
    const map = starGather(p, coloring);
    return { kind, method: "star", coloring, seedLength: p.cols, pattern: p, blocks: splitBlocks(p, map, p.blocks, p.blocks) };
  }
  const p = jacobianPattern(fn.graph, { wrt: names, maxEntries });
  // Fewer colours means fewer sweeps; forward sweeps win ties, as they need no reverse pass.
  const columns = forced === "reverse" ? undefined : columnColoring(p);
  // A row colouring needs at least as many colours as a column's entries: when the column colouring
  // is down to that bound, the row colouring cannot win and is not worth its own transpose and pass.
  const rowBound = columns === undefined ? 0 : maxColumnCount(p);
  const rows = forced === "forward" || (columns !== undefined && columns.count <= Math.max(1, rowBound)) ? undefined : rowColoring(p);
  const useForward = rows === undefined || (columns !== undefined && columns.count <= rows.count);
  if (useForward) {
    const coloring = columns as Coloring;
    const map = columnGather(p, coloring);
    return { kind, method: "forward", coloring, seedLength: p.cols, pattern: p, blocks: splitBlocks(p, map, p.rowBlocks, p.colBlocks) };
  }
  const map = rowGather(p, rows);
  return { kind, method: "reverse", coloring: rows, seedLength: p.rows, pattern: p, blocks: splitBlocks(p, map, p.rowBlocks, p.colBlocks) };
}

function maxColumnCount(p: SparsityPattern): number {
  const counts = new Int32Array(p.cols);
  let max = 0;
  for (let k = 0; k < p.indices.length; k++) if (++counts[p.indices[k]] > max) max = counts[p.indices[k]];
  return max;
}

/** The global pattern cut into its named blocks, each with its entries' places in the products. */
function splitBlocks(
  p: SparsityPattern,
  map: Int32Array,
  rowBlocks: readonly PatternBlock[],
  colBlocks: readonly PatternBlock[],
): SparseBlock[] {
  // One output (or input) by one input: the block is the whole pattern, nothing to cut.
  if (rowBlocks.length === 1 && colBlocks.length === 1) {
    const [rb, cb] = [rowBlocks[0], colBlocks[0]];
    return [{ row: rb.name, col: cb.name, shape: [p.rows, p.cols], indptr: p.indptr, indices: p.indices, gather: map }];
  }
  return rowBlocks.flatMap((rb) =>
    colBlocks.map((cb) => {
      const rows = sizeOf(rb.shape);
      const cols = sizeOf(cb.shape);
      const indptr = new Int32Array(rows + 1);
      const indices: number[] = [];
      const gather: number[] = [];
      for (let r = 0; r < rows; r++) {
        const g = rb.offset + r;
        for (let k = p.indptr[g]; k < p.indptr[g + 1]; k++) {
          const c = p.indices[k] - cb.offset;
          if (c < 0 || c >= cols) continue;
          indices.push(c);
          gather.push(map[k]);
        }
        indptr[r + 1] = indices.length;
      }
      return {
        row: rb.name,
        col: cb.name,
        shape: [rows, cols],
        indptr,
        indices: Int32Array.from(indices),
        gather: Int32Array.from(gather),
      };
    }),
  );
}

/**
 * Copies a derived graph once per colour into one graph, each copy with its direction inputs
 * (tangents or cotangents) replaced by that colour's seed as a constant. Hash-consing shares every
 * node that does not depend on the direction (the primal and, for HVPs, the reverse pass), so the
 * program evaluates them once; in scalar graphs the 0/1 seeds simplify the copies further.
 */
export function perColour(
  fn: CompiledGraph,
  graph: Graph,
  directions: readonly NamedNode[],
  plan: SparsePlan,
  budget: Budget | undefined,
): { builder: GraphBuilder; maps: Int32Array[] } {
  const b = new GraphBuilder(budget);
  // The function's inputs first, in its order: the program takes a point's values in that order.
  for (const i of fn.graph.inputs) b.input(i.name, fn.graph.nodes[i.node].shape, fn.graph.nodes[i.node].dtype);
  const seeds = new Map(directions.map((d) => [d.node, d]));
  const offsets = new Map<number, number>();
  let at = 0;
  for (const d of directions) {
    offsets.set(d.node, at);
    at += sizeOf(graph.nodes[d.node].shape);
  }
  const maps: Int32Array[] = [];
  for (let c = 0; c < Math.max(1, plan.coloring.count); c++) {
    const map = new Int32Array(graph.nodes.length);
    graph.nodes.forEach((node, id) => {
      if (seeds.has(id)) map[id] = seedConstant(b, node.shape, plan.coloring.colors, c, offsets.get(id) as number);
      else if (node.op === "input") map[id] = b.input(node.name as string, node.shape, node.dtype);
      else if (node.op === "const")
        map[id] =
          node.data === undefined
            ? b.constant(node.value as number, node.label)
            : b.tensorConstant(node.shape, node.data, node.dtype, node.label);
      else
        map[id] = b.op(
          node.op,
          node.args.map((a) => map[a]),
          node.attrs,
          node.label,
        );
    });
    maps.push(map);
  }
  return { builder: b, maps };
}

/** Colour c's seed over one direction input: 1 where the flattened element (from `offset`) has colour c. */
function seedConstant(b: GraphBuilder, shape: readonly number[], colors: Int32Array, c: number, offset: number): number {
  const size = sizeOf(shape);
  if (shape.length === 0) return b.constant(colors[offset] === c ? 1 : 0);
  const data = new Float64Array(size);
  for (let i = 0; i < size; i++) data[i] = colors[offset + i] === c ? 1 : 0;
  return b.tensorConstant(shape, data);
}

/**
 * The program's sparse results: every colour's products (per colour, the flattened `parts` one after
 * another) joined into one vector, and for each block a gather of its entries with constant indices,
 * so that the program writes each block's CSR data directly.
 */
export function gatherBlocks(b: GraphBuilder, parts: readonly number[][], plan: SparsePlan): number[] {
  const flat = parts.flat().map((node) => {
    const shape = b.shape(node);
    return shape.length === 1 ? node : b.op("reshape", [node], { shape: [sizeOf(shape)] });
  });
  const all = flat.length === 1 ? flat[0] : b.op("concat", flat, { axis: 0 });
  return plan.blocks.map((block) =>
    block.gather.length === 0
      ? b.tensorConstant([0], new Float64Array(0))
      : b.op("gather", [all, b.tensorConstantInt([block.gather.length], Array.from(block.gather))], { axis: 0 }),
  );
}
