import { deserialize, serialize } from "node:v8";
import { type ExpressionSource, parseExpressions } from "../ir/expression.js";
import type { Graph } from "../ir/graph.js";
import { decodeGraph, encodeGraph } from "../ir/graph-codec.js";

/**
 * What a worker rebuilds a function from: its graph (ir/graph-codec.ts), or, for a function written as
 * expressions, what the parser was given, parsed again there into the same graph. The source is a
 * small fraction of the graph (0.43 MB against 3.6 MB for 96,000 nodes), and nothing the size of the
 * graph is written on the event loop.
 */
export type FunctionSource =
  | { readonly graph: Graph }
  | { readonly expressions: ExpressionSource }
  /** A graph a worker has written in the codec's form already (a JSON graph built on the pool). */
  | { readonly encoded: SharedArrayBuffer };

/**
 * A function's definition in shared memory, serialised once on the main thread. Every pool task
 * carries the buffer (sharing it costs nothing); a worker that has not compiled the function yet
 * rebuilds the graph from it, one that has ignores it.
 */
export function encodeDefinition(source: FunctionSource): SharedArrayBuffer {
  if ("encoded" in source) return source.encoded;
  if ("graph" in source) return encodeGraph(source.graph);
  const bytes = serialize(source.expressions);
  // A graph's block starts with its node count, never negative: -1 marks expressions.
  const shared = new SharedArrayBuffer(8 + bytes.byteLength);
  new Int32Array(shared, 0, 1)[0] = EXPRESSIONS;
  new Uint8Array(shared, 8).set(bytes);
  return shared;
}

const EXPRESSIONS = -1;

export function decodeDefinition(shared: SharedArrayBuffer): Graph {
  if (new Int32Array(shared, 0, 1)[0] !== EXPRESSIONS) return decodeGraph(shared);
  return parseExpressions(deserialize(new Uint8Array(new Uint8Array(shared, 8))) as ExpressionSource);
}
