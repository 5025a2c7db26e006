import { AdjointError, exhausted } from "../errors.js";
import { type ExpressionSource, parseExpressions } from "../ir/expression.js";
import type { Graph } from "../ir/graph.js";

/**
 * A function written as expressions, parsed on the pool when its text is long (service.ts,
 * functions.ts): parsing and hashing 96,000 nodes held the event loop 300 ms. The worker answers the
 * graph (ir/graph-codec.ts) and its content hash; errors name the same fields as on the event loop.
 */
export interface ParseTask {
  readonly kind: "parse";
  readonly expressions: ExpressionSource;
  /** Where the expressions sit in the request (`function.expression`), for errors. */
  readonly at: string;
  /** Where the function sits in the request (`function`), for errors. */
  readonly field: string;
}

/** Expressions at least this long (characters, all outputs together) are parsed on the pool. */
export const POOL_PARSE_CHARS = 16 * 1024;

export function parseFunction({ expressions, at, field }: Omit<ParseTask, "kind">): Graph {
  const graph = located(() => parseExpressions(expressions), at, true);
  checkNodeCount(graph.size, expressions.maxNodes ?? Number.POSITIVE_INFINITY, field);
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
