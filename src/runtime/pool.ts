import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import type { MessagePort } from "node:worker_threads";
import { Piscina } from "piscina";
import type { PoolTask, TaskResult } from "./task.js";

/** The pool's queue is full: the caller should answer "come back later". */
export class PoolFullError extends Error {
  constructor(message = "its work queue is full (ADJOINT_QUEUE_SIZE)") {
    super(message);
    this.name = "PoolFullError";
  }
}

/** A task was aborted (deadline, client gone): piscina stops it, terminating its worker if it ran. */
export class TaskAbortedError extends Error {
  constructor(readonly reason: unknown) {
    super("the task was aborted");
    this.name = "TaskAbortedError";
  }
}

export interface PoolOptions {
  readonly workers: number;
  readonly queueSize: number;
  readonly cacheSize: number;
  /** Each worker's cache budget in estimated bytes. */
  readonly cacheBytes?: number;
  /** How many nice levels below its process each worker thread runs (priority.ts; Linux only). */
  readonly workerNice?: number;
  /** Helper threads each worker splits one large matrix product with (tensor/kernels/gemm-team.ts); 0 by default. */
  readonly matmulHelpers?: number;
  /**
   * The most estimated work (µs, the scheduler's estimates) ahead of a new task, running and waiting,
   * across the workers: past it a task is refused, so that nothing admitted waits longer than about
   * this divided by the workers. A task that finds a worker free is always taken.
   */
  readonly maxQueuedUs?: number;
  /** The worker module (compiled JavaScript); found next to the build output by default. */
  readonly filename?: string;
}

/**
 * The worker module. From the build (dist/src/runtime) it sits at dist/workers; when this file runs
 * from source (tests), the worker still has to be JavaScript, so it is taken from dist/.
 */
export function workerFile(): string {
  const candidates = [
    new URL("../../workers/differentiate.js", import.meta.url),
    new URL("../../dist/workers/differentiate.js", import.meta.url),
  ];
  for (const url of candidates) {
    const path = fileURLToPath(url);
    if (existsSync(path)) return path;
  }
  throw new Error("the worker module dist/workers/differentiate.js is missing: run `npm run build` first");
}

/**
 * The piscina pool: a fixed number of workers started up front and a bounded queue. The bound is kept
 * here rather than by piscina's maxQueue, which does not count tasks that carry an AbortSignal (piscina
 * 5 parks those in a side queue that its limit check does not see).
 */
export class WorkerPool {
  private readonly piscina: Piscina<PoolTask, TaskResult>;
  private closed = false;
  /** Tasks handed to piscina and not settled yet: running plus waiting. */
  private pending = 0;
  /** Their estimated cost, µs. */
  private pendingUs = 0;

  constructor(readonly options: PoolOptions) {
    // The start script gives the main thread a large initial old generation (--initial-old-space-size,
    // package.json "start"), so that megabyte request and answer buffers do not set off a full
    // collection every few calls there. Workers are created after this and keep V8's own sizing: their
    // heap is bounded (heapBytes below) and a worker past it is replaced, which a late first collection
    // would bring about for nothing. V8 reads the flag when it creates an isolate, so this reaches only
    // the isolates created from now on.
    setFlagsFromString("--initial-old-space-size=0");
    this.piscina = new Piscina<PoolTask, TaskResult>({
      filename: options.filename ?? workerFile(),
      minThreads: options.workers,
      maxThreads: options.workers,
      idleTimeout: Number.POSITIVE_INFINITY,
      // Between tasks a worker waits with Atomics.waitAsync rather than blocking in Atomics.wait, so its
      // event loop runs: its memory steward's timer (workers/differentiate.ts) fires only then.
      atomics: "async",
      workerData: {
        cacheSize: options.cacheSize,
        cacheBytes: options.cacheBytes,
        nice: options.workerNice ?? 0,
        matmulHelpers: options.matmulHelpers ?? 0,
        // Room for one large task's working memory above a full cache before the worker is replaced.
        heapBytes: (options.cacheBytes ?? 48 * 1024 * 1024) + 64 * 1024 * 1024,
      },
    });
    // A worker that crashes is replaced by piscina; the error reaches the task's caller.
    this.piscina.on("error", () => {});
  }

  /** Starts every worker and waits until each has answered once. */
  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.options.workers }, () => this.piscina.run({ kind: "ping" })));
  }

  /** Runs a task; `costUs` is its estimated time, counted against `maxQueuedUs` until it settles. */
  async run(task: PoolTask, signal?: AbortSignal, costUs = 0, transferList?: readonly (ArrayBuffer | MessagePort)[]): Promise<TaskResult> {
    if (this.closed) throw new Error("the worker pool is closed");
    if (this.pending >= this.options.workers + this.options.queueSize) throw new PoolFullError();
    const max = this.options.maxQueuedUs;
    // With a worker free the task starts at once; otherwise it waits for about pendingUs / workers.
    if (max !== undefined && this.pending >= this.options.workers && this.pendingUs > max) {
      throw new PoolFullError(
        `the work already queued would keep this request waiting past the time limit (about ${Math.round(this.pendingUs / 1000 / this.options.workers)} ms per worker)`,
      );
    }
    this.pending++;
    this.pendingUs += costUs;
    try {
      try {
        // A MessagePort in the task (minimize progress) must be transferred, not cloned.
        return await this.piscina.run(task, {
          ...(signal ? { signal } : {}),
          ...(transferList ? { transferList: [...transferList] } : {}),
        });
      } catch (e) {
        // A task handed to a worker as it left to give its memory back (workers/differentiate.ts) never
        // ran, or ran into the exit: tasks write their answer in place, so running it again is safe.
        // Not one whose port went with it: the port cannot be transferred twice.
        if (signal?.aborted || transferList || !isWorkerExit(e)) throw e;
        return await this.piscina.run(task, signal ? { signal } : {});
      }
    } catch (e) {
      if (signal?.aborted) throw new TaskAbortedError(signal.reason);
      throw e;
    } finally {
      this.pending--;
      this.pendingUs -= costUs;
    }
  }

  /** Estimated µs of work taken on and not finished. */
  get queuedUs(): number {
    return this.pendingUs;
  }

  get workers(): number {
    return this.piscina.threads.length;
  }

  /** Tasks waiting for a worker. */
  get queued(): number {
    return Math.max(0, this.pending - this.options.workers);
  }

  /** Fraction of the pool's capacity used since it started (piscina's measure). */
  get utilization(): number {
    return this.piscina.utilization;
  }

  /** Waits for the running and queued tasks, then stops the workers. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.piscina.close();
  }
}

/** piscina's error for the tasks of a worker that exited (its message is all it carries). */
function isWorkerExit(e: unknown): boolean {
  return e instanceof Error && /^worker exited with code/.test(e.message);
}
