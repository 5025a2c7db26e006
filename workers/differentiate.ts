import { workerData } from "node:worker_threads";
import { CompiledFunction } from "../src/engine/compiled-function.js";
import { errorToData, evaluateRange } from "../src/runtime/batch.js";
import { decodeDefinition } from "../src/runtime/definition.js";
import { LruMap } from "../src/runtime/lru.js";
import { now, type PoolTask, type TaskResult } from "../src/runtime/task.js";

/**
 * The pool's worker: evaluates a slice of a batch in place in shared memory. Compiled functions are
 * cached by content hash, so a function is compiled once per worker, on the first task that needs it.
 */
const cache = new LruMap<string, CompiledFunction>((workerData as { cacheSize?: number } | undefined)?.cacheSize ?? 1000);

export default function run(task: PoolTask): TaskResult {
  const startedAt = now();
  if (task.kind === "ping") return { startedAt, finishedAt: now() };
  let compiled = false;
  try {
    let fn = cache.get(task.hash);
    if (fn === undefined) {
      fn = new CompiledFunction(decodeDefinition(task.definition), task.hash);
      cache.set(task.hash, fn);
      compiled = true;
    }
    const extras = evaluateRange(fn, task, task.start, task.end);
    return { extras, compiled, startedAt, finishedAt: now() };
  } catch (e) {
    return { error: errorToData(e), compiled, startedAt, finishedAt: now() };
  }
}
