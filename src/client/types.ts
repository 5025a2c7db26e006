/**
 * The client's vocabulary, shared by both transports: tensors as Float64Array with a shape, answers
 * as plain objects, one error type. Nothing here imports a transport, so a browser bundle (the
 * playground) can take the fetch client alone.
 */

/** A tensor answer: row-major data and its shape. Scalars come back as plain numbers. */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

/** What a call may take for an input: a number, a flat typed array (a vector), or a shaped tensor. */
export type TensorInput = number | Float64Array | Float32Array | readonly number[] | { shape: readonly number[]; data: ArrayLike<number> };

export type Values = Record<string, number | Tensor>;

/** The REST form of a function (docs/service.md), an expression string, or a registered FunctionInfo. */
export type FunctionLike = string | Record<string, unknown> | FunctionInfo;

export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
}

export interface FunctionInfo {
  readonly id: string;
  readonly inputs: readonly TensorSpec[];
  readonly outputs: readonly TensorSpec[];
  /** The definition, when this client registered it: sent again to a replica that lacks the id. */
  definition?: Record<string, unknown>;
}

/**
 * One answer (for a batch by columns: every point's, the point as first axis). `value` is the single
 * output (named `f` for an expression, `loss` for a model), `outputs` every output when there are
 * several; `fields` every other result field (gradient, jvp, vjp, hvp, jacobian, hessian, ...).
 */
export interface Result {
  readonly id: string;
  readonly mode: string;
  readonly value?: number | Tensor;
  readonly outputs: Values;
  readonly gradient?: Values;
  readonly fields: Record<string, unknown>;
}

export interface DifferentiateOptions {
  mode?: string;
  wrt?: readonly string[];
  tangent?: Record<string, TensorInput>;
  cotangent?: Record<string, TensorInput>;
  precision?: "float64" | "float32";
  order?: number;
  /** Deadline of the whole call in milliseconds, retries included (default: the client's). */
  timeoutMs?: number;
}

export interface ClientOptions {
  /** Default deadline of a call, ms (60,000). */
  timeoutMs?: number;
  /** Retries of a refusal with retry-after (503, RESOURCE_EXHAUSTED) or an unreachable replica (5). */
  retries?: number;
  /** First back-off, ms, doubled per retry (50). */
  backoffMs?: number;
}

/** Every failure: the problem's kind, field (a dotted path into the request) and detail. */
export class AdjointClientError extends Error {
  constructor(
    readonly kind: string,
    readonly detail: string,
    readonly field?: string,
    readonly status?: number | string,
    readonly retryAfterMs?: number,
  ) {
    super(field ? `${kind} (${field}): ${detail}` : `${kind}: ${detail}`);
    this.name = "AdjointClientError";
  }
  get retryable(): boolean {
    return this.retryAfterMs !== undefined || this.kind === "unavailable";
  }
}

/** A request in the REST shape, tensors still as the caller gave them; each transport encodes it. */
export interface Request {
  function: Record<string, unknown>;
  mode: string;
  wrt?: readonly string[];
  point?: Record<string, TensorInput>;
  columns?: Record<string, TensorInput>;
  tangent?: Record<string, TensorInput>;
  cotangent?: Record<string, TensorInput>;
  precision?: string;
  order?: number;
}

export interface Transport {
  differentiate(request: Request, signal: AbortSignal): Promise<Result>;
  register(fn: Record<string, unknown>, signal: AbortSignal): Promise<FunctionInfo>;
  ops(signal: AbortSignal): Promise<unknown>;
  close(): void;
}

/** A tensor input as shape and float64 data (a flat typed array or list is a vector). */
export function toTensor(v: TensorInput): { shape: number[]; data: Float64Array; scalar: boolean } {
  if (typeof v === "number") return { shape: [], data: Float64Array.of(v), scalar: true };
  if (v instanceof Float64Array || v instanceof Float32Array || Array.isArray(v)) {
    const data = Float64Array.from(v as ArrayLike<number>);
    return { shape: [data.length], data, scalar: false };
  }
  const t = v as { shape: readonly number[]; data: ArrayLike<number> };
  return { shape: [...t.shape], data: t.data instanceof Float64Array ? t.data : Float64Array.from(t.data), scalar: false };
}
