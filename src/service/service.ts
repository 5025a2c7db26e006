import type { Value } from "../engine/values.js";
import type { SplitBody } from "../runtime/json-body.js";
import type { WorkerPool } from "../runtime/pool.js";
import { estimateUs } from "../runtime/scheduler.js";
import { releaseShared } from "../runtime/shared-memory.js";
import { Slots } from "./admission.js";
import type { ServiceConfig } from "./config.js";
import { allocate, checkForms, countBatch, dataBatch, fillBatch, pointBatch } from "./decode.js";
import { type FunctionEntry, FunctionStore } from "./functions.js";
import { withDrawnParameters } from "./initialize.js";
import { opsManifest } from "./manifest.js";
import type { Metrics } from "./metrics.js";
import { type MinimizeCallOptions, type MinimizeJob, Minimizer } from "./minimize.js";
import type { MinimizeInput } from "./minimize-input.js";
import { type PlannedMode, planMode } from "./modes.js";
import { answerSlot, noop, placeBatch, pointInline, shardPoint, shardRanges, shardsFor, withSlot } from "./place.js";
import { Runner } from "./run.js";
import { checkFinite, columnsOf, combineWeighted, rowsOf } from "./shape.js";
import { StreamSession } from "./stream.js";
import { DecodeContext, decodeValues } from "./tensor.js";
import type { CallContext, DifferentiateInput, DifferentiateOutput, FunctionInfo, FunctionSpec, NamedValues, ResultRow } from "./types.js";

export { StreamSession } from "./stream.js";

type Limits = Pick<
  ServiceConfig,
  | "maxNodes"
  | "maxTensorElements"
  | "maxPoints"
  | "timeLimitMs"
  | "cacheSize"
  | "registrySize"
  | "cacheBytes"
  | "inlineBudgetUs"
  | "shardMinUs"
  | "maxAnswerElements"
  | "maxInflightLarge"
>;

/** About how fast a worker reads a JSON body (parse, and base64 decoding), for the pool's queue bound. */
const JSON_BYTES_PER_US = 300;

/** What every answer starts with. */
type Head = Pick<DifferentiateOutput, "id" | "mode" | "allowNonFinite">;

/** One request on its way through the stages: what it asks, of which function, planned how. */
interface Call {
  readonly entry: FunctionEntry;
  readonly input: DifferentiateInput;
  readonly ctx: CallContext;
  /** Set when the event loop's budget was outgrown: the request runs on the pool. */
  readonly poolOnly: boolean;
  readonly plan: PlannedMode["plan"];
  readonly head: Head;
  readonly decode: DecodeContext;
  readonly deadline: number;
}

/**
 * The transport-neutral service: decodes a request into a function and points (decode.ts), finds or
 * compiles the function (functions.ts), plans its mode (modes.ts), places it inline or on the pool
 * (place.ts), runs it (run.ts) and shapes the answer (shape.ts). Both transports call only this.
 */
export class AdjointService {
  readonly functions: FunctionStore;
  private state: "starting" | "ready" | "draining" = "starting";
  /** Answers over LARGE_ANSWER numbers, made one (ADJOINT_MAX_INFLIGHT_LARGE) at a time. */
  private readonly largeAnswers: Slots;
  private readonly run: Runner;
  private readonly minimizer: Minimizer;

  constructor(
    private readonly limits: Limits,
    private readonly pool: WorkerPool,
    metrics: Metrics,
  ) {
    this.functions = new FunctionStore(limits, {
      hit: (cache) => metrics.cacheLookup(cache, "hit"),
      miss: (cache) => metrics.cacheLookup(cache, "miss"),
    });
    this.largeAnswers = new Slots(() => limits.maxInflightLarge);
    this.run = new Runner(limits, pool, metrics);
    this.minimizer = new Minimizer(limits, pool, metrics, this.functions);
  }

  /** Starts the pool; the service is ready once every worker has answered. */
  async start(): Promise<void> {
    await this.pool.start();
    if (this.state === "starting") this.state = "ready";
  }

  /** Ready to take traffic: the pool is up and the service is not shutting down. */
  get ready(): boolean {
    return this.state === "ready";
  }

  /** First step of a graceful shutdown: stop being ready (requests are still answered). */
  beginShutdown(): void {
    this.state = "draining";
  }

  /** Last step: waits for pool tasks, then stops the workers. */
  async close(): Promise<void> {
    this.state = "draining";
    await this.pool.close();
  }

  differentiate(input: DifferentiateInput, ctx: CallContext = {}): Promise<DifferentiateOutput> {
    return this.evaluate(
      this.functions.resolve(input.function, "function", () => dataBatch(input)),
      input,
      ctx,
    );
  }

  /** A minimisation checked and ready to run as one pool job (minimize.ts); errors in the request throw here. */
  prepareMinimize(input: MinimizeInput, ctx: CallContext = {}, call?: MinimizeCallOptions): MinimizeJob {
    return this.minimizer.prepare(input, ctx, call);
  }

  /**
   * A large JSON body read on the pool (runtime/json-body.ts), so that reading, parsing and decoding
   * it never hold the event loop. Undefined when the pool could not take it or the body is malformed:
   * the caller then parses it itself, to refuse it in the words a small body gets.
   */
  async readLargeJson(body: Uint8Array): Promise<SplitBody | undefined> {
    try {
      // Copied to the worker, not handed over: if it cannot read the body, the caller still has it.
      return (await this.pool.run({ kind: "json-body", body }, undefined, body.byteLength / JSON_BYTES_PER_US)).body;
    } catch {
      // The pool is full, or the body cannot cross back (nesting too deep to clone): read it here.
      return undefined;
    }
  }

  /** A stream of requests against one function, compiled once (see StreamSession). */
  openStream(): StreamSession {
    return new StreamSession(this);
  }

  registerFunction(spec: FunctionSpec | undefined): { info: FunctionInfo; created: boolean } {
    const { entry, created } = this.functions.register(spec);
    return { info: entry.info(), created };
  }

  getFunction(id: string): FunctionInfo {
    return this.functions.byId(id).info();
  }

  listOps() {
    return opsManifest();
  }

  /** Evaluates a request against a function already resolved. */
  evaluate(entry: FunctionEntry, input: DifferentiateInput, ctx: CallContext): Promise<DifferentiateOutput> {
    const planned = planMode(entry.fn, input, entry.plans, entry.defaultWrt, this.limits);
    const slot = answerSlot(entry, input, planned.plan, this.limits, this.largeAnswers);
    // Most answers are small and hold no slot: no wrapper around them.
    if (slot === noop) return this.compute(entry, input, ctx, false, planned);
    return withSlot(slot, () => this.compute(entry, input, ctx, false, planned));
  }

  /**
   * Not async itself, so that the point and batch paths below are the only promise a request makes;
   * what it throws is still a rejection, as an async function's would be.
   */
  private compute(
    entry: FunctionEntry,
    input: DifferentiateInput,
    ctx: CallContext,
    poolOnly: boolean,
    planned?: PlannedMode,
  ): Promise<DifferentiateOutput> {
    try {
      checkForms(input);
      const deadline = this.run.deadlineOf(ctx);
      const { mode, plan } = planned ?? planMode(entry.fn, input, entry.plans, entry.defaultWrt, this.limits);
      const allowNonFinite = input.allowNonFinite ?? false;
      const head: Head = { id: entry.hash, mode, allowNonFinite };
      if (input.initialize !== undefined) return this.withInitialParameters(entry, input, ctx);
      const decode = new DecodeContext(allowNonFinite, this.limits.maxTensorElements, ctx.binary);
      const call: Call = { entry, input, ctx, poolOnly, plan, head, decode, deadline };
      return input.point !== undefined ? this.computePoint(call) : this.computeBatch(call);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  private async computePoint({ entry, input, ctx, poolOnly, plan, head, decode, deadline }: Call): Promise<DifferentiateOutput> {
    const point = decodeValues(input.point as NamedValues, "point", decode);
    const cost = estimateUs(entry.work, plan.sweeps, 1);
    if (!poolOnly && pointInline(entry, plan, cost, this.limits)) {
      const evaluation = this.run.point(entry, plan, point, ctx, deadline);
      if (evaluation !== undefined) return { ...head, result: checkFinite(evaluation, head.allowNonFinite, "point") };
    }
    const shards = shardsFor(entry, plan, cost, this.pool.options.workers, this.limits);
    if (shards > 1) return { ...head, result: await this.runSharded(entry, input, point, shards, cost, ctx, deadline) };
    const batch = pointBatch(entry, plan, point, this.limits);
    const extras = await this.run.onPool(entry, batch, cost, ctx, deadline);
    const result = rowsOf(batch.layout, batch.outputs, extras, head.allowNonFinite, () => "point", plan.annotations)[0];
    // The row is a copy and every task has finished: the batch's memory can serve the next request.
    releaseShared(batch.inputs, batch.outputs);
    return { ...head, result };
  }

  private async computeBatch({ entry, input, ctx, poolOnly, plan, head, decode, deadline }: Call): Promise<DifferentiateOutput> {
    const { count, traceRows } = countBatch(entry, input, plan, this.limits);
    const { where, cost } = placeBatch(entry, plan, count, traceRows, poolOnly, this.limits);
    const batch = allocate(entry, plan, count, where === "pool", this.limits);
    fillBatch(entry, input, batch, decode);
    const extras =
      where === "inline" ? this.run.batch(entry, plan, batch, ctx, deadline) : await this.run.onPool(entry, batch, cost, ctx, deadline);
    // Outgrew the event loop's budget: the plan is marked, so this runs again on the pool.
    if (extras === undefined) return this.compute(entry, input, ctx, true);
    const { allowNonFinite } = head;
    if (input.points !== undefined) {
      const results = rowsOf(batch.layout, batch.outputs, extras, allowNonFinite, (i) => `points[${i}]`, plan.annotations);
      releaseShared(batch.inputs, batch.outputs);
      return { ...head, results };
    }
    // Columns are views of the outputs, which the answer keeps; only the inputs are done with.
    const columns = columnsOf(batch.layout, batch.outputs, extras, allowNonFinite, plan.annotations);
    releaseShared(batch.inputs);
    return { ...head, columns };
  }

  /**
   * Data parallelism: the model's batch split into contiguous shards along its first axis, each shard a
   * pool task of the same model compiled for the shard's size. The loss is a mean over the batch, so
   * the answer is the shard answers weighted by their sizes (equal to the whole batch's up to rounding).
   */
  private async runSharded(
    entry: FunctionEntry,
    input: DifferentiateInput,
    point: Record<string, Value>,
    shards: number,
    cost: number,
    ctx: CallContext,
    deadline: number,
  ): Promise<ResultRow> {
    const total = (entry.model as NonNullable<FunctionEntry["model"]>).batch;
    const allowNonFinite = input.allowNonFinite ?? false;
    const rows = await Promise.all(
      shardRanges(total, shards).map(async ([start, end]) => {
        const shard = this.functions.modelShard(entry, end - start);
        const { plan } = planMode(shard.fn, input, shard.plans, shard.defaultWrt, this.limits);
        const batch = pointBatch(shard, plan, shardPoint(entry, point, start, end), this.limits);
        const extras = await this.run.onPool(shard, batch, cost / shards, ctx, deadline);
        const row = rowsOf(batch.layout, batch.outputs, extras, allowNonFinite, () => "point", plan.annotations)[0];
        releaseShared(batch.inputs, batch.outputs);
        return { weight: (end - start) / total, row };
      }),
    );
    return combineWeighted(rows);
  }

  /** A model at parameters drawn from a seed (initialize.ts); the answer carries them. */
  private async withInitialParameters(entry: FunctionEntry, input: DifferentiateInput, ctx: CallContext): Promise<DifferentiateOutput> {
    const drawn = withDrawnParameters(entry, input, this.limits);
    const out = await this.compute(entry, drawn.input, ctx, false);
    return { ...out, parameters: drawn.parameters };
  }
}
