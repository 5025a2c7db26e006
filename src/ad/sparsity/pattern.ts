import type { Graph, IrNode } from "../../ir/graph.js";
import { selectInputs, selectOutputs } from "../../ir/select.js";
import { allOps, findOp } from "../../ops/registry.js";
import type { LocalSparsity, OpDef, Shape } from "../../ops/types.js";
import { sizeOf } from "../../tensor/shape.js";
import { type Band, type Banded, compose, isBanded, MAX_BANDS, materialize, mergeBands, piecesOf } from "./bands.js";
import type { SparsityPattern } from "./csr.js";
import { Scratch } from "./explicit.js";

export type { SparsityPattern } from "./csr.js";

/** Where one output's (rows) or one input's (columns) elements sit in the flattened pattern. */
export interface PatternBlock {
  readonly name: string;
  readonly offset: number;
  readonly shape: Shape;
}

export interface JacobianPattern extends SparsityPattern {
  readonly rowBlocks: readonly PatternBlock[];
  readonly colBlocks: readonly PatternBlock[];
}

export interface PatternOptions {
  readonly outputs?: readonly string[];
  readonly wrt?: readonly string[];
  /** Most set entries one node's pattern may hold; past it detection stops with BudgetExceeded. */
  readonly maxEntries?: number;
  /** false: explicit index sets at every node, as the reference the banded representation is tested against. */
  readonly bands?: boolean;
}

/**
 * The Jacobian pattern of a graph's outputs with respect to its inputs, by propagating each node's
 * pattern through each op's sparsity rule in evaluation order. It reads only the graph, so it is the
 * same at every point and can be cached with the function.
 */
export function jacobianPattern(graph: Graph, options: PatternOptions = {}): JacobianPattern {
  const { rows, rowBlocks, colBlocks, cols, maxEntries } = outputPatterns(graph, options);
  return {
    ...stackRows(
      rows.map((p) => explicit(p, maxEntries)),
      cols,
    ),
    rowBlocks,
    colBlocks,
  };
}

/** Each output's pattern as propagation left it: banded where the structure survived, else explicit. */
export function outputPatterns(graph: Graph, options: PatternOptions = {}) {
  const wrt = selectInputs(graph, options.wrt);
  const outputs = selectOutputs(graph, options.outputs);
  const maxEntries = options.maxEntries ?? Number.POSITIVE_INFINITY;
  const colBlocks = blocks(graph, wrt);
  const cols = colBlocks.reduce((n, b) => n + sizeOf(b.shape), 0);
  const sets: (NodePattern | undefined)[] = new Array(graph.nodes.length);
  wrt.forEach((w, k) => {
    const size = sizeOf(colBlocks[k].shape);
    sets[w.node] = { rows: size, cols, bands: size === 0 ? [] : [{ lo: 0, hi: size, a: 1, b: colBlocks[k].offset }] };
  });
  const scratch = new Scratch(cols, maxEntries);
  const needed = neededNodes(graph, outputs);
  graph.nodes.forEach((node, id) => {
    if (sets[id] !== undefined || !needed[id]) return;
    sets[id] =
      node.args.length === 0 || node.dtype === "int"
        ? { rows: sizeOf(node.shape), cols, bands: [] }
        : propagate(graph, node, sets as NodePattern[], scratch, maxEntries, options.bands !== false);
  });
  const rows = outputs.map((o) => sets[o.node] as NodePattern);
  return { rows, rowBlocks: blocks(graph, outputs), colBlocks, cols, maxEntries };
}

/** A node's pattern in either representation. */
export type NodePattern = Banded | SparsityPattern;

export function explicit(p: NodePattern, maxEntries: number): SparsityPattern {
  return isBanded(p) ? materialize(p, maxEntries) : p;
}

/** The nodes the outputs read, directly or not: the others' patterns are never needed. */
function neededNodes(graph: Graph, outputs: readonly { node: number }[]): Uint8Array {
  const needed = new Uint8Array(graph.nodes.length);
  for (const o of outputs) needed[o.node] = 1;
  for (let id = graph.nodes.length - 1; id >= 0; id--) if (needed[id]) for (const a of graph.nodes[id].args) needed[a] = 1;
  return needed;
}

/** Ops that declare no sparsity rule, so that every output element is taken to read every operand element. */
export function fallbackOps(): string[] {
  return allOps()
    .filter((def) => def.kind !== "composite" && def.sparsity === undefined)
    .map((def) => def.name);
}

function blocks(graph: Graph, named: readonly { name: string; node: number }[]): PatternBlock[] {
  let offset = 0;
  return named.map((n) => {
    const shape = graph.nodes[n.node].shape;
    const block = { name: n.name, offset, shape };
    offset += sizeOf(shape);
    return block;
  });
}

/** The op's own rule, or the conservative fallback: every float operand read whole. */
function localRule(def: OpDef, graph: Graph, node: IrNode): LocalSparsity {
  const argNodes = node.args.map((a) => graph.nodes[a]);
  if (def.sparsity === undefined) return argNodes.map((a, k) => (a.dtype === "float" && def.differentiable?.[k] !== false ? "all" : null));
  return def.sparsity({
    argShapes: argNodes.map((a) => a.shape),
    argTypes: argNodes.map((a) => a.dtype),
    shape: node.shape,
    attrs: node.attrs,
    constants: argNodes.map((a) => (a.op !== "const" || a.dtype !== "int" ? undefined : (a.data ?? Float64Array.of(a.value ?? 0)))),
    op: def,
  });
}

function propagate(
  graph: Graph,
  node: IrNode,
  sets: readonly NodePattern[],
  scratch: Scratch,
  maxEntries: number,
  bands: boolean,
): NodePattern {
  const def = findOp(node.op) as OpDef;
  const local = localRule(def, graph, node);
  const parts = local.flatMap((entry, k) => {
    const operand = sets[node.args[k]];
    return entry === null || isEmpty(operand) ? [] : [{ entry, operand }];
  });
  const size = sizeOf(node.shape);
  if (parts.length === 0) return { rows: size, cols: scratch.cols, bands: [] };
  // An elementwise op on one operand of its own shape reads element for element: the sets are shared.
  if (parts.length === 1 && parts[0].entry === "same") return parts[0].operand;
  return (
    (bands ? banded(size, scratch.cols, parts) : undefined) ??
    scratch.combine(
      size,
      parts.map((p) => ({ entry: p.entry, operand: explicit(p.operand, maxEntries) })),
    )
  );
}

const isEmpty = (p: NodePattern) => (isBanded(p) ? p.bands.length === 0 : p.indices.length === 0);

/**
 * The node's bands, where every operand is banded and read through a map of one element per
 * output element (elementwise, broadcast, view, move); undefined where the structure breaks.
 */
function banded(size: number, cols: number, parts: readonly { entry: LocalSparsity[number]; operand: NodePattern }[]): Banded | undefined {
  const bands: Band[] = [];
  for (const { entry, operand } of parts) {
    if (!isBanded(operand) || entry === null || (entry === "all" && operand.rows !== 1)) return undefined;
    if (entry === "same") bands.push(...operand.bands);
    else {
      // A one-element operand read whole is one constant piece: every output reads its row 0.
      const pieces = entry === "all" ? [{ lo: 0, hi: size, a: 0, b: 0 }] : piecesOf(entry, size);
      if (pieces === undefined) return undefined;
      compose(operand.bands, pieces, bands);
    }
    if (bands.length > 4 * MAX_BANDS) return undefined;
  }
  const merged = mergeBands(bands);
  return merged.length > MAX_BANDS ? undefined : { rows: size, cols, bands: merged };
}

/** The outputs' patterns one above the other. */
function stackRows(parts: readonly SparsityPattern[], cols: number): SparsityPattern {
  const rows = parts.reduce((n, p) => n + p.rows, 0);
  const indptr = new Int32Array(rows + 1);
  const indices = new Int32Array(parts.reduce((n, p) => n + p.indices.length, 0));
  let r = 0;
  let at = 0;
  for (const p of parts) {
    indices.set(p.indices, at);
    for (let i = 0; i < p.rows; i++) indptr[r + i + 1] = at + p.indptr[i + 1];
    r += p.rows;
    at += p.indices.length;
  }
  return { rows, cols, indptr, indices };
}
