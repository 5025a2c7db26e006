import type { Batch, ErrorData, PointExtra } from "./batch.js";
import type { SplitBody } from "./json-body.js";
import type { JsonTextTask } from "./json-text.js";
import type { MinimizeOutcome, MinimizeTask } from "./minimize.js";
import type { ParseTask } from "./parse-function.js";

/** A slice of a batch for one worker. The arrays are views of SharedArrayBuffer memory. */
export interface BatchTask extends Batch {
  readonly kind: "batch";
  readonly hash: string;
  /** The function's definition (see definition.ts), read only by a worker that lacks `hash`. */
  readonly definition: SharedArrayBuffer;
  readonly start: number;
  readonly end: number;
  /** When the task was posted, in ms since the epoch (performance.timeOrigin + now()), for the queue-wait metric. */
  readonly postedAt: number;
}

/** Warms a worker up (module loading) and proves it answers. */
export interface PingTask {
  readonly kind: "ping";
}

/** A large JSON request body to parse and split (json-body.ts); its bytes lie in shared memory, read in place. */
export interface JsonBodyTask {
  readonly kind: "json-body";
  readonly body: Uint8Array;
  /** Pooled shared memory for the tensors moved out of the body, used when they fit. */
  readonly part?: Uint8Array;
  /** With it, a large JSON graph in the body is built too, held to this many nodes (ADJOINT_MAX_NODES). */
  readonly maxNodes?: number;
}

export type PoolTask = BatchTask | PingTask | MinimizeTask | JsonBodyTask | JsonTextTask | ParseTask;

export interface TaskResult {
  readonly extras?: PointExtra[];
  /** A batch task's results were all found finite as they were written (EvaluatedRange.finite). */
  readonly finite?: boolean;
  /** A minimize task's result (see minimize.ts). */
  readonly minimize?: MinimizeOutcome;
  /** A json-body task's result; undefined with `error` set when the body is malformed. */
  readonly body?: SplitBody;
  /** A parse task's result: the graph (ir/graph-codec.ts) and its content hash. */
  readonly parsed?: { readonly graph: SharedArrayBuffer; readonly hash: string };
  /** A json-text task's result: the answer's text, in shared memory. */
  readonly text?: Uint8Array;
  readonly error?: ErrorData;
  /** The worker had to compile the function (its cache lacked the hash). */
  readonly compiled?: boolean;
  /** Chunks of matrix products the worker's helper threads computed during the task (absent: none). */
  readonly helpedChunks?: number;
  /** The worker's heap outgrew its bound and the worker is leaving after this answer (see workers/). */
  readonly recycled?: boolean;
  readonly startedAt: number;
  readonly finishedAt: number;
}

/** Milliseconds since the epoch with sub-millisecond resolution, comparable across threads. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}
