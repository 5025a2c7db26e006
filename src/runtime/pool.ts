import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Piscina } from "piscina";
import type { PoolTask, TaskResult } from "./task.js";

/** The pool's queue is full: the caller should answer "come back later". */
export class PoolFullError extends Error {
  constructor() {
    super("the worker pool's queue is full");
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

  constructor(readonly options: PoolOptions) {
    this.piscina = new Piscina<PoolTask, TaskResult>({
      filename: options.filename ?? workerFile(),
      minThreads: options.workers,
      maxThreads: options.workers,
      idleTimeout: Number.POSITIVE_INFINITY,
      workerData: { cacheSize: options.cacheSize },
    });
    // A worker that crashes is replaced by piscina; the error reaches the task's caller.
    this.piscina.on("error", () => {});
  }

  /** Starts every worker and waits until each has answered once. */
  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.options.workers }, () => this.piscina.run({ kind: "ping" })));
  }

  async run(task: PoolTask, signal?: AbortSignal): Promise<TaskResult> {
    if (this.closed) throw new Error("the worker pool is closed");
    if (this.pending >= this.options.workers + this.options.queueSize) throw new PoolFullError();
    this.pending++;
    try {
      return await this.piscina.run(task, signal ? { signal } : {});
    } catch (e) {
      if (signal?.aborted) throw new TaskAbortedError(signal.reason);
      throw e;
    } finally {
      this.pending--;
    }
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
