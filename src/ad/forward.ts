import type { Budget } from "../ir/budget.js";
import { GraphBuilder } from "../ir/builder.js";
import type { Graph, IrNode, NamedNode } from "../ir/graph.js";
import { originTable, selectInputs, selectOutputs } from "../ir/select.js";
import { findOp } from "../ops/registry.js";
import { broadcastTo, zerosOf } from "../ops/rule-helpers.js";
import type { MaybeNode, OpDef, RuleBuilder } from "../ops/types.js";

export interface ForwardResult {
  /** The primal graph with the tangent nodes appended; primal node ids are unchanged. */
  readonly graph: Graph;
  /** Tangent node of each primal node, or null where it is identically zero. */
  readonly tangents: readonly MaybeNode[];
  /** The tangent inputs `tangent:<name>`, one per differentiated input. */
  readonly tangentInputs: readonly NamedNode[];
  /** Tangent of each selected output (a zero constant where none flows). */
  readonly outputTangents: readonly number[];
  /** For each node the transform added: the primal node whose rule built it (−1 otherwise). */
  readonly origin: Int32Array;
}

export interface ForwardOptions {
  readonly outputs?: readonly string[];
  readonly wrt?: readonly string[];
  /** Refuses to build past it (the request's budget); unbounded without one. */
  readonly budget?: Budget;
}

export const TANGENT_PREFIX = "tangent:";

/**
 * Forward mode as a graph transform: each node's tangent is built from its operands' tangents by the
 * op's rule, in evaluation order. The tangents of the inputs are new inputs, so one compiled program
 * serves every direction (a Jacobian-vector product per call).
 */
export function forward(graph: Graph, options: ForwardOptions = {}): ForwardResult {
  const b = GraphBuilder.extend(graph, options.budget);
  const wrt = selectInputs(graph, options.wrt);
  const outputs = selectOutputs(graph, options.outputs);
  const tangents: MaybeNode[] = new Array(graph.nodes.length).fill(null);
  const tangentInputs: NamedNode[] = [];
  for (const w of wrt) {
    const name = `${TANGENT_PREFIX}${w.name}`;
    const t = b.input(name, graph.nodes[w.node].shape);
    tangents[w.node] = t;
    tangentInputs.push({ name, node: t });
  }
  const marks: [number, number][] = [];
  graph.nodes.forEach((node, id) => {
    if (node.args.length === 0) return;
    const argTangents = node.args.map((a) => tangents[a]);
    if (argTangents.every((t) => t === null)) return;
    const def = findOp(node.op) as OpDef;
    const before = b.nodes.length;
    const t = outputTangent(b, def, node, id, argTangents);
    tangents[id] = t === null ? null : broadcastTo(b, t, node.shape);
    marks.push([before, id]);
  });
  const outputTangents = outputs.map((o) => tangents[o.node] ?? zerosOf(b, graph.nodes[o.node].shape));
  const resultOutputs = [...outputs, ...outputs.map((o, k) => ({ name: `${TANGENT_PREFIX}${o.name}`, node: outputTangents[k] }))];
  return {
    graph: b.snapshot(resultOutputs),
    tangents,
    tangentInputs,
    outputTangents,
    origin: originTable(graph.nodes.length, b.nodes.length, marks),
  };
}

function outputTangent(b: RuleBuilder, def: OpDef, node: IrNode, id: number, argTangents: readonly MaybeNode[]): MaybeNode {
  const masked = argTangents.map((t, k) => (def.differentiable?.[k] === false ? null : t));
  if (masked.every((t) => t === null)) return null;
  if (def.jvp) return def.jvp(b, node.args, id, masked, node.attrs);
  if (!def.partials) throw new Error(`op ${def.name} has no forward rule`);
  const partials = def.partials(
    b,
    node.args,
    id,
    masked.map((t) => t !== null),
  );
  let sum: MaybeNode = null;
  partials.forEach((p, k) => {
    const t = masked[k];
    if (p === null || t === null) return;
    const term = b.mul(p, t);
    sum = sum === null ? term : b.add(sum, term);
  });
  return sum;
}
