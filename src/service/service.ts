import type { Value } from "../engine/values.js";
import { decodeGraph } from "../ir/graph-codec.js";
import type { Batch } from "../runtime/batch.js";
import type { SplitBody } from "../runtime/json-body.js";
import { type JsonTextTask, jsonTextBound, writeJsonText } from "../runtime/json-text.js";
import { type ParseTask, parseCostUs } from "../runtime/parse-function.js";
import type { WorkerPool } from "../runtime/pool.js";
import { estimateUs } from "../runtime/scheduler.js";
import { copyBytes, pooledBytes, releaseShared, sharedBytes, sharedFloat64 } from "../runtime/shared-memory.js";
import { stopSignal } from "../runtime/stop-signal.js";
import type { TaskResult } from "../runtime/task.js";
import { Slots } from "./admission.js";
import type { ServiceConfig } from "./config.js";
import { allocate, checkForms, countBatch, dataBatch, decodePointBatch, fillBatch, pointBatch } from "./decode.js";
import { RetryableError } from "./errors.js";
import { attachPrebuilt, type FunctionEntry, FunctionStore, type ParsedOffLoop, type SharedRegistry } from "./functions.js";
import { withDrawnParameters } from "./initialize.js";
import { scalarAnswerJson } from "./json-scalar.js";
import { answerJson, jsonWithMarks, type TensorWriter, tensorJson } from "./json-view.js";
import { opsManifest } from "./manifest.js";
import type { Metrics } from "./metrics.js";
import { type MinimizeCallOptions, type MinimizeJob, Minimizer } from "./minimize.js";
import type { MinimizeInput } from "./minimize-input.js";
import { type PlannedMode, planMode } from "./modes.js";
import { answerSlot, noop, placeBatch, pointInline, shardPoint, shardRanges, shardsFor, withSlot } from "./place.js";
import { Runner } from "./run.js";
import { thenFinally } from "./settle.js";
import { checkFinite, columnsOf, combineWeighted, rowsOf } from "./shape.js";
import { StreamSession } from "./stream.js";
import { DecodeContext, decodeValues } from "./tensor.js";
import type {
  AnswerMemory,
  CallContext,
  DifferentiateInput,
  DifferentiateOutput,
  FunctionInfo,
  FunctionSpec,
  NamedValues,
  ResultRow,
} from "./types.js";

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
/** Numbers formatted as JSON text per µs, for the pool's estimate of a json-text task. */
const NUMBERS_PER_US = 10;

/**
 * Batch memory that an answer's tensors view until the answer is encoded (differentiateEncoded); it
 * goes back to the pool once the encoder has copied it out, or, kept by the encoder, once the answer is sent.
 */
class LentMemory implements AnswerMemory {
  private held: Float64Array[] = [];

  hold(memory: Float64Array): void {
    this.held.push(memory);
  }

  lends(data: Float64Array): boolean {
    for (const block of this.held) if (block.buffer === data.buffer) return true;
    return false;
  }

  keep(): () => void {
    const kept = this.held;
    this.held = [];
    let released = false;
    return () => {
      if (!released) releaseShared(...kept);
      released = true;
    };
  }

  release(): void {
    releaseShared(...this.held);
    this.held = [];
  }
}

/** The memory of an answer computed in memory of its own, which it keeps by itself: nothing to keep. */
const NOTHING_LENT: AnswerMemory = { keep: () => () => {} };

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
  /** Set when the answer is encoded before the batch's memory is given back: its tensors view that memory. */
  readonly lent?: LentMemory;
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
    /** The other processes of a cluster (cluster/member.ts), which share registered functions. */
    shared?: SharedRegistry,
  ) {
    this.functions = new FunctionStore(
      limits,
      {
        hit: (cache) => metrics.cacheLookup(cache, "hit"),
        miss: (cache) => metrics.cacheLookup(cache, "miss"),
      },
      shared,
    );
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

  async differentiate(input: DifferentiateInput, ctx: CallContext = {}): Promise<DifferentiateOutput> {
    return this.evaluate(await this.resolveFunction(input, ctx), input, ctx, (out) => out);
  }

  /**
   * The answer as `encode` makes it, encoded while its tensors still view the batch's shared memory: a
   * large answer (a training step's gradient) is read once, by the encoder, rather than copied out of
   * that memory first. The memory serves later requests as soon as `encode` returns, or once the
   * promise it returns settles (encodeJson's on the pool), so what it makes must keep no view of the
   * answer (base64, protobuf encoding and the pool's text copy), unless it keeps the memory (`memory.keep`:
   * the binary framing, whose tensors are sent from it).
   *
   * A point computed on the event loop (the worked example, most optimiser calls) is answered at once,
   * not as a promise: the promises and microtask turns of an asynchronous answer cost such a request
   * more than its evaluation, and a transport can write the answer in the turn that read the request.
   * So a refused request throws, or rejects once the answer is a promise: callers handle both.
   */
  differentiateEncoded<T>(
    input: DifferentiateInput,
    ctx: CallContext,
    encode: (out: DifferentiateOutput, memory: AnswerMemory) => T | Promise<T>,
  ): T | Promise<T> {
    const found = this.resolveFunction(input, ctx);
    return found instanceof Promise
      ? found.then((entry) => this.evaluate(entry, input, ctx, encode, new LentMemory()))
      : this.evaluate(found, input, ctx, encode, new LentMemory());
  }

  /**
   * The request's function, found or compiled (a model's for the request's batch size); a long
   * expression not seen before is parsed on the pool (a promise).
   */
  resolveFunction(input: DifferentiateInput, ctx: CallContext = {}): FunctionEntry | Promise<FunctionEntry> {
    return this.functions.resolveOffLoop(
      input.function,
      "function",
      () => dataBatch(input),
      (task) => this.parseOnPool(task, ctx),
    );
  }

  /**
   * A long expression or a large JSON graph built and hashed on the pool; refused as busy, rather than
   * built here, when the pool is full. `encoded` is the graph in the codec's form, a definition as is.
   */
  private async parseOnPool(task: ParseTask, ctx: CallContext): Promise<ParsedOffLoop> {
    const parsed = (await this.run.task(task, parseCostUs(task), ctx)).parsed as NonNullable<TaskResult["parsed"]>;
    return { graph: decodeGraph(parsed.graph), hash: parsed.hash, encoded: parsed.graph };
  }

  /**
   * An answer's JSON (json-view.ts answerJson), a large one's numbers written into its text on the pool
   * (runtime/json-text.ts): formatting the numbers of a training step's gradient held the event loop
   * 35–50 ms. Pooled memory, given back by the caller once sent. Written here after all if the pool is
   * full: the same bytes either way.
   */
  encodeJson(out: DifferentiateOutput, tensor: TensorWriter, ctx: CallContext = {}): string | Buffer | Promise<Buffer> {
    // The worked example and most optimiser calls: written at once, before any count of tensor numbers.
    const scalar = scalarAnswerJson(out);
    if (scalar !== undefined) return scalar;
    const marked = tensor === tensorJson ? jsonWithMarks(out) : undefined;
    return marked === undefined
      ? answerJson(out, tensor)
      : this.textOnPool({ kind: "json-text", ...marked, allowNonFinite: out.allowNonFinite }, ctx);
  }

  private async textOnPool(marked: JsonTextTask, ctx: CallContext): Promise<Buffer> {
    // The worker writes into pooled memory lent here, not into fresh pages (runtime/json-text.ts); shared
    // at any size (sharedBytes gives small lengths ordinary memory, which a worker would write a copy of).
    const bound = jsonTextBound(marked);
    const lent = Buffer.from(sharedFloat64(Math.ceil(bound / 8), false).buffer, 0, bound);
    const task: JsonTextTask = { ...marked, into: lent };
    let text: Uint8Array | undefined;
    try {
      text = (await this.run.task(task, task.tensors.reduce((n, t) => n + t.length, 0) / NUMBERS_PER_US, ctx)).text;
    } catch (e) {
      // The pool is full (refused as busy): the numbers are computed already, so the text is written here.
      // Any other failure keeps the lent memory from the pool: an aborted task's worker may still write.
      if (!(e instanceof RetryableError && e.kind === "resource_exhausted")) throw e;
    }
    text ??= writeJsonText(task);
    // Sent from ordinary memory (fastify sends only such memory as bytes), pooled: the caller gives it back.
    const bytes = pooledBytes(text.byteLength);
    copyBytes(bytes, text);
    releaseShared(lent);
    return bytes;
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
    // Shared memory (a body read straight off the socket, http/body.ts) is read by the worker in place, and
    // stays its owner's. Other memory is copied once (a structured clone copied it on the event loop, and
    // again on the worker), not handed over: if the worker cannot read it, the caller still has it.
    const owned = body.buffer instanceof SharedArrayBuffer ? undefined : sharedFloat64(Math.ceil(body.byteLength / 8), false);
    const shared = owned === undefined ? body : new Uint8Array(owned.buffer, 0, body.byteLength);
    if (owned !== undefined) shared.set(body);
    // Pooled memory for the tensors (base64 decodes to three quarters of its text): memory taken fresh
    // costs a page fault per 4 kB, a millisecond for a training step's inputs.
    const part = sharedBytes(body.byteLength);
    let split: SplitBody | undefined;
    // Under the time limit, as every pool task: a task the pool never answered would hold the request for good.
    const limit = stopSignal(this.limits.timeLimitMs);
    try {
      const task = { kind: "json-body", body: shared, part, maxNodes: this.limits.maxNodes } as const;
      split = (await this.pool.run(task, limit.signal, body.byteLength / JSON_BYTES_PER_US)).body;
    } catch {
      // The pool is full, the time limit passed, or the body cannot cross back (nesting too deep to
      // clone): read it here. The part is not given back: a worker stopped mid-task may still be writing it.
      return undefined;
    } finally {
      limit.release();
      // Read, or never posted: either way nothing reads this memory any more, and the next request may have it.
      if (owned !== undefined) releaseShared(owned);
    }
    // A large JSON graph the worker built is the store's to take (FunctionStore.find), from the spec it was built from.
    if (split?.prebuilt !== undefined) attachPrebuilt(split.header, split.prebuilt);
    // Unless the tensors are in it, which the caller gives back with the body (SplitBody.binary): a view
    // of `part` itself, so that what is given back is the pool's own buffer.
    if (split?.binary === undefined || split.inOffered !== true) {
      releaseShared(part);
      return split;
    }
    return { ...split, binary: part.subarray(0, split.binary.byteLength) };
  }

  /** A stream of requests against one function, compiled once (see StreamSession). */
  openStream(): StreamSession {
    // Each answer is lent its batch memory, as a unary call's is: a gRPC stream sends large tensors from it.
    return new StreamSession({
      resolveFunction: (input, ctx) => this.resolveFunction(input, ctx),
      evaluate: (entry, input, ctx, finish) => this.evaluate(entry, input, ctx, finish, new LentMemory()),
    });
  }

  /**
   * Keeps a function by id (in a cluster, on every process: FunctionStore.registerShared). A long
   * expression's parse on the pool stops when the client leaves or its deadline passes.
   */
  async registerFunction(spec: FunctionSpec | undefined, ctx: CallContext = {}): Promise<{ info: FunctionInfo; created: boolean }> {
    const { entry, created } = await this.functions.registerShared(spec, (task) => this.parseOnPool(task, ctx));
    return { info: entry.info(), created };
  }

  getFunction(id: string): FunctionInfo {
    return this.functions.byId(id).info();
  }

  listOps() {
    return opsManifest();
  }

  /**
   * Evaluates a request against a function already resolved, and `finish`es the answer (encodes it)
   * within the same slot: at once when it was computed on the event loop, else as a promise; a refused
   * request throws. A large answer's slot is held until it is encoded, since encoding it is most of its
   * time on the event loop (about 0.1 µs a number as JSON). Released when computing ended, twenty
   * answers of 1.9 million numbers were encoded one after another as their results arrived, and a cheap
   * request waited 1.5–3.4 s behind them. `lent` (see differentiateEncoded) is given back once `finish`
   * returns.
   */
  evaluate<T>(
    entry: FunctionEntry,
    input: DifferentiateInput,
    ctx: CallContext,
    finish: (out: DifferentiateOutput, memory: AnswerMemory) => T | Promise<T>,
    lent?: LentMemory,
  ): T | Promise<T> {
    const planned = planMode(entry.fn, input, entry.plans, entry.defaultWrt, this.limits);
    const slot = answerSlot(entry, input, planned.plan, this.limits, this.largeAnswers);
    const memory = lent ?? NOTHING_LENT;
    const make = () =>
      thenFinally(
        () => this.compute(entry, input, ctx, false, planned, lent),
        (out) => finish(out, memory),
        () => lent?.release(),
      );
    // Most answers are small and hold no slot: no wrapper around them.
    return slot === noop ? make() : withSlot(slot, make);
  }

  /** Not async itself: a point placed on the event loop is answered without a promise (differentiateEncoded). */
  private compute(
    entry: FunctionEntry,
    input: DifferentiateInput,
    ctx: CallContext,
    poolOnly: boolean,
    planned?: PlannedMode,
    lent?: LentMemory,
  ): DifferentiateOutput | Promise<DifferentiateOutput> {
    checkForms(input);
    const deadline = this.run.deadlineOf(ctx);
    const { mode, plan } = planned ?? planMode(entry.fn, input, entry.plans, entry.defaultWrt, this.limits);
    const allowNonFinite = input.allowNonFinite ?? false;
    const head: Head = { id: entry.hash, mode, allowNonFinite };
    if (input.initialize !== undefined) return this.withInitialParameters(entry, input, ctx);
    const decode = new DecodeContext(allowNonFinite, this.limits.maxTensorElements, ctx.binary);
    const call: Call = { entry, input, ctx, poolOnly, plan, head, decode, deadline, lent };
    if (input.point === undefined) return this.computeBatch(call);
    if (poolOnly || !pointInline(entry, plan, estimateUs(entry.work, plan.sweeps, 1), this.limits)) return this.computePoint(call);
    const point = decodeValues(input.point, "point", decode);
    const evaluation = this.run.point(entry, plan, point, ctx, deadline);
    if (evaluation !== undefined) return { ...head, result: checkFinite(evaluation, head.allowNonFinite, "point") };
    // Outgrew the event loop's budget (the plan is marked): the pool's, with the point already decoded.
    return this.computePoint(call, point);
  }

  /** One point on the pool, or sharded across it; `point` when it was decoded already. */
  private async computePoint(
    { entry, input, plan, head, decode, deadline, lent, ctx }: Call,
    point?: Record<string, Value>,
  ): Promise<DifferentiateOutput> {
    const cost = estimateUs(entry.work, plan.sweeps, 1);
    const shards = shardsFor(entry, plan, cost, this.pool.options.workers, this.limits);
    if (shards > 1) {
      const decoded = point ?? decodeValues(input.point as NamedValues, "point", decode);
      return { ...head, result: await this.runSharded(entry, input, decoded, shards, cost, ctx, deadline) };
    }
    // Unless decoded already (for the event loop), its tensors go straight from the request into the batch's memory.
    const batch =
      point !== undefined
        ? pointBatch(entry, plan, point, this.limits)
        : decodePointBatch(entry, plan, input.point as NamedValues, decode.deferFiniteChecks(), this.limits);
    // While the worker computes: the raw tensors' finiteness, left by decoding for now. A request it
    // refuses is answered once the worker is done with the memory, as any other.
    const [ran, scanned] = await Promise.allSettled([this.run.onPool(entry, batch, cost, ctx, deadline), decode.checkDeferred()]);
    if (scanned.status === "rejected") {
      if (ran.status === "fulfilled") this.giveBack(batch, undefined);
      throw scanned.reason;
    }
    if (ran.status === "rejected") throw ran.reason;
    const { extras, finite } = ran.value;
    // Results the worker found finite as it wrote them are not scanned again here.
    const unchecked = head.allowNonFinite || finite;
    const result = rowsOf(batch.layout, batch.outputs, extras, unchecked, () => "point", plan.annotations, lent !== undefined)[0];
    // Every task has finished: the inputs can serve the next request, and the outputs too unless the row views them.
    this.giveBack(batch, lent);
    return { ...head, result };
  }

  private async computeBatch({ entry, input, ctx, poolOnly, plan, head, decode, deadline, lent }: Call): Promise<DifferentiateOutput> {
    const { count, traceRows } = countBatch(entry, input, plan, this.limits);
    const { where, cost } = placeBatch(entry, plan, count, traceRows, poolOnly, this.limits);
    const batch = allocate(entry, plan, count, where === "pool", this.limits);
    fillBatch(entry, input, batch, decode);
    const range =
      where === "inline" ? this.run.batch(entry, plan, batch, ctx, deadline) : await this.run.onPool(entry, batch, cost, ctx, deadline);
    // Outgrew the event loop's budget: the plan is marked, so this runs again on the pool.
    if (range === undefined) return this.compute(entry, input, ctx, true, undefined, lent);
    const { extras } = range;
    const unchecked = head.allowNonFinite || range.finite;
    if (input.points !== undefined) {
      const results = rowsOf(batch.layout, batch.outputs, extras, unchecked, (i) => `points[${i}]`, plan.annotations, lent !== undefined);
      this.giveBack(batch, lent);
      return { ...head, results };
    }
    // Columns are views of the outputs: the answer keeps them, unless it is lent them until it is encoded.
    const columns = columnsOf(batch.layout, batch.outputs, extras, unchecked, plan.annotations);
    releaseShared(batch.inputs);
    lent?.hold(batch.outputs);
    return { ...head, columns };
  }

  /** A finished batch's memory back to the pool: the outputs only once the answer is encoded, when it views them. */
  private giveBack(batch: Batch, lent: LentMemory | undefined): void {
    if (lent === undefined) releaseShared(batch.inputs, batch.outputs);
    else {
      releaseShared(batch.inputs);
      lent.hold(batch.outputs);
    }
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
    const done: Batch[] = [];
    try {
      const rows = await Promise.all(
        shardRanges(total, shards).map(async ([start, end]) => {
          const shard = this.functions.modelShard(entry, end - start);
          const { plan } = planMode(shard.fn, input, shard.plans, shard.defaultWrt, this.limits);
          const batch = pointBatch(shard, plan, shardPoint(entry, point, start, end), this.limits);
          const { extras, finite } = await this.run.onPool(shard, batch, cost / shards, ctx, deadline);
          done.push(batch);
          // Views: the sum below is the only copy made.
          const row = rowsOf(batch.layout, batch.outputs, extras, allowNonFinite || finite, () => "point", plan.annotations, true)[0];
          return { weight: (end - start) / total, row };
        }),
      );
      return combineWeighted(rows);
    } finally {
      for (const batch of done) releaseShared(batch.inputs, batch.outputs);
    }
  }

  /** A model at parameters drawn from a seed (initialize.ts); the answer carries them. */
  private async withInitialParameters(entry: FunctionEntry, input: DifferentiateInput, ctx: CallContext): Promise<DifferentiateOutput> {
    const drawn = withDrawnParameters(entry, input, this.limits);
    const out = await this.compute(entry, drawn.input, ctx, false);
    return { ...out, parameters: drawn.parameters };
  }
}
