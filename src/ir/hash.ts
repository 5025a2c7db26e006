import { hash } from "node:crypto";
import { findOp } from "../ops/registry.js";
import { canonicalJson, formatNumberKey, type Graph } from "./graph.js";

/** One-shot: a Hash object per node made hashing a 100,000-node function cost as much as parsing it. */
function digest(text: string): string {
  return hash("sha256", text, "base64url");
}

/**
 * The function's content hash: a Merkle hash over the structure, so node ids, node order and the
 * way the function was written (expression or JSON graph) do not matter, and operand order does not
 * matter for commutative ops. Input order, names and shapes, and output names, do.
 */
export function contentHash(graph: Graph): string {
  const h = new Array<string>(graph.nodes.length);
  graph.nodes.forEach((node, id) => {
    let text: string;
    if (node.op === "input") text = `in|${node.name}|${node.shape.join("x")}|${node.dtype}`;
    else if (node.op === "const") {
      const body = node.data ? Array.from(node.data, formatNumberKey).join(",") : formatNumberKey(node.value ?? 0);
      text = `c|${node.shape.join("x")}|${node.dtype}|${body}`;
    } else {
      const argHashes = node.args.map((a) => h[a]);
      if (findOp(node.op)?.commutative) argHashes.sort();
      text = `op|${node.op}|${node.attrs ? canonicalJson(node.attrs) : ""}|${argHashes.join(",")}`;
    }
    h[id] = digest(text);
  });
  const signature = [
    ...graph.inputs.map((i) => `in:${i.name}:${h[i.node]}`),
    ...graph.outputs.map((o) => `out:${o.name}:${h[o.node]}`),
  ].join(";");
  return `fn_${hash("sha256", signature, "hex").slice(0, 32)}`;
}
