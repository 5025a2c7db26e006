import { createHash } from "node:crypto";
import { AdjointError, exhausted, invalid } from "../errors.js";
import { type ExpressionSource, parseExpressions } from "../ir/expression.js";
import type { Graph } from "../ir/graph.js";
import { encodeGraph } from "../ir/graph-codec.js";
import { readJsonGraph } from "../ir/json-graph.js";
import { hasUnwritableNumber, unwritableNumber } from "../json.js";
import { type ErrorData, errorToData } from "./batch.js";

/**
 * A function built on the pool when it is large (service.ts, functions.ts): written as expressions,
 * parsing and hashing 96,000 nodes held the event loop 300 ms; as a JSON graph (a gRPC message's, one
 * the event loop has as objects), building and hashing 60,000 nodes about 240 ms. The worker answers the
 * graph (ir/graph-codec.ts) and its content hash; errors name the same fields as on the event loop.
 */
export type ParseTask = { readonly kind: "parse" } & ParseSource;

/** What a parse task builds, and where it sits in the request. */
export type ParseSource = {
  /** Where the function sits in the request (`function`), for errors. */
  readonly field: string;
} & (
  | {
      readonly expressions: ExpressionSource;
      /** Where the expressions sit in the request (`function.expression`), for errors. */
      readonly at: string;
    }
  | {
      /** The JSON graph, its constants plain numbers (the task's copy of it is the structured clone's). */
      readonly graph: unknown;
      readonly maxNodes: number;
    }
);

/** Expressions at least this long (characters, all outputs together) are parsed on the pool. */
export const POOL_PARSE_CHARS = 16 * 1024;

/** The characters of an expression source, all outputs together: what POOL_PARSE_CHARS measures. */
export function expressionChars(expressions: ExpressionSource): number {
  return expressions.outputs.reduce((n, o) => n + o.text.length, 0);
}

/** What building a task's function costs a worker, µs: about a character an µs parsing, 4–5 µs a JSON graph node. */
export function parseCostUs(task: ParseTask): number {
  if ("graph" in task) return 5 * ((task.graph as { nodes: unknown[] }).nodes?.length ?? 0);
  return expressionChars(task.expressions);
}

export function parseFunction(task: ParseSource): Graph {
  if ("graph" in task) return readGraph(task.graph, task.field, task.maxNodes);
  const graph = located(() => parseExpressions(task.expressions), task.at, true);
  checkNodeCount(graph.size, task.expressions.maxNodes ?? Number.POSITIVE_INFINITY, task.field);
  return graph;
}

export function checkNodeCount(nodes: number, maxNodes: number, field: string): void {
  if (nodes > maxNodes) {
    throw exhausted(`${field}: the function has ${nodes} nodes; the limit is ${maxNodes} (ADJOINT_MAX_NODES)`, { field });
  }
}

/** Runs a core reader, prefixing the field of its errors with where the function sits in the request. */
export function located<T>(read: () => T, field: string, whole = false): T {
  try {
    return read();
  } catch (e) {
    if (e instanceof AdjointError && (e.kind === "invalid_argument" || e.kind === "resource_exhausted")) {
      const inner = e.location.field;
      const at = whole || inner === undefined ? field : `${field}.${inner}`;
      throw new AdjointError(e.kind, e.message, { ...e.location, field: at });
    }
    throw e;
  }
}

/** The ways a request gives its function; exactly one is given. */
export const SOURCES = ["expression", "expressions", "graph", "model", "id"] as const;

/**
 * The key under which a function's definition finds its id again (FunctionStore): a short expression
 * itself, else the hash of the definition's JSON. The same on the event loop and on a worker.
 */
export function sourceKey(spec: object, batch?: number): string {
  const { expression, inputs } = spec as { expression?: unknown; inputs?: unknown };
  let text: string;
  try {
    text =
      expression !== undefined && inputs === undefined && typeof expression === "string"
        ? `e:${expression}`
        : `j:${keyJson(spec)}|${batch}`;
  } catch (e) {
    // JSON.stringify recurses: only a value nested absurdly deep overflows it.
    if (e instanceof RangeError) throw invalid("function: the definition is nested too deeply", { field: "function" });
    throw e;
  }
  return text.length <= 512 ? text : `h:${createHash("sha256").update(text).digest("base64url")}`;
}

/**
 * A spec's JSON for its key. JSON.stringify writes −0 as 0 (and NaN and ±Infinity as null), so a graph
 * whose constant or operand is −0 shared its key with the one where it is 0, and was answered with
 * that function. Such numbers are written as an object no valid spec holds where a number may stand.
 */
function keyJson(spec: object): string {
  if (!hasUnwritableNumber(spec)) return JSON.stringify(spec);
  return JSON.stringify(spec, (_key, v: unknown) =>
    typeof v === "number" && unwritableNumber(v) ? { "\u0000number": v === 0 ? "-0" : String(v) } : v,
  );
}

/** A graph written as JSON (its constants numbers, nested arrays or {shape, data}), read and held to the node limit. */
export function readGraph(raw: unknown, field: string, maxNodes: number): Graph {
  const nodes = (raw as { nodes?: unknown } | null)?.nodes;
  if (Array.isArray(nodes)) checkNodeCount(nodes.length, maxNodes, `${field}.graph.nodes`);
  const graph = located(() => readJsonGraph(raw), `${field}.graph`);
  checkNodeCount(graph.size, maxNodes, field);
  return graph;
}

/** A constant in another tensor form (base64, bytes, a binary part): decoded by the service first. */
export function encodedConstant(value: unknown): boolean {
  return (
    typeof value === "object" && value !== null && !Array.isArray(value) && ("base64" in value || "bytes" in value || "binary" in value)
  );
}

/** JSON graphs of at least this many nodes are built on the pool: in a body read there, by the worker that read it. */
export const POOL_GRAPH_NODES = 1000;

/** A JSON graph worth building on the pool: POOL_GRAPH_NODES nodes or more, its constants plain numbers. */
export function largeJsonGraph(graph: unknown): boolean {
  const nodes = (graph as { nodes?: unknown } | null)?.nodes;
  return (
    Array.isArray(nodes) &&
    nodes.length >= POOL_GRAPH_NODES &&
    !nodes.some((n) => encodedConstant((n as { value?: unknown } | null)?.value))
  );
}

/**
 * A JSON graph built on the worker that read its body (json-body.ts), where building and hashing
 * 60,000 nodes held the event loop about 240 ms, and its key 25 more: the graph (ir/graph-codec.ts) and its content hash, or
 * the error building it met, named as on the event loop; and its key in the store. Only for the
 * function at `field`, whose spec it was built from.
 */
export type PrebuiltGraph = { readonly field: string; readonly key: string } & (
  | { readonly built: { readonly graph: SharedArrayBuffer; readonly hash: string }; readonly error?: undefined }
  | { readonly built?: undefined; readonly error: ErrorData }
);

/**
 * Builds the JSON graph of a request body's `function`, when it is one of at least POOL_GRAPH_NODES
 * nodes whose constants are plain numbers; `hash` compiles it (the worker keeps it for the batch that
 * follows) and gives its content hash. Anything else is left to the event loop, which says what is wrong.
 */
export function prebuildGraph(body: unknown, maxNodes: number, hash: (graph: Graph) => string): PrebuiltGraph | undefined {
  const field = "function";
  const spec = (body as Record<string, unknown> | null)?.[field] as Record<string, unknown> | undefined;
  if (typeof spec !== "object" || spec === null || SOURCES.some((k) => k !== "graph" && spec[k] !== undefined)) return undefined;
  if (!largeJsonGraph(spec.graph)) return undefined;
  const key = sourceKey(spec);
  try {
    const graph = readGraph(spec.graph, field, maxNodes);
    return { field, key, built: { hash: hash(graph), graph: encodeGraph(graph) } };
  } catch (e) {
    return { field, key, error: errorToData(e) };
  }
}
