import type { Evaluation } from "../engine/compiled-function.js";
import { mapSections, sectionValues, setField } from "../engine/sections.js";
import { firstNonFinite, type Value } from "../engine/values.js";
import { AdjointError, exhausted, invalid } from "../errors.js";
import { BudgetExceeded } from "../ir/budget.js";
import { initializeParameters } from "../ir/model.js";
import { own, record } from "../names.js";
import {
  type Batch,
  type BatchLayout,
  errorFromData,
  evaluateRange,
  type PointExtra,
  readValue,
  slots,
  writeValue,
} from "../runtime/batch.js";
import { PoolFullError, TaskAbortedError, type WorkerPool } from "../runtime/pool.js";
import { COST, estimateUs, place, splitRanges, vectorises } from "../runtime/scheduler.js";
import { now, type TaskResult } from "../runtime/task.js";
import { formatShape, sameShape, sizeOf } from "../tensor/shape.js";
import { Slots } from "./admission.js";
import type { ServiceConfig } from "./config.js";
import { RetryableError } from "./errors.js";
import { type FunctionEntry, FunctionStore } from "./functions.js";
import { opsManifest } from "./manifest.js";
import type { Metrics } from "./metrics.js";
import { type ModePlan, type PlannedMode, planMode } from "./modes.js";
import { DecodeContext, decodeTensor, decodeValues } from "./tensor.js";
import type {
  CallContext,
  ColumnsResult,
  DifferentiateInput,
  DifferentiateOutput,
  FunctionInfo,
  FunctionSpec,
  NamedValues,
  ResultRow,
  TensorObject,
} from "./types.js";

/** Batches with a trace are limited: every point's trace lists every node. */
const MAX_TRACED_POINTS = 100;
/** Most trace rows in one answer (the function's nodes times the points traced). */
const MAX_TRACE_ROWS = 200_000;
/** Most result fields over all points of a `points` answer, each an object the event loop builds. */
const MAX_ROW_FIELDS = 2_000_000;
/** Answers of more numbers than this are large (ADJOINT_MAX_INFLIGHT_LARGE of them at once). */
const LARGE_ANSWER = 65_536;
/** How long a large answer may wait for its turn. */
const LARGE_ANSWER_WAIT_MS = 5000;
const noop = () => {};

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

/**
 * The transport-neutral service: decodes a request into a function and points, finds or compiles the
 * function, runs it inline or on the pool, and shapes the answer. Both transports call only this.
 */
export class AdjointService {
  readonly functions: FunctionStore;
  private state: "starting" | "ready" | "draining" = "starting";
  /** Answers over LARGE_ANSWER numbers, made one (ADJOINT_MAX_INFLIGHT_LARGE) at a time. */
  private readonly largeAnswers: Slots;

  constructor(
    private readonly limits: Limits,
    private readonly pool: WorkerPool,
    private readonly metrics: Metrics,
  ) {
    this.functions = new FunctionStore(limits, {
      hit: (cache) => metrics.cacheLookup(cache, "hit"),
      miss: (cache) => metrics.cacheLookup(cache, "miss"),
    });
    this.largeAnswers = new Slots(() => limits.maxInflightLarge);
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
    const slot = this.answerSlot(entry, input, planned.plan);
    // Most answers are small and hold no slot: no wrapper around them.
    if (slot === noop) return this.compute(entry, input, ctx, false, planned);
    return this.withSlot(slot, () => this.compute(entry, input, ctx, false, planned));
  }

  private async withSlot<T>(slot: (() => void) | Promise<() => void>, work: () => Promise<T>): Promise<T> {
    const release = slot instanceof Promise ? await slot : slot;
    try {
      return await work();
    } finally {
      release();
    }
  }

  /**
   * An answer is encoded on the event loop (about 0.1 µs a number as JSON), so its size is a budget:
   * over ADJOINT_MAX_ANSWER_ELEMENTS it is refused before anything runs, and only
   * ADJOINT_MAX_INFLIGHT_LARGE large answers are made at once, so cheap requests get the loop between
   * them (up to 64 more wait their turn, 5 s at most). Counted from the plan: result fields times
   * points, plus parameters drawn by `initialize`.
   */
  private answerSlot(entry: FunctionEntry, input: DifferentiateInput, plan: ModePlan): (() => void) | Promise<() => void> {
    const count = input.point !== undefined ? 1 : Array.isArray(input.points) ? input.points.length : columnCount(entry, input.columns);
    const drawn = input.initialize !== undefined && entry.model ? entry.model.parameters.reduce((n, p) => n + sizeOf(p.shape), 0) : 0;
    const elements = count * plan.fields.reduce((n, f) => n + f.size, 0) + drawn;
    if (elements > this.limits.maxAnswerElements) {
      throw exhausted(
        `the answer would have ${elements} numbers; the limit is ${this.limits.maxAnswerElements} (ADJOINT_MAX_ANSWER_ELEMENTS): ask for fewer points, outputs or inputs in wrt per request`,
      );
    }
    if (elements <= LARGE_ANSWER) return noop;
    const granted = this.largeAnswers.take(LARGE_ANSWER_WAIT_MS);
    const release = () => this.largeAnswers.give();
    if (granted === true) return release;
    const busy = () =>
      new RetryableError(
        "resource_exhausted",
        "the server is busy: too many large answers in the making (ADJOINT_MAX_INFLIGHT_LARGE); retry later",
        1,
      );
    if (granted === false) throw busy();
    return granted.then((yes) => {
      if (!yes) throw busy();
      return release;
    });
  }

  private async compute(
    entry: FunctionEntry,
    input: DifferentiateInput,
    ctx: CallContext,
    poolOnly: boolean,
    planned?: PlannedMode,
  ): Promise<DifferentiateOutput> {
    if ((input.point !== undefined ? 1 : 0) + (input.points !== undefined ? 1 : 0) + (input.columns !== undefined ? 1 : 0) !== 1) {
      const forms = (["point", "points", "columns"] as const).filter((k) => input[k] !== undefined);
      throw invalid(`give exactly one of point, points and columns${forms.length ? `, got ${forms.join(" and ")}` : ""}`, {
        field: forms[1] ?? "point",
      });
    }
    const deadline = this.deadlineOf(ctx);
    const { mode, plan } = planned ?? planMode(entry.fn, input, entry.plans, entry.defaultWrt, this.limits);
    const allowNonFinite = input.allowNonFinite ?? false;
    const decode = new DecodeContext(allowNonFinite, this.limits.maxTensorElements, ctx.binary);
    const head = { id: entry.hash, mode, allowNonFinite };
    if (input.initialize !== undefined) return this.withInitialParameters(entry, input, ctx);
    if (input.point !== undefined) {
      const point = decodeValues(input.point, "point", decode);
      const cost = estimateUs(entry.work, plan.sweeps, 1);
      if (!poolOnly && !plan.inlineRefused && place(entry.work, cost, this.limits.inlineBudgetUs, plan.derivedNodes) === "inline") {
        this.checkTime(ctx, deadline);
        const started = performance.now();
        let evaluation: Evaluation | undefined;
        try {
          evaluation = entry.fn.evaluate(point, plan.inlineRequest);
        } catch (e) {
          this.refuseInline(plan, e);
        }
        if (evaluation !== undefined) {
          this.metrics.ranInline((performance.now() - started) / 1000);
          return { ...head, result: checkFinite(evaluation, allowNonFinite, "point") };
        }
      }
      const shards = this.shardsFor(entry, plan, cost);
      if (shards > 1) return { ...head, result: await this.runSharded(entry, input, point, shards, cost, ctx, deadline) };
      const batch = this.allocate(entry, plan, 1, true);
      writePoint(batch.layout, batch.inputs, 0, checkedPoint(entry, point));
      const extras = await this.runOnPool(entry, batch, cost, ctx, deadline);
      return { ...head, result: rowsOf(batch.layout, batch.outputs, extras, allowNonFinite, () => "point", plan.annotations)[0] };
    }
    const points = input.points;
    const count = points !== undefined ? this.countPoints(points) : this.countColumns(entry, input.columns as NamedValues);
    if (plan.request.trace && count > MAX_TRACED_POINTS) {
      throw invalid(`trace: a batch with a trace may have at most ${MAX_TRACED_POINTS} points, this one has ${count}`, { field: "trace" });
    }
    const traceRows = plan.request.trace ? entry.fn.graph.size * count : 0;
    if (traceRows > MAX_TRACE_ROWS) {
      throw exhausted(
        `trace: ${count} points of a function of ${entry.fn.graph.size} nodes make ${traceRows} trace rows; the limit is ${MAX_TRACE_ROWS}: trace fewer points`,
        { field: "trace" },
      );
    }
    if (points !== undefined && plan.fields.length * count > MAX_ROW_FIELDS) {
      throw exhausted(
        `points: ${count} points of ${plan.fields.length} result fields each make ${plan.fields.length * count} fields; the limit is ${MAX_ROW_FIELDS}: send columns, or fewer points`,
        { field: "points" },
      );
    }
    // Whether the batch vectorises is learnt by compiling its program, so only a small one is asked.
    const small = !poolOnly && !plan.inlineRefused && plan.derivedNodes <= COST.inlineMaxNodes;
    const fast = small && (this.tryInline(plan, () => vectorises(entry.fn, plan.inlineRequest, count)) ?? false);
    const cost = estimateUs(entry.work, plan.sweeps, count, fast) + (traceRows * COST.nsPerTraceRow) / 1000;
    const where = small ? place(entry.work, cost, this.limits.inlineBudgetUs, plan.derivedNodes) : "pool";
    const batch = this.allocate(entry, plan, count, where === "pool");
    if (points !== undefined) this.fillFromPoints(entry, points, batch, decode);
    else this.fillFromColumns(entry, input.columns as NamedValues, batch, decode);
    let extras: PointExtra[];
    if (where === "inline") {
      this.checkTime(ctx, deadline);
      const started = performance.now();
      const done = this.tryInline(plan, () => evaluateRange(entry.fn, batch, 0, count));
      if (done === undefined) return this.compute(entry, input, ctx, true);
      extras = done;
      this.metrics.ranInline((performance.now() - started) / 1000);
    } else {
      extras = await this.runOnPool(entry, batch, cost, ctx, deadline);
    }
    if (points !== undefined)
      return { ...head, results: rowsOf(batch.layout, batch.outputs, extras, allowNonFinite, (i) => `points[${i}]`, plan.annotations) };
    return { ...head, columns: columnsOf(batch.layout, batch.outputs, extras, allowNonFinite, plan.annotations) };
  }

  /**
   * Runs work on the event loop under the plan's small budget. Undefined when the work outgrew it
   * (the derived graph was larger than estimated): the plan is then marked, and the caller moves
   * this request, and later ones of the plan, to the pool.
   */
  private tryInline<T>(plan: ModePlan, work: () => T): T | undefined {
    try {
      return work();
    } catch (e) {
      this.refuseInline(plan, e);
      return undefined;
    }
  }

  /** Rethrows anything but the event loop's budget running out; that marks the plan for the pool. */
  private refuseInline(plan: ModePlan, e: unknown): void {
    if (!(e instanceof BudgetExceeded && e.inline)) throw e;
    plan.inlineRefused = true;
  }

  /**
   * How many shards a model's batch is worth: one per worker when the job is expensive enough and its
   * answer is a mean over the batch (a loss value, and its gradient), which every model loss is.
   */
  private shardsFor(entry: FunctionEntry, plan: ModePlan, cost: number): number {
    const { mode, cotangent, trace } = plan.request;
    if (!entry.model || this.limits.shardMinUs <= 0 || cost < this.limits.shardMinUs || trace) return 1;
    if (!(mode === "value" || (mode === "reverse" && cotangent === undefined))) return 1;
    return Math.max(1, Math.min(this.pool.options.workers, entry.model.batch, Math.floor(cost / (this.limits.shardMinUs / 2))));
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
    const parts = Array.from(
      { length: shards },
      (_, k) => [Math.floor((k * total) / shards), Math.floor(((k + 1) * total) / shards)] as const,
    );
    const rows = await Promise.all(
      parts.map(async ([start, end]) => {
        const shard = this.functions.modelShard(entry, end - start);
        const { plan } = planMode(shard.fn, input, shard.plans, shard.defaultWrt, this.limits);
        const values = { ...point, x: rowsSlice(point.x, start, end, "x"), y: rowsSlice(point.y, start, end, "y") };
        const batch = this.allocate(shard, plan, 1, true);
        writePoint(batch.layout, batch.inputs, 0, checkedPoint(shard, values));
        const extras = await this.runOnPool(shard, batch, cost / shards, ctx, deadline);
        return {
          weight: (end - start) / total,
          row: rowsOf(batch.layout, batch.outputs, extras, allowNonFinite, () => "point", plan.annotations)[0],
        };
      }),
    );
    return combineWeighted(rows);
  }

  /**
   * A model evaluated at parameters drawn from a seed (docs/functions.md): the same seed gives the same
   * parameters on every replica. The answer carries them, so the client can go on from there.
   */
  private async withInitialParameters(entry: FunctionEntry, input: DifferentiateInput, ctx: CallContext): Promise<DifferentiateOutput> {
    const seed = input.initialize?.seed;
    if (!entry.model) throw invalid("initialize: only a model's parameters can be initialised", { field: "initialize" });
    if (!Number.isInteger(seed) || (seed as number) < 0 || (seed as number) > 0xffffffff) {
      throw invalid("initialize.seed must be an integer from 0 to 4294967295", { field: "initialize.seed" });
    }
    if (input.point === undefined)
      throw invalid("initialize: give one point (x and y); batches of points cannot share drawn parameters", { field: "point" });
    // Drawn on the event loop, so counted first: the point they join is bound by the same limit.
    const elements = entry.model.parameters.reduce((n, p) => n + sizeOf(p.shape), 0);
    if (elements > this.limits.maxTensorElements) {
      throw exhausted(
        `initialize: the model has ${elements} parameter elements to draw; the limit is ${this.limits.maxTensorElements} (ADJOINT_MAX_TENSOR_ELEMENTS)`,
        { field: "initialize" },
      );
    }
    const parameters = initializeParameters(entry.model.parameters, seed as number);
    for (const name of Object.keys(input.point)) {
      if (Object.hasOwn(parameters, name))
        throw invalid(`point.${name}: with initialize, the parameters come from the seed; leave ${name} out`, { field: `point.${name}` });
    }
    const { initialize: _seed, ...rest } = input;
    const drawn = record<TensorObject>();
    for (const [name, t] of Object.entries(parameters)) {
      drawn[name] = { shape: t.shape, dtype: "float64", bytes: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength) };
    }
    const out = await this.compute(entry, { ...rest, point: Object.assign(record(), input.point, drawn) }, ctx, false);
    return { ...out, parameters };
  }

  private countPoints(points: readonly NamedValues[]): number {
    if (!Array.isArray(points)) throw invalid("points must be an array of points", { field: "points" });
    this.checkCount(points.length, "points");
    return points.length;
  }

  /** A columnar batch's point count: the first axis of its first column. */
  private countColumns(entry: FunctionEntry, columns: NamedValues): number {
    if (typeof columns !== "object" || columns === null || Array.isArray(columns)) {
      throw invalid("columns must be an object mapping each input name to a tensor of its values", { field: "columns" });
    }
    const count = columnCount(entry, columns);
    this.checkCount(count, "columns");
    return count;
  }

  private checkCount(count: number, field: string): void {
    if (count > this.limits.maxPoints) {
      throw exhausted(`${field}: the batch has ${count} points; the limit is ${this.limits.maxPoints} (ADJOINT_MAX_POINTS)`, { field });
    }
  }

  /** Memory for a batch: SharedArrayBuffer when workers will read and write it. */
  private allocate(entry: FunctionEntry, plan: ModePlan, count: number, shared: boolean): Batch {
    const g = entry.fn.graph;
    const ins = slots(
      g.inputs.map((i) => ({ name: i.name, shape: g.nodes[i.node].shape, size: sizeOf(g.nodes[i.node].shape) })),
      count,
    );
    const outs = slots(plan.fields, count);
    const layout: BatchLayout = {
      // Memory shared with workers means pool work, under the full budget; else the event loop's.
      request: shared ? plan.request : plan.inlineRequest,
      count,
      inputs: ins.slots,
      fields: outs.slots,
      inputLength: ins.length,
      outputLength: outs.length,
    };
    this.limitElements(ins.length + outs.length, count);
    const alloc = (n: number) => (shared ? new Float64Array(new SharedArrayBuffer(n * 8)) : new Float64Array(n));
    return { layout, inputs: alloc(ins.length), outputs: alloc(outs.length) };
  }

  private limitElements(elements: number, count: number): void {
    if (elements > 2 * this.limits.maxTensorElements) {
      throw exhausted(
        `the batch of ${count} points needs ${elements} elements of memory; the limit is ${2 * this.limits.maxTensorElements} (twice ADJOINT_MAX_TENSOR_ELEMENTS)`,
      );
    }
  }

  private fillFromPoints(entry: FunctionEntry, points: readonly NamedValues[], batch: Batch, decode: DecodeContext): void {
    for (let i = 0; i < points.length; i++) {
      const field = `points[${i}]`;
      const values = checkedPoint(entry, decodeValues(points[i], field, decode), field);
      writePoint(batch.layout, batch.inputs, i, values);
    }
  }

  private fillFromColumns(entry: FunctionEntry, columns: NamedValues, batch: Batch, decode: DecodeContext): void {
    const { count, inputs } = batch.layout;
    for (const name of Object.keys(columns)) {
      if (!inputs.some((s) => s.name === name)) {
        throw invalid(`columns.${name}: no input is named ${name}; the inputs are ${entry.fn.inputNames.join(", ")}`, {
          field: `columns.${name}`,
          input: name,
        });
      }
    }
    for (const slot of inputs) {
      const field = `columns.${slot.name}`;
      const value = own(columns, slot.name);
      if (value === undefined) throw invalid(`${field} is missing`, { field, input: slot.name });
      const t = decodeTensor(value, field, decode, slot.name);
      const expected = [count, ...slot.shape];
      if (!sameShape(t.shape, expected)) {
        throw invalid(
          `${field} has shape ${formatShape(t.shape)}, but a column of ${count} points of this input needs ${formatShape(expected)}`,
          {
            field,
            input: slot.name,
          },
        );
      }
      batch.inputs.set(t.data, slot.offset);
    }
  }

  private deadlineOf(ctx: CallContext): number {
    const limit = Date.now() + this.limits.timeLimitMs;
    return ctx.deadline === undefined ? limit : Math.min(limit, ctx.deadline);
  }

  /**
   * Before evaluating: a request whose deadline passed already is not started, nor (for pool jobs,
   * `watchClient`) one whose client left. Inline jobs are too short to be worth the client's signal.
   */
  private checkTime(ctx: CallContext, deadline: number, watchClient = false): void {
    if (watchClient && ctx.signal?.aborted) {
      this.metrics.cancelled.inc({ reason: "cancelled" });
      throw new AdjointError("cancelled", "the client cancelled the request");
    }
    if (Date.now() >= deadline) {
      this.metrics.cancelled.inc({ reason: "deadline" });
      throw this.deadlineError(ctx);
    }
  }

  private deadlineError(ctx: CallContext): AdjointError {
    const byClient = ctx.deadline !== undefined && ctx.deadline <= Date.now() + this.limits.timeLimitMs;
    return new AdjointError(
      "deadline_exceeded",
      byClient
        ? "the client's deadline passed before the computation finished; it was cancelled"
        : `the computation took longer than the time limit of ${this.limits.timeLimitMs} ms (ADJOINT_TIME_LIMIT_MS); it was cancelled`,
    );
  }

  /**
   * Runs a batch on the pool, split across workers. The deadline and the client's signal abort every
   * task of it: piscina drops queued ones and terminates a worker running one, and starts a fresh worker.
   */
  private async runOnPool(entry: FunctionEntry, batch: Batch, cost: number, ctx: CallContext, deadline: number): Promise<PointExtra[]> {
    const { layout, inputs, outputs } = batch;
    this.checkTime(ctx, deadline, true);
    const failed = new AbortController();
    const timeout = AbortSignal.timeout(Math.max(1, deadline - Date.now()));
    const signal = AbortSignal.any(ctx.signal ? [failed.signal, timeout, ctx.signal] : [failed.signal, timeout]);
    this.metrics.ranOnPool();
    const definition = entry.definition;
    const tasks = splitRanges(layout.count, cost, this.pool.options.workers).map(([start, end]) => {
      const postedAt = now();
      return this.pool
        .run(
          { kind: "batch", hash: entry.hash, definition, layout, inputs, outputs, start, end, postedAt },
          signal,
          (cost * (end - start)) / Math.max(1, layout.count),
        )
        .then((r) => this.recordTask(r, postedAt));
    });
    let results: TaskResult[];
    try {
      results = await Promise.all(tasks);
    } catch (e) {
      failed.abort();
      await Promise.allSettled(tasks);
      if (e instanceof PoolFullError) {
        throw new RetryableError("resource_exhausted", `the server is busy: ${e.message}; retry later`, 1);
      }
      if (e instanceof TaskAbortedError) {
        const reason = timeout.aborted ? "deadline" : "cancelled";
        this.metrics.cancelled.inc({ reason });
        if (reason === "deadline") throw this.deadlineError(ctx);
        throw new AdjointError("cancelled", "the client cancelled the request");
      }
      throw e;
    }
    const extras: PointExtra[] = [];
    for (const r of results) {
      if (r.error) throw errorFromData(r.error);
      if (r.extras) extras.push(...r.extras);
    }
    return extras;
  }

  private recordTask(r: TaskResult, postedAt: number): TaskResult {
    this.metrics.queueWait.observe(Math.max(0, r.startedAt - postedAt) / 1000);
    this.metrics.compute.observe({ where: "pool" }, (r.finishedAt - r.startedAt) / 1000);
    this.metrics.cacheLookup("worker", r.compiled ? "miss" : "hit");
    return r;
  }
}

/**
 * DifferentiateStream: the first message names the function and the settings (mode, wrt, tangent,
 * cotangent, trace, allowNonFinite, precision); later messages may carry only points and reuse both. A
 * message that names a function starts over with its own settings.
 */
export class StreamSession {
  private entry: FunctionEntry | undefined;
  private settings: DifferentiateInput = {};

  constructor(private readonly service: AdjointService) {}

  async next(input: DifferentiateInput, ctx: CallContext = {}): Promise<DifferentiateOutput> {
    if (input.function !== undefined) {
      this.entry = this.service.functions.resolve(input.function, "function", () => dataBatch(input));
      const { point: _p, points: _ps, columns: _c, function: _f, ...settings } = input;
      this.settings = settings;
    } else if (this.entry === undefined) {
      throw invalid("function: the first message of a stream must name the function", { field: "function" });
    }
    const entry = this.entry;
    if (input.point === undefined && input.points === undefined && input.columns === undefined) {
      return { id: entry.hash, mode: this.settings.mode ?? "reverse", allowNonFinite: this.settings.allowNonFinite ?? false };
    }
    return this.service.evaluate(entry, { ...this.settings, point: input.point, points: input.points, columns: input.columns }, ctx);
  }
}

/** A columnar batch's point count: the first axis of its first column (0 when there is none to read). */
function columnCount(entry: FunctionEntry, columns: NamedValues | undefined): number {
  if (typeof columns !== "object" || columns === null || Array.isArray(columns)) return 0;
  const first = entry.fn.inputNames.find((name) => own(columns, name) !== undefined);
  const sample = first === undefined ? undefined : (own(columns, first) as unknown);
  if (Array.isArray(sample)) return sample.length;
  if (typeof sample === "object" && sample !== null && Array.isArray((sample as { shape?: unknown }).shape)) {
    return Number((sample as { shape: number[] }).shape[0] ?? 0);
  }
  return 0;
}

/** The first axis of the request's `x`: a model's batch size when its spec does not give one. */
function dataBatch(input: DifferentiateInput): number | undefined {
  const x = (input.point ?? input.points?.[0])?.x;
  if (Array.isArray(x)) return x.length;
  if (typeof x === "object" && x !== null && Array.isArray((x as TensorObject).shape)) return (x as TensorObject).shape[0];
  return undefined;
}

/** Enforces the non-finite policy on a single answer. */
function checkFinite(evaluation: Evaluation, allowNonFinite: boolean, field: string): ResultRow {
  if (!allowNonFinite && (evaluation.nonFinite !== undefined || !finiteRow(evaluation))) throw nonFiniteError(evaluation.nonFinite, field);
  return evaluation;
}

function finiteRow(row: ResultRow): boolean {
  for (const v of sectionValues<Value>(row)) if (firstNonFinite(valueData(v)) >= 0) return false;
  return true;
}

function valueData(v: Value): number | ArrayLike<number> {
  return typeof v === "number" ? v : v.data;
}

function nonFiniteError(report: Evaluation["nonFinite"], field: string): AdjointError {
  return invalid(
    `${field}: the result is not finite${report ? ` (${report.message})` : ""}; set allowNonFinite to receive NaN and ±Infinity (as strings in JSON)`,
    { field, ...(report ? { node: report.node } : {}) },
  );
}

function rowsOf(
  layout: BatchLayout,
  outputs: Float64Array,
  extras: readonly PointExtra[],
  allowNonFinite: boolean,
  fieldOf: (i: number) => string,
  annotations: ModePlan["annotations"],
): ResultRow[] {
  const rows: Record<string, unknown>[] = [];
  for (let i = 0; i < layout.count; i++) {
    const row: Record<string, unknown> = { ...annotations };
    for (const f of layout.fields) setField(row, f, copyValue(readValue(outputs, f, i)));
    rows.push(row);
  }
  const result = rows as unknown as ResultRow[];
  for (const extra of extras) Object.assign(result[extra.index], extraOf(extra));
  if (!allowNonFinite) {
    result.forEach((row, i) => {
      if (row.nonFinite !== undefined || !finiteRow(row)) throw nonFiniteError(row.nonFinite, fieldOf(i));
    });
  }
  return result;
}

/** A value read from a batch's memory, copied out of it (shared memory must not leak into answers). */
function copyValue(v: Value): Value {
  return typeof v === "number" ? v : { shape: v.shape, data: Float64Array.from(v.data) };
}

function extraOf(extra: PointExtra): Partial<ResultRow> {
  return {
    ...(extra.trace ? { trace: extra.trace } : {}),
    ...(extra.nonFinite ? { nonFinite: extra.nonFinite } : {}),
    ...(extra.check ? { check: extra.check } : {}),
  };
}

function columnsOf(
  layout: BatchLayout,
  outputs: Float64Array,
  extras: readonly PointExtra[],
  allowNonFinite: boolean,
  annotations: ModePlan["annotations"],
): ColumnsResult {
  const { count } = layout;
  const result: Record<string, unknown> = { ...annotations };
  for (const f of layout.fields)
    setField(result, f, { shape: [count, ...f.shape], data: outputs.subarray(f.offset, f.offset + count * f.size) });
  const bad = extras.filter((e) => e.nonFinite !== undefined);
  if (!allowNonFinite) {
    const first = bad[0]?.index ?? firstNonFiniteIndex(layout, outputs);
    if (first !== undefined) throw nonFiniteError(bad[0]?.nonFinite, `columns (point ${first})`);
  }
  const columns = result as unknown as ColumnsResult;
  return bad.length ? { ...columns, nonFinite: bad.map((e) => ({ index: e.index, ...e.nonFinite! })) } : columns;
}

function firstNonFiniteIndex(layout: BatchLayout, outputs: Float64Array): number | undefined {
  for (const f of layout.fields) {
    const at = firstNonFinite(outputs.subarray(f.offset, f.offset + layout.count * f.size));
    if (at >= 0) return Math.floor(at / f.size);
  }
  return undefined;
}

/** Writes a checked point (the engine's pointValues, in input order) into a batch's memory. */
function writePoint(layout: BatchLayout, inputs: Float64Array, i: number, values: readonly (number | ArrayLike<number>)[]): void {
  layout.inputs.forEach((slot, k) => {
    writeValue(inputs, slot, i, values[k]);
  });
}

/** Rows [start, end) of a tensor value along its first axis (a view, no copy). */
function rowsSlice(v: unknown, start: number, end: number, name: string): Value {
  const t = v as { shape?: readonly number[]; data?: ArrayLike<number> & { subarray?: (a: number, b: number) => ArrayLike<number> } };
  if (!t || !Array.isArray(t.shape) || t.data === undefined)
    throw invalid(`point.${name}: a model's ${name} must be a tensor with the batch first`, { field: `point.${name}` });
  const row = t.shape.slice(1).reduce((a: number, d: number) => a * d, 1);
  const data = t.data.subarray ? t.data.subarray(start * row, end * row) : Array.prototype.slice.call(t.data, start * row, end * row);
  return { shape: [end - start, ...t.shape.slice(1)], data };
}

/** Σ weightₖ·rowₖ over every numeric section (the shards of a mean over the batch). */
function combineWeighted(parts: readonly { weight: number; row: ResultRow }[]): ResultRow {
  const [first, ...rest] = parts;
  const scaled = (v: Value, w: number): Value =>
    typeof v === "number" ? v * w : { shape: v.shape, data: Float64Array.from(v.data, (x) => x * w) };
  const sum = mapSections<Value, Value>(first.row, (v) => scaled(v, first.weight)) as Record<string, Record<string, Value>>;
  for (const { weight, row } of rest) {
    for (const section of ["outputs", "gradient"] as const) {
      const add = row[section];
      if (!add) continue;
      for (const name of Object.keys(add)) {
        const acc = sum[section][name];
        const v = add[name];
        if (typeof acc === "number") sum[section][name] = acc + weight * (v as number);
        else {
          const data = acc.data as Float64Array;
          const more = (v as Exclude<Value, number>).data;
          for (let i = 0; i < data.length; i++) data[i] += weight * more[i];
        }
      }
    }
  }
  return { ...first.row, ...sum } as ResultRow;
}

/**
 * A decoded point in input order, its names, shapes and types checked by the engine. Finiteness is
 * not checked again: the decoder already enforced the request's policy.
 */
function checkedPoint(entry: FunctionEntry, point: Record<string, Value>, field = "point") {
  return entry.fn.pointValues(point, true, field);
}
