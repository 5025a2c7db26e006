import type { Evaluation } from "../engine/compiled-function.js";
import type { SparsityReport } from "../engine/modes/index.js";
import type { NonFiniteReport } from "../engine/provenance.js";
import type { SectionsOf, SectionValues } from "../engine/sections.js";
import type { Trace } from "../engine/trace.js";
import type { Value } from "../engine/values.js";

/**
 * The transport-neutral request and answer. The REST body is exactly `DifferentiateInput` (openapi.yaml);
 * the gRPC adapter converts its messages into it. Tensor values come in any of the forms below and are
 * decoded in one place, tensor.ts.
 */

/** Element types of raw tensor data (base64, binary, bytes); integers are read as exact float64. */
export type ElementDType = "float64" | "float32" | "int32" | "int64";

/** A dense tensor written as an object: a shape and one of the data forms. */
export interface TensorObject {
  readonly shape: readonly number[];
  /** Element type of base64, binary and bytes data (default float64). */
  readonly dtype?: ElementDType;
  /** Row-major numbers (or "NaN", "Infinity", "-Infinity" where the request allows them). */
  readonly data?: readonly unknown[];
  /** Row-major little-endian bytes, base64-encoded. */
  readonly base64?: string;
  /** Row-major little-endian bytes in the binary part of a framed HTTP body (offset from its start). */
  readonly binary?: { readonly offset: number; readonly length: number };
  /** Row-major little-endian bytes already in memory (gRPC `raw`); never from JSON. */
  readonly bytes?: Uint8Array;
}

/** A number, a non-finite number as a string, nested arrays, or a tensor object. */
export type TensorValue = number | string | readonly unknown[] | TensorObject;

export type NamedValues = Readonly<Record<string, TensorValue>>;

export interface InputDecl {
  readonly name: string;
  readonly shape?: readonly number[];
  readonly dtype?: "float" | "int";
}

/** Exactly one source of a function. */
export interface FunctionSpec {
  readonly expression?: string;
  readonly expressions?: Readonly<Record<string, string>>;
  readonly graph?: unknown;
  readonly model?: unknown;
  readonly id?: string;
  /** For expressions: the inputs in order (default: free variables in order of appearance). */
  readonly inputs?: readonly (string | InputDecl)[];
  /** For models: the batch size (default: the first axis of the request's `x`). */
  readonly batch?: number;
}

export interface DifferentiateInput {
  /** Optional only in a stream after its first message. */
  readonly function?: FunctionSpec;
  readonly point?: NamedValues;
  readonly points?: readonly NamedValues[];
  /** A batch by columns: each input's values for all points, the point index first. */
  readonly columns?: NamedValues;
  readonly mode?: string;
  readonly wrt?: readonly string[];
  readonly tangent?: NamedValues;
  readonly cotangent?: NamedValues;
  readonly trace?: boolean;
  readonly allowNonFinite?: boolean;
  readonly precision?: "float64" | "float32";
  /** derivative: the order along one input. */
  readonly order?: number;
  /** jacobian: force forward or reverse sweeps. */
  readonly method?: "forward" | "reverse";
  /** jacobian, hessian: answer each block in CSR form by compressed sweeps (one per colour). */
  readonly sparse?: boolean;
  /** How a JSON answer writes tensors: plain arrays (default) or base64 bytes. */
  readonly encoding?: "json" | "base64";
  /**
   * Models: initialise every parameter deterministically from this seed (the point then carries only
   * x and y) and answer the parameters too.
   */
  readonly initialize?: { readonly seed: number };
}

/** What the caller knows about the call beyond its body. */
export interface CallContext {
  /** Aborted when the client goes away or its deadline passes. */
  readonly signal?: AbortSignal;
  /** The client's deadline, ms since the epoch. The service applies its own time limit as well. */
  readonly deadline?: number;
  /** The binary part of a framed HTTP body, which `binary` tensor references point into. */
  readonly binary?: Uint8Array;
}

/** Results by name: a number for a scalar, else {shape, data} (the engine's Value). */
export type ValueMap = Record<string, Value>;

/** One point's answer: the engine's sections (SECTIONS), plus what the mode reports beside them. */
export interface ResultRow extends SectionValues {
  readonly outputs: ValueMap;
  readonly trace?: Trace;
  readonly nonFinite?: NonFiniteReport;
  readonly check?: Evaluation["check"];
  /** jacobian: which sweeps computed it. */
  readonly method?: "forward" | "reverse";
  /** derivative: the inputs differentiated with respect to, in order. */
  readonly partials?: readonly string[];
  /** Sparse jacobian, hessian: how many colours (compressed sweeps), and each block's CSR structure (the section holds its data). */
  readonly colors?: number;
  readonly csr?: SparseStructure;
  /** sparsity: the patterns alone (computed with the plan, the same at every point). */
  readonly sparsity?: SparsityReport;
}

/** The CSR structure (shape, indptr, indices) of each block of a sparse section, keyed as the section is. */
export type SparseStructure = NonNullable<Evaluation["csr"]>;

/** A result field for every point of a batch: a tensor whose first axis is the point. */
export interface Column {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

export type ColumnMap = Record<string, Column>;

/** A batch's answer by columns: each section's fields for every point (SECTIONS), plus the mode's notes. */
export interface ColumnsResult extends SectionsOf<Column> {
  readonly outputs: ColumnMap;
  readonly method?: "forward" | "reverse";
  readonly partials?: readonly string[];
  readonly colors?: number;
  readonly csr?: SparseStructure;
  readonly sparsity?: SparsityReport;
  /** Points whose results are not finite, with where the first non-finite value arose. */
  readonly nonFinite?: (NonFiniteReport & { readonly index: number })[];
}

export interface DifferentiateOutput {
  /** The function's content hash. */
  readonly id: string;
  readonly mode: string;
  readonly allowNonFinite: boolean;
  /** For `point`. */
  readonly result?: ResultRow;
  /** For `points`, in order. */
  readonly results?: ResultRow[];
  /** For `columns`. */
  readonly columns?: ColumnsResult;
  /** The parameters a model was initialised with (when the request asked for `initialize`). */
  readonly parameters?: ValueMap;
}

export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
}

export interface FunctionInfo {
  readonly id: string;
  readonly inputs: TensorSpec[];
  readonly outputs: TensorSpec[];
  readonly nodeCount: number;
  readonly opCount: number;
}

/**
 * The batch memory an answer's tensors view, for an encoder whose encoding views it too (the binary
 * framing's tensors and a gRPC answer's parts, written to the socket from where the worker put them):
 * `keep` holds it past the encoder until the function it returns is called, once the answer is sent.
 */
export interface AnswerMemory {
  keep(): () => void;
  /** Whether `data` lies in this memory (so that keep() holds it); absent where nothing is lent. */
  lends?(data: Float64Array): boolean;
}
