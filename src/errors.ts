/**
 * The error vocabulary shared by every layer. The core throws these; the service maps `kind` to an
 * HTTP status or a gRPC code, so no layer below the transports needs to know either protocol.
 */
export type ErrorKind =
  | "invalid_argument"
  | "not_found"
  | "resource_exhausted"
  | "deadline_exceeded"
  | "unavailable"
  | "cancelled"
  | "internal";

/** Where in the client's request a problem lies; every field optional, filled by whoever knows it. */
export interface ErrorLocation {
  /** A node id of the client's graph (or the generated label of an expression's node). */
  node?: string;
  /** A dotted path into the request body, e.g. `function.graph.nodes[3].args`. */
  field?: string;
  /** The name of a function input. */
  input?: string;
  /** 1-based column of an expression string. */
  position?: number;
}

export class AdjointError extends Error {
  readonly kind: ErrorKind;
  readonly location: ErrorLocation;

  constructor(kind: ErrorKind, message: string, location: ErrorLocation = {}) {
    super(message);
    this.name = "AdjointError";
    this.kind = kind;
    this.location = location;
  }
}

/** V8's words when an allocation fails: an array or buffer larger than the heap or the address space allows. */
const ALLOCATION_FAILED = /allocation failed|invalid (typed )?array length|array buffer allocation|out of memory|invalid string length/i;

/**
 * Any thrown value as an AdjointError; anything unexpected becomes `internal`, with a generic message:
 * its own message and stack may name files and internals, so they go to the log only. A failed
 * allocation is the request's size, not a fault of the server: resource_exhausted.
 */
export function asAdjointError(e: unknown): AdjointError {
  if (e instanceof AdjointError) return e;
  if (e instanceof RangeError && ALLOCATION_FAILED.test(e.message)) {
    return new AdjointError(
      "resource_exhausted",
      "the computation needs more memory than the server can allocate; use smaller tensors or fewer points",
    );
  }
  return new AdjointError("internal", "internal error; the server log has the details (search for the request id)");
}

/** Names as a sentence lists them: "a", "a and b", "a, b and c". */
export function listed(names: readonly string[]): string {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

export function invalid(message: string, location: ErrorLocation = {}): AdjointError {
  return new AdjointError("invalid_argument", message, location);
}

export function exhausted(message: string, location: ErrorLocation = {}): AdjointError {
  return new AdjointError("resource_exhausted", message, location);
}

/** Thrown by op shape and attribute rules, which do not know the node they are checked for. */
export class OpRuleError extends Error {
  readonly field: string | undefined;
  constructor(message: string, field?: string) {
    super(message);
    this.name = "OpRuleError";
    this.field = field;
  }
}
