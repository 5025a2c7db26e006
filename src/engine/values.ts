import { invalid } from "../errors.js";
import type { DType, TensorData } from "../ops/types.js";
import { formatShape, type Shape, sameShape, sizeOf } from "../tensor/shape.js";

/** A tensor as the engine takes and gives it: a shape and row-major elements. */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: ArrayLike<number>;
}

/** An input or result: a plain number for a scalar, else a tensor. */
export type Value = number | Tensor;

export type NamedValues = Readonly<Record<string, Value>>;

export function isTensor(v: unknown): v is Tensor {
  return typeof v === "object" && v !== null && Array.isArray((v as Tensor).shape) && (v as Tensor).data !== undefined;
}

/**
 * Index of the first non-finite element, or −1. Every answer's results are scanned, megabytes of them
 * for a training step, so float arrays take scanFloats; a plain array (JSON) is tested element by element.
 */
export function firstNonFinite(data: number | ArrayLike<number>): number {
  if (typeof data === "number") return data - data === 0 ? -1 : 0;
  // Only float arrays: in a plain array, x·0 is 0 for a string of digits or null, which are not finite numbers.
  if (data instanceof Float64Array || data instanceof Float32Array) return scanFloats(data);
  const n = data.length;
  for (let i = 0; i < n; i++) if (!Number.isFinite(data[i])) return i;
  return -1;
}

/**
 * Four elements at a time, as x·0, which is NaN exactly for NaN and ±∞ (about three times faster than
 * a test per element), a block at a time; the block that holds one is then searched element by element.
 *
 * The hot loop is a function of its own, called per block, rather than a loop here over the whole
 * array: a single long loop ran its first calls through on-stack replacement, compiled before the code
 * after the loop had ever run, and V8 then deoptimised that compiled loop at its exit on nearly every
 * call ("insufficient type feedback"), running it in the interpreter meanwhile and compiling it again
 * on a background thread (docs/service.md, "The finiteness scan stays compiled").
 */
function scanFloats(data: Float64Array | Float32Array): number {
  const n = data.length;
  const whole = n - (n % 4);
  for (let from = 0; from < whole; from += SCAN_BLOCK) {
    const to = Math.min(whole, from + SCAN_BLOCK);
    if (!groupsAreFinite(data, from, to)) return firstNonFiniteIn(data, from, to);
  }
  return firstNonFiniteIn(data, whole, n);
}

/** Elements per call of groupsAreFinite: its loop stays short, the calls few. */
const SCAN_BLOCK = 1024;

/** Whether data[from..to) is all finite; to − from a multiple of 4. */
function groupsAreFinite(data: Float64Array | Float32Array, from: number, to: number): boolean {
  let zero = 0;
  for (let i = from; i < to; i += 4) zero += data[i] * 0 + data[i + 1] * 0 + data[i + 2] * 0 + data[i + 3] * 0;
  // A sum of zeros is ±0; of anything with a NaN in it, NaN.
  return zero === 0;
}

function firstNonFiniteIn(data: Float64Array | Float32Array, from: number, to: number): number {
  for (let i = from; i < to; i++) {
    const x = data[i];
    if (x - x !== 0) return i;
  }
  return -1;
}

/**
 * Checks one value against the shape and type the function declares for it, and returns what a
 * program's setInput takes. Errors name the field and both shapes.
 */
export function checkValue(value: unknown, shape: Shape, dtype: DType, field: string, allowNonFinite: boolean): number | ArrayLike<number> {
  let data: number | ArrayLike<number>;
  let given: Shape;
  if (typeof value === "number") {
    data = value;
    given = [];
  } else if (isTensor(value)) {
    data = value.data;
    given = value.shape;
    if (data.length !== sizeOf(given))
      throw invalid(`${field}: ${data.length} elements do not fill shape ${formatShape(given)}`, { field });
  } else {
    throw invalid(`${field} must be a number or a tensor`, { field });
  }
  // A single number may stand for a one-element tensor.
  if (!sameShape(given, shape) && !(sizeOf(given) === 1 && sizeOf(shape) === 1)) {
    throw invalid(`${field} has shape ${formatShape(given)}, but the function declares ${formatShape(shape)}`, { field });
  }
  if (dtype === "int") {
    const ints = typeof data === "number" ? [data] : data;
    for (let i = 0; i < ints.length; i++) {
      if (!Number.isInteger(ints[i])) throw invalid(`${field}: element ${i} is ${ints[i]}, but this input holds integers`, { field });
    }
  } else if (!allowNonFinite) {
    const bad = firstNonFinite(data);
    if (bad >= 0) {
      const v = typeof data === "number" ? data : data[bad];
      const where = typeof data === "number" ? "" : ` at element ${bad}`;
      throw invalid(`${field} is ${v}${where}; non-finite values are rejected unless the request allows them`, { field });
    }
  }
  return data;
}

/** A program's result as the engine returns it: scalars as numbers, tensors copied out of the arena. */
export function resultValue(shape: Shape, data: number | TensorData): Value {
  if (shape.length === 0) return typeof data === "number" ? data : data[0];
  return { shape: [...shape], data: typeof data === "number" ? Float64Array.of(data) : Float64Array.from(data) };
}
