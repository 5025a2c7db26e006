import type { Evaluation } from "../engine/compiled-function.js";
import type { Value } from "../engine/values.js";
import { AdjointError } from "../errors.js";
import { BudgetExceeded } from "../ir/budget.js";
import { type Batch, type EvaluatedRange, errorFromData, evaluateRange, type PointExtra } from "../runtime/batch.js";
import { PoolFullError, TaskAbortedError, type WorkerPool } from "../runtime/pool.js";
import { splitRanges } from "../runtime/scheduler.js";
import { type StopSignal, stopSignal } from "../runtime/stop-signal.js";
import { now, type PoolTask, type TaskResult } from "../runtime/task.js";
import type { ServiceConfig } from "./config.js";
import { RetryableError } from "./errors.js";
import type { FunctionEntry } from "./functions.js";
import type { Metrics } from "./metrics.js";
import type { ModePlan } from "./modes.js";
import type { CallContext } from "./types.js";

export type RunLimits = Pick<ServiceConfig, "timeLimitMs">;

/**
 * Runs requests: inline on the event loop under the plan's small budget, or on the pool under the
 * request's deadline and the client's signal.
 */
export class Runner {
  constructor(
    private readonly limits: RunLimits,
    private readonly pool: WorkerPool,
    private readonly metrics: Metrics,
  ) {}

  deadlineOf(ctx: CallContext): number {
    const limit = Date.now() + this.limits.timeLimitMs;
    return ctx.deadline === undefined ? limit : Math.min(limit, ctx.deadline);
  }

  /**
   * One point on the event loop. Undefined when it outgrew the plan's small budget (see tryInline);
   * the caller then moves it to the pool.
   */
  point(entry: FunctionEntry, plan: ModePlan, point: Record<string, Value>, ctx: CallContext, deadline: number): Evaluation | undefined {
    this.checkTime(ctx, deadline);
    const started = performance.now();
    let evaluation: Evaluation | undefined;
    // No closure through tryInline: this is the path of the smallest, most frequent requests.
    try {
      evaluation = entry.fn.evaluate(point, plan.inlineRequest);
    } catch (e) {
      refuseInline(plan, e);
    }
    if (evaluation !== undefined) this.metrics.ranInline((performance.now() - started) / 1000);
    return evaluation;
  }

  /** A batch on the event loop; undefined when it outgrew the plan's small budget. */
  batch(entry: FunctionEntry, plan: ModePlan, batch: Batch, ctx: CallContext, deadline: number): EvaluatedRange | undefined {
    this.checkTime(ctx, deadline);
    const started = performance.now();
    const done = tryInline(plan, () => evaluateRange(entry.fn, batch, 0, batch.layout.count));
    if (done !== undefined) this.metrics.ranInline((performance.now() - started) / 1000);
    return done;
  }

  /**
   * Runs a batch on the pool, split across workers. The deadline and the client's signal abort every
   * task of it: piscina drops queued ones and terminates a worker running one, and starts a fresh worker.
   */
  async onPool(entry: FunctionEntry, batch: Batch, cost: number, ctx: CallContext, deadline: number): Promise<EvaluatedRange> {
    const { layout, inputs, outputs, placed } = batch;
    this.checkTime(ctx, deadline, true);
    const failed = new AbortController();
    const stop = this.stopping(ctx, deadline, failed.signal);
    const { signal } = stop;
    this.metrics.ranOnPool();
    const definition = entry.definition;
    const tasks = splitRanges(layout.count, cost, this.pool.options.workers).map(([start, end]) => {
      const postedAt = now();
      return this.pool
        .run(
          { kind: "batch", hash: entry.hash, definition, layout, inputs, outputs, ...(placed ? { placed } : {}), start, end, postedAt },
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
      throw this.taskFailure(e, stop.timedOut(), ctx);
    } finally {
      stop.release();
    }
    const extras: PointExtra[] = [];
    let finite = true;
    for (const r of results) {
      if (r.error) throw errorFromData(r.error);
      if (r.extras) extras.push(...r.extras);
      finite &&= r.finite === true;
    }
    return { extras, finite };
  }

  /**
   * One task of the service's own (building a long expression or a large graph, writing a large answer's text) under the
   * request's deadline and the client's signal: the pool stops it when either fires. A full pool is
   * refused as busy; the task's own error is thrown as the client's.
   */
  async task(task: PoolTask, cost: number, ctx: CallContext): Promise<TaskResult> {
    const deadline = this.deadlineOf(ctx);
    this.checkTime(ctx, deadline, true);
    const stop = this.stopping(ctx, deadline);
    let done: TaskResult;
    try {
      done = await this.pool.run(task, stop.signal, cost);
    } catch (e) {
      throw this.taskFailure(e, stop.timedOut(), ctx);
    } finally {
      stop.release();
    }
    if (done.error) throw errorFromData(done.error);
    return done;
  }

  /** What stops pool work: the deadline, the client's signal, and `also` (released once the work settles: stop-signal.ts). */
  private stopping(ctx: CallContext, deadline: number, also?: AbortSignal): StopSignal {
    return stopSignal(deadline - Date.now(), also, ctx.signal);
  }

  /** What a client is told when a pool task failed: busy, out of time, cancelled, or the task's error. */
  private taskFailure(e: unknown, timedOut: boolean, ctx: CallContext): unknown {
    if (e instanceof PoolFullError) return new RetryableError("resource_exhausted", `the server is busy: ${e.message}; retry later`, 1);
    if (!(e instanceof TaskAbortedError)) return e;
    const reason = timedOut ? "deadline" : "cancelled";
    this.metrics.cancelled.inc({ reason });
    if (reason === "deadline") return this.deadlineError(ctx);
    return new AdjointError("cancelled", "the client cancelled the request");
  }

  private recordTask(r: TaskResult, postedAt: number): TaskResult {
    this.metrics.ranTask(r, postedAt);
    return r;
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
}

/**
 * Runs work on the event loop under the plan's small budget. Undefined when the work outgrew it
 * (the derived graph was larger than estimated): the plan is then marked, and the caller moves
 * this request, and later ones of the plan, to the pool.
 */
export function tryInline<T>(plan: ModePlan, work: () => T): T | undefined {
  try {
    return work();
  } catch (e) {
    refuseInline(plan, e);
    return undefined;
  }
}

/** Rethrows anything but the event loop's budget running out; that marks the plan for the pool. */
function refuseInline(plan: ModePlan, e: unknown): void {
  if (!(e instanceof BudgetExceeded && e.inline)) throw e;
  plan.inlineRefused = true;
}
