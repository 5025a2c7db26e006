import { getHeapStatistics } from "node:v8";
import { workerData } from "node:worker_threads";
import { CompiledFunction } from "../src/engine/compiled-function.js";
import { encodeGraph } from "../src/ir/graph-codec.js";
import { errorToData, evaluateRange } from "../src/runtime/batch.js";
import { decodeDefinition } from "../src/runtime/definition.js";
import { splitJsonBody } from "../src/runtime/json-body.js";
import { writeJsonText } from "../src/runtime/json-text.js";
import { LruMap } from "../src/runtime/lru.js";
import { MemorySteward } from "../src/runtime/memory.js";
import { runMinimize, warmMinimize } from "../src/runtime/minimize.js";
import { type ParseTask, parseFunction, prebuildGraph } from "../src/runtime/parse-function.js";
import { lowerThreadPriority } from "../src/runtime/priority.js";
import { type JsonBodyTask, now, type PoolTask, type TaskResult } from "../src/runtime/task.js";
import { gemmHelpedChunks, useGemmHelpers, warmUpMatmul } from "../src/tensor/kernels/index.js";

/**
 * The pool's worker: evaluates a slice of a batch in place in shared memory. Compiled functions are
 * cached by content hash, so a function is compiled once per worker, on the first task that needs it.
 */
const settings = (workerData ?? {}) as {
  cacheSize?: number;
  cacheBytes?: number;
  heapBytes?: number;
  nice?: number;
  matmulHelpers?: number;
};
// Computing gives way to the event loops when both want a core (src/runtime/priority.ts). Set before the
// matmul helpers start, so that they inherit it (a thread's nice value passes to the threads it makes).
lowerThreadPriority(settings.nice ?? 0);
// A large product uses an idle core too (src/tensor/kernels/gemm-team.ts); the helpers start with the
// thread's first product, here in the warm-up, so that the first request does not wait for them.
useGemmHelpers(settings.matmulHelpers ?? 0);
warmUpMatmul();
const cache = new LruMap<string, CompiledFunction>(settings.cacheSize ?? 1000, {
  maxBytes: settings.cacheBytes ?? 128 * 1024 * 1024,
  weigh: (fn) => fn.estimatedBytes(),
});
const heapBytes = settings.heapBytes ?? 112 * 1024 * 1024;
// Before the pool's start-up ping is answered: the first minimisation would otherwise run cold code.
warmMinimize();

/** The worker's heap (committed) and buffers, as its own V8 counts them. */
function heldBytes(): number {
  const heap = getHeapStatistics();
  return heap.total_heap_size + heap.external_memory;
}

// Tasks run synchronously, so whenever a timer fires the worker is between tasks; the steward collects
// garbage once a second passes with at most a trickle of tasks begun (not between the tasks of a steady load). If the
// heap stays over its bound even so (V8 keeps pages it once needed), the worker leaves and the pool
// starts a fresh one.
let tasksBegun = 0;
new MemorySteward(
  () => true,
  () => tasksBegun,
).start();
setInterval(() => {
  if (heldBytes() > heapBytes) process.exit(0);
}, 5000).unref();

/**
 * A worker whose heap grew past twice its bound (a large derivation, refused or not, leaves hundreds
 * of MB behind) leaves at once after answering, without waiting to be idle, and the pool starts a
 * fresh one: handing the thread's memory back whole. The cache goes with it; it is rebuilt on demand.
 * The pool re-runs a task that reached the worker as it left (WorkerPool.run).
 */
function finish(result: TaskResult, helpedBefore: number): TaskResult {
  const helped = gemmHelpedChunks() - helpedBefore;
  const counted = helped > 0 ? { ...result, helpedChunks: helped } : result;
  if (heldBytes() <= 2 * heapBytes) return counted;
  setImmediate(() => process.exit(0));
  return { ...counted, recycled: true };
}

export default function run(task: PoolTask): TaskResult {
  const startedAt = now();
  const helpedBefore = gemmHelpedChunks();
  tasksBegun++;
  if (task.kind === "ping") return { startedAt, finishedAt: now() };
  if (task.kind === "json-body") return readJsonBody(task, startedAt);
  if (task.kind === "parse") return parse(task, startedAt);
  if (task.kind === "json-text") {
    try {
      return { text: writeJsonText(task), startedAt, finishedAt: now() };
    } catch (e) {
      return { error: errorToData(e), startedAt, finishedAt: now() };
    }
  }
  let compiled = false;
  try {
    let fn = cache.get(task.hash);
    if (fn === undefined) {
      fn = new CompiledFunction(decodeDefinition(task.definition), task.hash);
      cache.set(task.hash, fn);
      compiled = true;
    }
    try {
      if (task.kind === "minimize")
        return finish({ minimize: runMinimize(fn, task), compiled, startedAt, finishedAt: now() }, helpedBefore);
      const { extras, finite } = evaluateRange(fn, task, task.start, task.end);
      return finish({ extras, finite, compiled, startedAt, finishedAt: now() }, helpedBefore);
    } finally {
      // Evaluating prepares programs (and their buffers) for the task's mode: the function may have grown.
      cache.reweigh(task.hash);
    }
  } catch (e) {
    return finish({ error: errorToData(e), compiled, startedAt, finishedAt: now() }, helpedBefore);
  }
}

/** The function compiled here as well: the batch task that follows it may come to this worker. */
function parse(task: ParseTask, startedAt: number): TaskResult {
  try {
    const fn = new CompiledFunction(parseFunction(task));
    cache.set(fn.hash, fn);
    return { parsed: { graph: encodeGraph(fn.graph), hash: fn.hash }, startedAt, finishedAt: now() };
  } catch (e) {
    return { error: errorToData(e), startedAt, finishedAt: now() };
  }
}

function readJsonBody(task: JsonBodyTask, startedAt: number): TaskResult {
  try {
    const body = splitJsonBody(task.body, task.part);
    // Compiled here as well, as a parsed expression is: the batch task that follows it may come to this worker.
    const prebuilt =
      task.maxNodes === undefined
        ? undefined
        : prebuildGraph(body.header, task.maxNodes, (graph) => {
            const fn = new CompiledFunction(graph);
            cache.set(fn.hash, fn);
            return fn.hash;
          });
    return { body: prebuilt === undefined ? body : { ...body, prebuilt }, startedAt, finishedAt: now() };
  } catch (e) {
    // The event loop parses it again to say where it is malformed, in the words a small body gets.
    return { error: errorToData(e), startedAt, finishedAt: now() };
  }
}
