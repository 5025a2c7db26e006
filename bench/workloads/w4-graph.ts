import { GraphBuilder } from "../../src/ir/builder.js";
import type { Graph } from "../../src/ir/graph.js";
import { W4_INPUTS, W4_OPS, W4_SUMMED, type W4Dag, w4InputName } from "./w4.js";

/**
 * W4 as our IR, built op by op with GraphBuilder: inputs x0…x99, one node per DAG node, and the output
 * f as a left-to-right chain of 99 adds. GraphBuilder.build keeps only what f depends on (2,843 of the
 * 10,000 nodes), and hash-consing merges any repeated node.
 */
export function w4Graph(dag: W4Dag): Graph {
  const b = new GraphBuilder();
  const ids: number[] = [];
  for (let i = 0; i < W4_INPUTS; i++) ids.push(b.input(w4InputName(i)));
  for (let i = 0; i < dag.op.length; i++) {
    const args = dag.b[i] >= 0 ? [ids[dag.a[i]], ids[dag.b[i]]] : [ids[dag.a[i]]];
    ids.push(b.op(W4_OPS[dag.op[i]], args));
  }
  const first = ids.length - W4_SUMMED;
  let acc = ids[first];
  for (let k = first + 1; k < ids.length; k++) acc = b.add(acc, ids[k]);
  return b.build([{ name: "f", node: acc }]);
}
