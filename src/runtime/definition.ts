import { deserialize, serialize } from "node:v8";
import { type ExpressionSource, parseExpressions } from "../ir/expression.js";
import { Graph } from "../ir/graph.js";

/**
 * What a worker rebuilds a function from: its graph, or, for a function written as expressions, what
 * the parser was given, parsed again there into the same graph. The source is a small fraction of
 * the graph's serialisation (0.43 MB against 7.3 MB for 96,000 nodes), and serialising that graph cost
 * the event loop 70–130 ms, as long again as parsing it.
 */
export type FunctionSource = { readonly graph: Graph } | { readonly expressions: ExpressionSource };

/**
 * A function's definition in shared memory, serialised once on the main thread. Every pool task
 * carries the buffer (sharing it costs nothing); a worker that has not compiled the function yet
 * rebuilds the graph from it, one that has ignores it.
 */
export function encodeDefinition(source: FunctionSource): SharedArrayBuffer {
  const bytes =
    "graph" in source
      ? serialize({ nodes: source.graph.nodes, inputs: source.graph.inputs, outputs: source.graph.outputs })
      : serialize({ expressions: source.expressions });
  const shared = new SharedArrayBuffer(bytes.byteLength);
  new Uint8Array(shared).set(bytes);
  return shared;
}

export function decodeDefinition(shared: SharedArrayBuffer): Graph {
  const definition = deserialize(Buffer.from(new Uint8Array(shared))) as
    | Pick<Graph, "nodes" | "inputs" | "outputs">
    | { expressions: ExpressionSource };
  if ("expressions" in definition) return parseExpressions(definition.expressions);
  return new Graph(definition.nodes, definition.inputs, definition.outputs);
}
