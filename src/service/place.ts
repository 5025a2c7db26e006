import type { Value } from "../engine/values.js";
import { exhausted, invalid } from "../errors.js";
import { own, record } from "../names.js";
import { COST, estimateUs, place, vectorises } from "../runtime/scheduler.js";
import type { Slots } from "./admission.js";
import type { ServiceConfig } from "./config.js";
import { columnCount } from "./decode.js";
import { RetryableError } from "./errors.js";
import type { FunctionEntry } from "./functions.js";
import { drawnElements } from "./initialize.js";
import type { ModePlan } from "./modes.js";
import { tryInline } from "./run.js";
import type { DifferentiateInput } from "./types.js";

/** Answers of more numbers than this are large (ADJOINT_MAX_INFLIGHT_LARGE of them at once). */
const LARGE_ANSWER = 65_536;
/** How long a large answer may wait for its turn. */
const LARGE_ANSWER_WAIT_MS = 5000;
/** What a small answer holds: no slot, so nothing to give back. */
export const noop = () => {};

export type PlaceLimits = Pick<ServiceConfig, "inlineBudgetUs" | "shardMinUs" | "maxAnswerElements">;

type Release = () => void;

/**
 * An answer costs memory and time to encode (about 0.1 µs a number as JSON: a large one's numbers are
 * written on the pool, the rest on the event loop), so its size is a budget:
 * over ADJOINT_MAX_ANSWER_ELEMENTS it is refused before anything runs, and only
 * ADJOINT_MAX_INFLIGHT_LARGE large answers are made at once, so cheap requests get the loop between
 * them (up to 64 more wait their turn, 5 s at most). Counted from the plan: result fields times
 * points, plus parameters drawn by `initialize`.
 */
export function answerSlot(
  entry: FunctionEntry,
  input: DifferentiateInput,
  plan: ModePlan,
  limits: PlaceLimits,
  largeAnswers: Slots,
): Release | Promise<Release> {
  const count = input.point !== undefined ? 1 : Array.isArray(input.points) ? input.points.length : columnCount(entry, input.columns);
  const elements = count * plan.fields.reduce((n, f) => n + f.size, 0) + drawnElements(entry, input);
  if (elements > limits.maxAnswerElements) {
    throw exhausted(
      `the answer would have ${elements} numbers; the limit is ${limits.maxAnswerElements} (ADJOINT_MAX_ANSWER_ELEMENTS): ask for fewer points, outputs or inputs in wrt per request${denseHint(input)}`,
    );
  }
  if (elements <= LARGE_ANSWER) return noop;
  const granted = largeAnswers.take(LARGE_ANSWER_WAIT_MS);
  const release = () => largeAnswers.give();
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

/** Does the work once the slot is granted, and gives the slot back however it ends. */
export async function withSlot<T>(slot: Release | Promise<Release>, work: () => T | Promise<T>): Promise<T> {
  const release = slot instanceof Promise ? await slot : slot;
  try {
    return await work();
  } finally {
    release();
  }
}

/** Whether one point runs on the event loop (its cost under the inline budget, its plan not refused). */
export function pointInline(entry: FunctionEntry, plan: ModePlan, cost: number, limits: PlaceLimits): boolean {
  return !plan.inlineRefused && place(entry.work, cost, limits.inlineBudgetUs, plan.derivedNodes) === "inline";
}

/** Where a batch of `count` points runs, and its estimated cost (µs), trace rows included. */
export function placeBatch(
  entry: FunctionEntry,
  plan: ModePlan,
  count: number,
  traceRows: number,
  poolOnly: boolean,
  limits: PlaceLimits,
): { where: "inline" | "pool"; cost: number } {
  // Whether the batch vectorises is learnt by compiling its program, so only a small one is asked.
  const small = !poolOnly && !plan.inlineRefused && plan.derivedNodes <= COST.inlineMaxNodes;
  const fast = small && (tryInline(plan, () => vectorises(entry.fn, plan.inlineRequest, count)) ?? false);
  const cost = estimateUs(entry.work, plan.sweeps, count, fast) + (traceRows * COST.nsPerTraceRow) / 1000;
  const where = small ? place(entry.work, cost, limits.inlineBudgetUs, plan.derivedNodes) : "pool";
  return { where, cost };
}

/**
 * How many shards a model's batch is worth: one per worker when the job is expensive enough and its
 * answer is a mean over the batch (a loss value, and its gradient), which every model loss is.
 */
export function shardsFor(entry: FunctionEntry, plan: ModePlan, cost: number, workers: number, limits: PlaceLimits): number {
  const { mode, cotangent, trace } = plan.request;
  if (!entry.model || limits.shardMinUs <= 0 || cost < limits.shardMinUs || trace) return 1;
  if (!(mode === "value" || (mode === "reverse" && cotangent === undefined))) return 1;
  return Math.max(1, Math.min(workers, entry.model.batch, Math.floor(cost / (limits.shardMinUs / 2))));
}

/** Contiguous [start, end) ranges of a batch of `total` examples, as even as whole examples allow. */
export function shardRanges(total: number, shards: number): (readonly [number, number])[] {
  return Array.from({ length: shards }, (_, k) => [Math.floor((k * total) / shards), Math.floor(((k + 1) * total) / shards)] as const);
}

/**
 * A model's point cut to examples [start, end): every data input (every input but the parameters)
 * sliced along its first axis, the batch axis; the parameters are shared by every shard.
 */
export function shardPoint(entry: FunctionEntry, point: Record<string, Value>, start: number, end: number): Record<string, Value> {
  const parameters = new Set(entry.model?.parameters.map((p) => p.name));
  const values = Object.assign(record<Value>(), point);
  for (const name of entry.fn.inputNames) if (!parameters.has(name)) values[name] = rowsSlice(own(point, name), start, end, name);
  return values;
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

/** A dense Jacobian or Hessian too big to answer may well be sparse: say how to ask for that. */
function denseHint(input: DifferentiateInput): string {
  return (input.mode === "jacobian" || input.mode === "hessian") && !input.sparse
    ? `, or ask for sparse: true (the ${input.mode} in CSR form, by compressed sweeps)`
    : "";
}
