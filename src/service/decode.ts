import type { Value } from "../engine/values.js";
import { exhausted, invalid, listed } from "../errors.js";
import { MODEL_DATA } from "../ir/model.js";
import { own } from "../names.js";
import { type Batch, type BatchLayout, slots, writeValue } from "../runtime/batch.js";
import { sharedFloat64 } from "../runtime/shared-memory.js";
import { formatShape, sameShape, sizeOf } from "../tensor/shape.js";
import type { ServiceConfig } from "./config.js";
import type { FunctionEntry } from "./functions.js";
import type { ModePlan } from "./modes.js";
import { type DecodeContext, decodeTensor, decodeValues } from "./tensor.js";
import type { DifferentiateInput, NamedValues, TensorObject } from "./types.js";

/** Batches with a trace are limited: every point's trace lists every node. */
const MAX_TRACED_POINTS = 100;
/** Most trace rows in one answer (the function's nodes times the points traced). */
const MAX_TRACE_ROWS = 200_000;
/** Most result fields over all points of a `points` answer, each an object the event loop builds. */
const MAX_ROW_FIELDS = 2_000_000;

export type DecodeLimits = Pick<ServiceConfig, "maxTensorElements" | "maxPoints">;

/** A request gives its points in exactly one form. */
export function checkForms(input: DifferentiateInput): void {
  if ((input.point !== undefined ? 1 : 0) + (input.points !== undefined ? 1 : 0) + (input.columns !== undefined ? 1 : 0) === 1) return;
  const forms = (["point", "points", "columns"] as const).filter((k) => input[k] !== undefined);
  throw invalid(`give exactly one of point, points and columns${forms.length ? `, got ${listed(forms)}` : ""}`, {
    field: forms[1] ?? "point",
  });
}

/**
 * A batch's point count, checked against the batch limits, and the trace rows it will make (which
 * the caller prices).
 */
export function countBatch(entry: FunctionEntry, input: DifferentiateInput, plan: ModePlan, limits: DecodeLimits) {
  const points = input.points;
  const count = points !== undefined ? countPoints(points, limits) : countColumns(entry, input.columns as NamedValues, limits);
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
  return { count, traceRows };
}

function countPoints(points: readonly NamedValues[], limits: DecodeLimits): number {
  if (!Array.isArray(points)) throw invalid("points must be an array of points", { field: "points" });
  checkCount(points.length, "points", limits);
  return points.length;
}

/** A columnar batch's point count: the first axis of its first column. */
function countColumns(entry: FunctionEntry, columns: NamedValues, limits: DecodeLimits): number {
  if (typeof columns !== "object" || columns === null || Array.isArray(columns)) {
    throw invalid("columns must be an object mapping each input name to a tensor of its values", { field: "columns" });
  }
  const count = columnCount(entry, columns);
  checkCount(count, "columns", limits);
  return count;
}

function checkCount(count: number, field: string, limits: DecodeLimits): void {
  if (count > limits.maxPoints) {
    throw exhausted(`${field}: the batch has ${count} points; the limit is ${limits.maxPoints} (ADJOINT_MAX_POINTS)`, { field });
  }
}

/** A columnar batch's point count: the first axis of its first column (0 when there is none to read). */
export function columnCount(entry: FunctionEntry, columns: NamedValues | undefined): number {
  if (typeof columns !== "object" || columns === null || Array.isArray(columns)) return 0;
  const first = entry.fn.inputNames.find((name) => own(columns, name) !== undefined);
  const sample = first === undefined ? undefined : (own(columns, first) as unknown);
  if (Array.isArray(sample)) return sample.length;
  if (typeof sample === "object" && sample !== null && Array.isArray((sample as { shape?: unknown }).shape)) {
    return Number((sample as { shape: number[] }).shape[0] ?? 0);
  }
  return 0;
}

/**
 * The first axis of the request's examples: a model's batch size when its spec does not give one.
 * Read before the model is compiled, so by the model format's name for them (src/ir/model.ts).
 */
export function dataBatch(input: DifferentiateInput): number | undefined {
  const point = input.point ?? input.points?.[0];
  const examples = point === undefined ? undefined : own(point, MODEL_DATA.examples);
  if (Array.isArray(examples)) return examples.length;
  if (typeof examples === "object" && examples !== null && Array.isArray((examples as TensorObject).shape))
    return (examples as TensorObject).shape[0];
  return undefined;
}

/** Memory for a batch: SharedArrayBuffer when workers will read and write it. */
export function allocate(entry: FunctionEntry, plan: ModePlan, count: number, shared: boolean, limits: DecodeLimits): Batch {
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
  const elements = ins.length + outs.length;
  if (elements > 2 * limits.maxTensorElements) {
    throw exhausted(
      `the batch of ${count} points needs ${elements} elements of memory; the limit is ${2 * limits.maxTensorElements} (twice ADJOINT_MAX_TENSOR_ELEMENTS)`,
    );
  }
  // Every input is written before a worker reads it (pointBatch, fillBatch). The outputs start at zero,
  // but pooled memory is zeroed by whoever evaluates each range (evaluateRange), not here: a worker then
  // writes results into memory its own core just touched, and the event loop is spared the pass.
  if (!shared) return { layout, inputs: new Float64Array(ins.length), outputs: new Float64Array(outs.length) };
  return { layout, inputs: sharedFloat64(ins.length, false), outputs: sharedFloat64(outs.length, false), outputsUnzeroed: true };
}

/** A batch of one point, in shared memory for the pool. */
export function pointBatch(entry: FunctionEntry, plan: ModePlan, point: Record<string, Value>, limits: DecodeLimits): Batch {
  const batch = allocate(entry, plan, 1, true, limits);
  writePoint(batch.layout, batch.inputs, 0, checkedPoint(entry, point));
  return batch;
}

/**
 * A batch of one point for the pool, decoded from the request straight into its memory: a tensor's
 * raw bytes (gRPC raw, a framed body's binary part, a large JSON body's base64 read on the pool) are
 * copied once, into the input's block, and checked there; float64 bytes that lie 8-byte aligned in
 * shared memory already (a framed body's binary part, read off the socket into pooled shared memory
 * with its alignment chosen for that: http/body.ts) are not copied at all, but read there by the worker
 * (Batch.placed). Values of any other form, or of another size than their input's, are decoded as for
 * pointBatch; the engine then checks every name and shape.
 */
export function decodePointBatch(
  entry: FunctionEntry,
  plan: ModePlan,
  values: NamedValues,
  decode: DecodeContext,
  limits: DecodeLimits,
): Batch {
  const batch = allocate(entry, plan, 1, true, limits);
  // By name once, not a search per name: the client chooses how many names a point has.
  const tensorSlots = new Map(batch.layout.inputs.filter((s) => s.shape.length > 0).map((s) => [s.name, s]));
  const block = (name: string) => {
    const slot = tensorSlots.get(name);
    return slot === undefined ? undefined : batch.inputs.subarray(slot.offset, slot.offset + slot.size);
  };
  const point = checkedPoint(entry, decodeValues(values, "point", decode, block));
  // Set only where an input stays where the request put it: the memory is the request's, held until it is answered.
  let placed: (Float64Array | undefined)[] | undefined;
  point.forEach((value, k) => {
    if (value instanceof Float64Array && value.buffer instanceof SharedArrayBuffer && value.buffer !== batch.inputs.buffer) {
      placed ??= [];
      placed[k] = value;
    }
  });
  if (placed === undefined) {
    writePoint(batch.layout, batch.inputs, 0, point);
    return batch;
  }
  batch.layout.inputs.forEach((slot, k) => {
    if (placed?.[k] === undefined) writeValue(batch.inputs, slot, 0, point[k]);
  });
  return { ...batch, placed };
}

/** Decodes a batch's points, or its columns, into its memory. */
export function fillBatch(entry: FunctionEntry, input: DifferentiateInput, batch: Batch, decode: DecodeContext): void {
  if (input.points !== undefined) fillFromPoints(entry, input.points, batch, decode);
  else fillFromColumns(entry, input.columns as NamedValues, batch, decode);
}

function fillFromPoints(entry: FunctionEntry, points: readonly NamedValues[], batch: Batch, decode: DecodeContext): void {
  for (let i = 0; i < points.length; i++) {
    const field = `points[${i}]`;
    const values = checkedPoint(entry, decodeValues(points[i], field, decode), field);
    writePoint(batch.layout, batch.inputs, i, values);
  }
}

function fillFromColumns(entry: FunctionEntry, columns: NamedValues, batch: Batch, decode: DecodeContext): void {
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

/** Writes a checked point (the engine's pointValues, in input order) into a batch's memory. */
function writePoint(layout: BatchLayout, inputs: Float64Array, i: number, values: readonly (number | ArrayLike<number>)[]): void {
  layout.inputs.forEach((slot, k) => {
    writeValue(inputs, slot, i, values[k]);
  });
}

/**
 * A decoded point in input order, its names, shapes and types checked by the engine. Finiteness is
 * not checked again: the decoder already enforced the request's policy.
 */
function checkedPoint(entry: FunctionEntry, point: Record<string, Value>, field = "point") {
  return entry.fn.pointValues(point, true, field);
}
