import { type BatchPlan, evaluatePointInto, evaluateVectorized, firstNonFinitePoint, planBatch } from "../engine/batch.js";
import type { CompiledFunction, EvaluateRequest, Evaluation } from "../engine/compiled-function.js";
import { fieldValue, type Section } from "../engine/sections.js";
import type { Value } from "../engine/values.js";
import { AdjointError, asAdjointError, type ErrorKind, type ErrorLocation } from "../errors.js";
import { record, recordOf } from "../names.js";
import { COST } from "./scheduler.js";
import { zero } from "./shared-memory.js";

/** A block of a batch's memory: one input, or one result field, for every point. */
export interface Slot {
  readonly name: string;
  /** The shape of one point's value ([] for a scalar). */
  readonly shape: readonly number[];
  /** Elements per point. */
  readonly size: number;
  /** Where the block starts; point i's value is elements [offset + i·size, offset + (i+1)·size). */
  readonly offset: number;
}

/** One result field: a section of the engine's answer and where in it (see engine/sections.ts). */
export interface Field extends Slot {
  readonly section: Section;
  readonly key?: string;
}

/**
 * A batch of points laid out block by block: each input's values for every point in one block (point
 * after point, each value row-major), and likewise each result field. A block is exactly a "column" of
 * the request's columnar form, a tensor whose first axis is the point. For pool tasks both arrays live
 * in SharedArrayBuffer memory: the main thread decodes the request into `inputs` once, workers write
 * `outputs` in place, and nothing but the small task description crosses a message.
 */
export interface BatchLayout {
  readonly request: EvaluateRequest;
  readonly count: number;
  readonly inputs: readonly Slot[];
  readonly fields: readonly Field[];
  /** Elements of the inputs and outputs arrays. */
  readonly inputLength: number;
  readonly outputLength: number;
}

/** Lays out slots one after another for `count` points. */
export function slots<T extends Omit<Slot, "offset">>(items: readonly T[], count: number): { slots: (T & Slot)[]; length: number } {
  let offset = 0;
  const out = items.map((item) => {
    const slot = { ...item, offset };
    offset += item.size * count;
    return slot;
  });
  return { slots: out, length: offset };
}

/** A batch's layout and its memory (SharedArrayBuffer views for pool jobs). */
export interface Batch {
  readonly layout: BatchLayout;
  readonly inputs: Float64Array;
  readonly outputs: Float64Array;
  /**
   * A one-point batch's inputs that lie in shared memory of their own, read there rather than copied
   * into `inputs` (a framed body's tensors, in the body's memory: service/decode.ts): input k's value is
   * `placed[k]` where it is set, its block in `inputs` unused.
   */
  readonly placed?: readonly (Float64Array | undefined)[];
  /** The outputs may hold an earlier request's numbers: evaluateRange zeroes each range before writing it. */
  readonly outputsUnzeroed?: boolean;
}

/**
 * Writes point i's value of a slot (a number, or a tensor's elements); a value decoded straight into
 * the slot (service/decode.ts) is already there.
 */
export function writeValue(memory: Float64Array, slot: Slot, i: number, value: number | ArrayLike<number>): void {
  const at = slot.offset + i * slot.size;
  if (typeof value === "number") memory[at] = value;
  else if (!isAt(value, memory, at)) memory.set(value, at);
}

function isAt(value: ArrayLike<number>, memory: Float64Array, at: number): boolean {
  return value instanceof Float64Array && value.buffer === memory.buffer && value.byteOffset === memory.byteOffset + at * 8;
}

/** Point i's value of a slot: a number for a scalar, else a tensor viewing the memory (no copy). */
export function readValue(memory: Float64Array, slot: Slot, i: number): Value {
  const start = slot.offset + i * slot.size;
  if (slot.shape.length === 0) return memory[start];
  return { shape: slot.shape, data: memory.subarray(start, start + slot.size) };
}

/** What a point's answer has beyond its numbers: the trace, or where a non-finite value arose. */
export interface PointExtra {
  readonly index: number;
  readonly trace?: Evaluation["trace"];
  readonly nonFinite?: Evaluation["nonFinite"];
  readonly check?: Evaluation["check"];
}

/** A range of a batch evaluated: what its points have beyond their numbers. */
export interface EvaluatedRange {
  readonly extras: PointExtra[];
  /**
   * Every result of every point was found finite as it was written (evaluatePointInto, or the
   * vectorised pass's scan): the event loop need not scan megabytes of them again.
   */
  readonly finite: boolean;
}

/** An AdjointError as data, to cross a worker boundary (structured clone keeps only message and name). */
export interface ErrorData {
  readonly kind: ErrorKind;
  readonly message: string;
  readonly location: ErrorLocation;
  /** For the server log only, never for the client: an unexpected error's stack. */
  readonly logDetail?: string;
}

/**
 * A worker's error as data. Unexpected errors cross with a generic message: their stack (file paths,
 * internals) goes in `logDetail`, which the main thread logs with the request id and never sends.
 */
export function errorToData(e: unknown): ErrorData {
  if (e instanceof AdjointError) return { kind: e.kind, message: e.message, location: e.location };
  const known = asAdjointError(e);
  return { kind: known.kind, message: known.message, location: {}, logDetail: (e as Error)?.stack ?? String(e) };
}

export function errorFromData(d: ErrorData): AdjointError {
  const error = new AdjointError(d.kind, d.message, d.location);
  // Not enumerable: whatever serialises the error for a client does not see it; the log's err serialiser does.
  if (d.logDetail !== undefined)
    Object.defineProperty(error, "cause", { value: { message: "in a worker", stack: d.logDetail }, enumerable: false });
  return error;
}

/** Points of a batch with non-finite results that get a diagnosis (where the first NaN or ±∞ arose). */
export const DIAGNOSED_POINTS = 16;

/**
 * Evaluates points [start, end) of a batch, writing each result into its block: all-scalar functions
 * by the engine's vectorised pass (every op once over hundreds of points), anything else point by
 * point, each point's results written by the program straight into their blocks where the request's
 * plan allows (evaluatePointInto), else through the engine's answer.
 */
export function evaluateRange(fn: CompiledFunction, batch: Batch, start: number, end: number): EvaluatedRange {
  if (batch.outputsUnzeroed) {
    for (const f of batch.layout.fields) zero(batch.outputs.subarray(f.offset + start * f.size, f.offset + end * f.size));
  }
  if (vectorized(fn, batch, start, end)) {
    // The diagnosis scans the whole range, and finds nothing only when every result is finite.
    const extras = diagnose(fn, batch, start, end);
    return { extras, finite: extras.length === 0 };
  }
  const { layout, inputs, outputs, placed } = batch;
  const direct = layout.request.trace || start >= end ? undefined : planFields(planBatch(fn, layout.request), layout, true);
  const extras: PointExtra[] = [];
  let finite = direct !== undefined;
  for (let i = start; i < end; i++) {
    const point = pointAt(layout, inputs, i, placed);
    if (direct !== undefined) {
      const targets = direct.map((f) => outputs.subarray(f.offset + i * f.size, f.offset + (i + 1) * f.size));
      if (evaluatePointInto(fn, layout.request, point, targets)) continue;
    }
    finite = false;
    const evaluation = fn.evaluate(point, layout.request);
    for (const field of layout.fields) {
      const v = fieldValue(evaluation, field);
      writeValue(outputs, field, i, typeof v === "number" ? v : v.data);
    }
    if (evaluation.trace !== undefined || evaluation.nonFinite !== undefined || evaluation.check !== undefined) {
      extras.push({
        index: i,
        ...(evaluation.trace ? { trace: evaluation.trace } : {}),
        ...(evaluation.nonFinite ? { nonFinite: evaluation.nonFinite } : {}),
        ...(evaluation.check ? { check: evaluation.check } : {}),
      });
    }
  }
  return { extras, finite };
}

/**
 * The batch's field for each of a plan's results, or undefined when one has none; with `whole`, also
 * undefined unless the plan fills every field of the batch (a point it writes needs nothing else).
 */
function planFields(plan: BatchPlan | undefined, layout: BatchLayout, whole: boolean): Field[] | undefined {
  if (plan === undefined || (whole && plan.fields.length !== layout.fields.length)) return undefined;
  // Looked up by key, not searched: a function may have as many outputs as nodes.
  const byKey = new Map<string, Field>();
  for (const x of layout.fields) {
    const key = fieldKey(x.section, x.name);
    if (!byKey.has(key)) byKey.set(key, x);
  }
  const fields: Field[] = [];
  const taken = new Set<Field>();
  for (const f of plan.fields) {
    const field = byKey.get(fieldKey(f.section, f.name));
    if (field === undefined || (whole && taken.has(field))) return undefined;
    taken.add(field);
    fields.push(field);
  }
  return fields;
}

/** A field's section and name as one key (a name may hold any character, the NUL included, but a section no NUL). */
function fieldKey(section: string, name: string): string {
  return `${section}\u0000${name}`;
}

function pointAt(layout: BatchLayout, inputs: Float64Array, i: number, placed?: Batch["placed"]): Record<string, Value> {
  const point = record<Value>();
  layout.inputs.forEach((slot, k) => {
    const elsewhere = placed?.[k];
    point[slot.name] = elsewhere === undefined ? readValue(inputs, slot, i) : { shape: slot.shape, data: elsewhere };
  });
  return point;
}

/** The engine's vectorised pass over the blocks, when the function and mode allow it. */
function vectorized(fn: CompiledFunction, { layout, inputs, outputs }: Batch, start: number, end: number): boolean {
  if (end - start < COST.vectoriseFrom) return false;
  const fields = planFields(planBatch(fn, layout.request), layout, false);
  if (fields === undefined) return false;
  const block = (memory: Float64Array, slot: Slot) => memory.subarray(slot.offset, slot.offset + layout.count);
  const out = fields.map((field) => block(outputs, field));
  const point = recordOf(layout.inputs.map((slot) => [slot.name, block(inputs, slot)]));
  return evaluateVectorized(fn, layout.request, { point }, start, end, out);
}

/** Re-evaluates the first few points with non-finite results one by one, for the report of where it arose. */
function diagnose(fn: CompiledFunction, { layout, inputs, outputs, placed }: Batch, start: number, end: number): PointExtra[] {
  const extras: PointExtra[] = [];
  const blocks = layout.fields.map((f) => outputs.subarray(f.offset, f.offset + layout.count));
  let from = start;
  while (from < end && extras.length < DIAGNOSED_POINTS) {
    const i = firstNonFinitePoint(blocks, from, end);
    if (i < 0) break;
    const { nonFinite } = fn.evaluate(pointAt(layout, inputs, i, placed), layout.request);
    extras.push({ index: i, ...(nonFinite ? { nonFinite } : {}) });
    from = i + 1;
  }
  return extras;
}
