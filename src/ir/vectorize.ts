import { findOp } from "../ops/registry.js";
import { GraphBuilder } from "./builder.js";
import { Graph } from "./graph.js";

export interface Vectorized {
  readonly graph: Graph;
  /** New node id of every old node (−1 for nodes that were not needed). */
  readonly nodeOf: Int32Array;
}

/**
 * Turns an all-scalar graph into one that computes `lanes` evaluations at once: the chosen inputs
 * become vectors of `lanes` elements, the others stay scalars, and every op broadcasts. The compiler
 * then evaluates the whole batch in one fused loop. Only elementwise graphs qualify (a scalar graph
 * of elementwise ops is the common case: every expression over scalar inputs, and its derivatives).
 */
export function vectorize(graph: Graph, lanes: number, batched: (inputName: string) => boolean): Vectorized | undefined {
  if (!graph.isScalar) return undefined;
  for (const node of graph.nodes) {
    if (node.args.length && findOp(node.op)?.kind !== "elementwise") return undefined;
  }
  const b = new GraphBuilder();
  const nodeOf = new Int32Array(graph.nodes.length).fill(-1);
  for (const input of graph.inputs) {
    const node = graph.nodes[input.node];
    nodeOf[input.node] = b.input(input.name, batched(input.name) ? [lanes] : [], node.dtype);
  }
  graph.nodes.forEach((node, id) => {
    if (node.op === "input") return;
    if (node.op === "const") nodeOf[id] = b.constant(node.value as number, node.label);
    else
      nodeOf[id] = b.op(
        node.op,
        Array.from(node.args, (a) => nodeOf[a]),
        node.attrs,
        node.label,
      );
  });
  const outputs = graph.outputs.map((o) => ({ name: o.name, node: nodeOf[o.node] }));
  const built = b.snapshot(outputs);
  return { graph: new Graph(built.nodes, built.inputs, outputs), nodeOf };
}
