import { deserialize, serialize } from "node:v8";
import { Graph } from "../ir/graph.js";

/**
 * A function's definition in shared memory: its graph, serialised once on the main thread. Every pool
 * task carries the buffer (sharing it costs nothing); a worker that has not compiled the function yet
 * rebuilds the graph from it, one that has ignores it.
 */
export function encodeDefinition(graph: Graph): SharedArrayBuffer {
  const bytes = serialize({ nodes: graph.nodes, inputs: graph.inputs, outputs: graph.outputs });
  const shared = new SharedArrayBuffer(bytes.byteLength);
  new Uint8Array(shared).set(bytes);
  return shared;
}

export function decodeDefinition(shared: SharedArrayBuffer): Graph {
  const { nodes, inputs, outputs } = deserialize(Buffer.from(new Uint8Array(shared))) as Pick<Graph, "nodes" | "inputs" | "outputs">;
  return new Graph(nodes, inputs, outputs);
}
