import {
  AdjointClientError,
  type ClientOptions,
  type DifferentiateOptions,
  type FunctionInfo,
  type FunctionLike,
  type Request,
  type Result,
  type TensorInput,
  type Transport,
} from "./types.js";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * One client over either transport: deadlines, retries with back-off honouring retry-after, and a
 * registered function's definition sent again when a replica answers not_found (ids are content
 * hashes, the same on every replica, so the definition is always a valid substitute).
 */
export class AdjointClient {
  private readonly definitions = new Map<string, Record<string, unknown>>();
  /** Definitions sent again after not_found, and attempts repeated after a retryable refusal. */
  resent = 0;
  retried = 0;

  constructor(
    private readonly transport: Transport,
    private readonly options: Required<ClientOptions>,
  ) {}

  close(): void {
    this.transport.close();
  }

  /** The request's `function`: an expression string, a REST function object, or a FunctionInfo (by id). */
  functionField(fn: FunctionLike): Record<string, unknown> {
    if (typeof fn === "string") return { expression: fn };
    if (isInfo(fn)) {
      if (fn.definition) this.definitions.set(fn.id, fn.definition);
      return { id: fn.id };
    }
    return { ...fn };
  }

  async register(fn: FunctionLike, timeoutMs?: number): Promise<FunctionInfo> {
    let definition = this.functionField(fn);
    if (typeof definition.id === "string") definition = this.definitions.get(definition.id) ?? definition;
    const body = { function: definition, mode: "value" };
    const info = await this.call((r, signal) => this.transport.register(r.function, signal), body, timeoutMs);
    if (typeof definition.id !== "string") this.definitions.set(info.id, definition);
    return { ...info, definition: this.definitions.get(info.id) };
  }

  /** One point: inputs by name as numbers, typed arrays or shaped tensors. */
  differentiate(fn: FunctionLike, point: Record<string, TensorInput>, options: DifferentiateOptions = {}): Promise<Result> {
    return this.run(fn, { point }, options);
  }

  /** A batch by columns: each input's values for every point, the point as first axis. */
  batch(fn: FunctionLike, columns: Record<string, TensorInput>, options: DifferentiateOptions = {}): Promise<Result> {
    return this.run(fn, { columns }, options);
  }

  ops(timeoutMs?: number): Promise<unknown> {
    return this.call((_r, signal) => this.transport.ops(signal), { function: {}, mode: "value" }, timeoutMs);
  }

  private run(fn: FunctionLike, data: Partial<Request>, o: DifferentiateOptions): Promise<Result> {
    const request: Request = { function: this.functionField(fn), mode: o.mode ?? "reverse", ...data };
    if (o.wrt) request.wrt = o.wrt;
    if (o.tangent) request.tangent = o.tangent;
    if (o.cotangent) request.cotangent = o.cotangent;
    if (o.precision) request.precision = o.precision;
    if (o.order !== undefined) request.order = o.order;
    return this.call((r, signal) => this.transport.differentiate(r, signal), request, o.timeoutMs);
  }

  private async call<T>(op: (r: Request, signal: AbortSignal) => Promise<T>, request: Request, timeoutMs?: number): Promise<T> {
    const deadline = Date.now() + (timeoutMs ?? this.options.timeoutMs);
    let attempt = 0;
    let resent = false;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new AdjointClientError("deadline_exceeded", "the call's deadline passed while retrying");
      try {
        return await op(request, AbortSignal.timeout(left));
      } catch (e) {
        const error = asClientError(e);
        const id = request.function.id;
        const definition = typeof id === "string" ? this.definitions.get(id) : undefined;
        if (error.kind === "not_found" && !resent && definition) {
          request = { ...request, function: definition };
          resent = true;
          this.resent++;
          continue;
        }
        if (!error.retryable || attempt >= this.options.retries) throw error;
        const wait = Math.max(error.retryAfterMs ?? 0, this.options.backoffMs * 2 ** attempt * (0.5 + Math.random() / 2));
        if (Date.now() + wait >= deadline) throw error;
        await sleep(wait);
        attempt++;
        this.retried++;
      }
    }
  }
}

function isInfo(fn: FunctionLike): fn is FunctionInfo {
  return typeof fn === "object" && typeof (fn as FunctionInfo).id === "string" && Array.isArray((fn as FunctionInfo).inputs);
}

function asClientError(e: unknown): AdjointClientError {
  if (e instanceof AdjointClientError) return e;
  const error = e as { name?: string; message?: string };
  if (error?.name === "TimeoutError" || error?.name === "AbortError")
    return new AdjointClientError("deadline_exceeded", "the call's deadline passed");
  return new AdjointClientError("unavailable", String(error?.message ?? e));
}
