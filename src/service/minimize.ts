import { MessageChannel } from "node:worker_threads";
import type { Value } from "../engine/values.js";
import { AdjointError, exhausted, invalid } from "../errors.js";
import { record } from "../names.js";
import type { Batch } from "../runtime/batch.js";
import { errorFromData } from "../runtime/batch.js";
import type { MinimizeMethod, MinimizeOutcome, MinimizeTask, ProgressMessage, Variable } from "../runtime/minimize.js";
import { PoolFullError, TaskAbortedError, type WorkerPool } from "../runtime/pool.js";
import { estimateUs } from "../runtime/scheduler.js";
import { stopSignal } from "../runtime/stop-signal.js";
import { now } from "../runtime/task.js";
import { sizeOf } from "../tensor/shape.js";
import type { ServiceConfig } from "./config.js";
import { dataBatch, pointBatch } from "./decode.js";
import { RetryableError } from "./errors.js";
import type { FunctionEntry, FunctionStore } from "./functions.js";
import { withDrawnParameters } from "./initialize.js";
import type { Metrics } from "./metrics.js";
import { boundsOf, type MinimizeInput, type MinimizeOutput, type MinimizeProgress, methodOf, settingsOf } from "./minimize-input.js";
import { type ModePlan, planMode } from "./modes.js";
import { DecodeContext, decodeValues } from "./tensor.js";
import type { CallContext, NamedValues, ValueMap } from "./types.js";

export type MinimizeLimits = Pick<ServiceConfig, "timeLimitMs" | "maxTensorElements" | "maxPoints" | "maxNodes">;

/** At most this many progress messages a second (the bound for SSE and gRPC alike). */
const PROGRESS_INTERVAL_MS = 50;
/** A worker stuck in one evaluation past the time limit is stopped this much later (piscina terminates it). */
const BACKSTOP_MS = 5000;
/** L-BFGS-B's default memory (src/optimize/lbfgsb.ts), for the working-memory check. */
const DEFAULT_LBFGS_MEMORY = 10;
/** How long the answer waits for progress records still in flight (a worker that died never closes its port). */
const PROGRESS_DRAIN_MS = 1000;

/** What a transport asks of a run besides the request: whether progress records carry the point. */
export interface MinimizeCallOptions {
  readonly progressPoints?: boolean;
}

/** A validated run, not started: errors in the request surface before a transport commits to a stream. */
export interface MinimizeJob {
  readonly id: string;
  run(onProgress?: (p: MinimizeProgress) => void): Promise<MinimizeOutput>;
}

/**
 * Server-side minimisation through the differentiate stages: the function is resolved by the store
 * (functions.ts), the start decoded as a point (tensor.ts, decode.ts), the gradient planned as reverse
 * mode (modes.ts, with the pool's budgets), and the whole loop runs as one pool task next to the
 * compiled function (runtime/minimize.ts), with the service's time limit.
 */
export class Minimizer {
  constructor(
    private readonly limits: MinimizeLimits,
    private readonly pool: WorkerPool,
    private readonly metrics: Metrics,
    private readonly functions: FunctionStore,
  ) {}

  prepare(input: MinimizeInput, ctx: CallContext = {}, call: MinimizeCallOptions = {}): MinimizeJob {
    if (typeof input !== "object" || input === null) throw invalid("the request must be an object");
    const method = methodOf(input);
    const settings = settingsOf(input);
    const entry = this.functions.resolve(input.function, "function", () => dataBatch({ point: input.start }));
    const start = this.startPoint(entry, input);
    const plan = this.gradientPlan(entry, input);
    const decode = new DecodeContext(false, this.limits.maxTensorElements, ctx.binary);
    const batch = pointBatch(entry, plan, decodeValues(start, "start", decode), this.limits);
    const { variables, length } = variablesOf(plan, batch);
    checkWorkingMemory(method, settings.memory, length, this.limits);
    const bounds = boundsOf(input, method, variables, length, new DecodeContext(true, this.limits.maxTensorElements, ctx.binary));
    const hvp = method === "newton-cg" ? this.hvpRequest(entry, input, variables) : undefined;
    const limit = Math.min(settings.timeLimitMs ?? Number.POSITIVE_INFINITY, this.limits.timeLimitMs, clientLimit(ctx));
    // Whole milliseconds: the limit appears in the answer's message.
    const timeLimitMs = Math.max(0, Math.floor(limit));
    const costUs = Math.min(
      estimateUs(entry.work, plan.sweeps, 1) * 2 * Math.min(settings.maxIterations ?? 1000, 1000),
      this.limits.timeLimitMs * 250,
    );
    const job = { entry, method, plan, variables, batch, hvp, costUs, ctx, call };
    const runSettings = { ...settings, timeLimitMs, ...(bounds ? { lower: bounds.lower, upper: bounds.upper } : {}) };
    return {
      id: entry.hash,
      run: (onProgress) => this.run({ ...job, settings: runSettings }, onProgress),
    };
  }

  /** The start as a point, with a model's parameters drawn from `initialize` when it asks. */
  private startPoint(entry: FunctionEntry, input: MinimizeInput): NamedValues {
    if (input.start === undefined)
      throw invalid("start is required: the variables' starting values and the fixed inputs", { field: "start" });
    if (input.initialize === undefined) return input.start;
    const drawn = withDrawnParameters(entry, { point: input.start, initialize: input.initialize }, this.limits);
    return drawn.input.point as NamedValues;
  }

  /** Reverse mode over the variables (wrt defaulted as differentiate does), with the pool's budget. */
  private gradientPlan(entry: FunctionEntry, input: MinimizeInput): ModePlan {
    const outputs = entry.fn.graph.outputs;
    if (outputs.length !== 1 || sizeOf(entry.fn.graph.nodes[outputs[0].node].shape) !== 1) {
      throw invalid("function: minimize needs a function with one scalar output (a model's loss is one)", { field: "function" });
    }
    return planMode(entry.fn, { mode: "reverse", wrt: input.wrt }, entry.plans, entry.defaultWrt, this.limits).plan;
  }

  /** newton-cg: the hvp mode planned like differentiate's (its budgets and limits), with a zero tangent. */
  private hvpRequest(entry: FunctionEntry, input: MinimizeInput, variables: readonly Variable[]) {
    const tangent = record<Value>();
    for (const v of variables) tangent[v.name] = v.shape.length === 0 ? 0 : { shape: v.shape, data: new Array(v.size).fill(0) };
    const wrt = input.wrt ?? entry.defaultWrt;
    return planMode(entry.fn, { mode: "hvp", wrt, tangent: tangent as NamedValues }, undefined, entry.defaultWrt, this.limits).plan.request;
  }

  private async run(job: Job, onProgress?: (p: MinimizeProgress) => void): Promise<MinimizeOutput> {
    const { entry, ctx, batch } = job;
    if (ctx.signal?.aborted) throw cancelled(this.metrics);
    const stop = new Int32Array(new SharedArrayBuffer(4));
    // Without a listener (a plain POST) no channel: creating and transferring one costs more than
    // a short run's whole optimisation would save by skipping it.
    const channel = onProgress ? new MessageChannel() : undefined;
    let done = false;
    channel?.port1.on("message", (m: ProgressMessage) => {
      if (!done) onProgress?.(progressOf(m, job.variables));
    });
    // The worker closes its end when the run ends, after its last progress record: the close arrives
    // after every record, whereas the task's answer travels on another channel and may overtake them.
    const delivered = channel ? new Promise<void>((resolve) => channel.port1.once("close", () => resolve())) : undefined;
    // The client leaving stops the run at its next iteration; the worker answers the point reached.
    const leave = () => Atomics.store(stop, 0, 1);
    ctx.signal?.addEventListener("abort", leave, { once: true });
    const backstop = stopSignal(Math.ceil(job.settings.timeLimitMs) + BACKSTOP_MS);
    const task: MinimizeTask = {
      kind: "minimize",
      hash: entry.hash,
      definition: entry.definition,
      layout: batch.layout,
      inputs: batch.inputs,
      variables: job.variables,
      method: job.method,
      gradient: job.plan.request,
      ...(job.hvp ? { hvp: job.hvp } : {}),
      settings: job.settings,
      stop,
      ...(channel ? { port: channel.port2 } : {}),
      progressPoints: job.call.progressPoints ?? false,
      progressIntervalMs: PROGRESS_INTERVAL_MS,
      postedAt: now(),
    };
    this.metrics.ranOnPool();
    try {
      const result = await this.pool.run(task, backstop.signal, job.costUs, channel ? [channel.port2] : undefined);
      if (delivered) await Promise.race([delivered, new Promise((resolve) => setTimeout(resolve, PROGRESS_DRAIN_MS).unref())]);
      this.metrics.ranTask(result, task.postedAt);
      if (result.error) throw errorFromData(result.error);
      return this.answer(job, result.minimize as MinimizeOutcome);
    } catch (e) {
      throw this.failure(e);
    } finally {
      done = true;
      backstop.release();
      ctx.signal?.removeEventListener("abort", leave);
      channel?.port1.close();
    }
  }

  private answer(job: Job, r: MinimizeOutcome): MinimizeOutput {
    if (r.status === "non_finite" && r.iterations === 0) {
      throw invalid(`start: ${r.message}: start from a point where the function and its gradient are finite`, { field: "start" });
    }
    if (r.status === "cancelled") this.metrics.cancelled.inc({ reason: "cancelled" });
    return {
      id: job.entry.hash,
      method: job.method,
      point: pointOf(r.x, job.variables),
      value: r.value,
      gradientNorm: r.gradientNorm,
      iterations: r.iterations,
      evaluations: r.evaluations,
      hvps: r.hvps,
      status: r.status,
      message: r.message,
      history: r.history,
    };
  }

  private failure(e: unknown): unknown {
    if (e instanceof PoolFullError) return new RetryableError("resource_exhausted", `the server is busy: ${e.message}; retry later`, 1);
    if (!(e instanceof TaskAbortedError)) return e;
    this.metrics.cancelled.inc({ reason: "deadline" });
    return new AdjointError("deadline_exceeded", "an evaluation ran far past the run's time limit; the run was stopped");
  }
}

interface Job {
  readonly entry: FunctionEntry;
  readonly method: MinimizeMethod;
  readonly plan: ModePlan;
  readonly variables: readonly Variable[];
  readonly batch: Batch;
  readonly hvp?: MinimizeTask["hvp"];
  readonly costUs: number;
  readonly ctx: CallContext;
  readonly call: MinimizeCallOptions;
  readonly settings: MinimizeTask["settings"] & { readonly timeLimitMs: number };
}

/**
 * The time a client's deadline leaves the run: it stops a little before, so that its last message,
 * with the point reached, arrives while the client still listens.
 */
function clientLimit(ctx: CallContext): number {
  if (ctx.deadline === undefined) return Number.POSITIVE_INFINITY;
  const left = ctx.deadline - Date.now();
  return left - Math.min(100, Math.max(5, left * 0.1));
}

function cancelled(metrics: Metrics): AdjointError {
  metrics.cancelled.inc({ reason: "cancelled" });
  return new AdjointError("cancelled", "the client cancelled the request");
}

/** The variables, in the plan's gradient order, with their slots in the start's batch and places in x. */
function variablesOf(plan: ModePlan, batch: Batch): { variables: Variable[]; length: number } {
  let at = 0;
  const variables: Variable[] = [];
  for (const field of plan.fields) {
    if (field.section !== "gradient") continue;
    const slot = batch.layout.inputs.find((i) => i.name === field.name) as Batch["layout"]["inputs"][number];
    variables.push({ ...slot, at });
    at += slot.size;
  }
  if (variables.length === 0) throw invalid("wrt: minimize needs at least one variable", { field: "wrt" });
  return { variables, length: at };
}

/** x split back into the variables: numbers for scalars, tensors viewing x otherwise. */
export function pointOf(x: Float64Array, variables: readonly Variable[]): ValueMap {
  const point = record<Value>();
  for (const v of variables) point[v.name] = v.shape.length === 0 ? x[v.at] : { shape: v.shape, data: x.subarray(v.at, v.at + v.size) };
  return point;
}

function progressOf(m: ProgressMessage, variables: readonly Variable[]): MinimizeProgress {
  const p = { iteration: m.iteration, value: m.value, gradientNorm: m.gradientNorm, evaluations: m.evaluations, elapsedMs: m.elapsedMs };
  return m.x ? { ...p, point: pointOf(m.x, variables) } : p;
}

/**
 * L-BFGS-B keeps `memory` pairs of n-vectors and a few (2·memory)² matrices: the client sets both sizes,
 * so the worker's memory is checked against the element budget before the run allocates it.
 */
function checkWorkingMemory(method: MinimizeMethod, memory: number | undefined, variables: number, limits: MinimizeLimits): void {
  if (method !== "lbfgs") return;
  const m = memory ?? DEFAULT_LBFGS_MEMORY;
  const elements = 2 * m * variables + 12 * m * m + 16 * variables;
  const limit = 2 * limits.maxTensorElements;
  if (elements > limit) {
    throw exhausted(
      `options.memory: L-BFGS-B with memory ${m} over ${variables} variables needs about ${elements} numbers of working memory; the limit is ${limit} (twice ADJOINT_MAX_TENSOR_ELEMENTS): use a smaller memory`,
      { field: "options.memory" },
    );
  }
}
