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
