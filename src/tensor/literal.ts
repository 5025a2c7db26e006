import { invalid } from "../errors.js";
import { type Shape, sizeOf } from "./shape.js";

export interface DenseLiteral {
  readonly shape: Shape;
  readonly data: Float64Array;
}

/** Deepest nesting read as a tensor: far beyond any real tensor, well within the stack. */
export const MAX_RANK = 32;

/**
 * Reads nested arrays as a row-major tensor: the shape from the first element at each depth, every
 * element through `element` (which checks and converts it), rejecting ragged arrays and absurd depth
 * with messages that name the path. `reserve` is told the element count before anything is read.
 */
export function decodeNestedArray(
  value: readonly unknown[],
  field: string,
  element: (v: unknown, path: string) => number,
  reserve: (count: number) => void = () => {},
): DenseLiteral {
  const shape: number[] = [];
  for (let v: unknown = value; Array.isArray(v); v = v[0]) {
    if (shape.length === MAX_RANK) throw invalid(`${field}: nested deeper than ${MAX_RANK} levels`, { field });
    shape.push(v.length);
    if (v.length === 0) break;
  }
  const size = sizeOf(shape);
  reserve(size);
  const data = new Float64Array(size);
  let next = 0;
  const walk = (v: unknown, depth: number, path: string): void => {
    if (depth === shape.length) {
      data[next++] = element(v, `${field}${path}`);
      return;
    }
    if (!Array.isArray(v) || v.length !== shape[depth]) {
      throw invalid(`${field}${path}: ragged nested array (expected ${shape[depth]} elements at depth ${depth})`, { field });
    }
    for (let i = 0; i < v.length; i++) walk(v[i], depth + 1, `${path}[${i}]`);
  };
  walk(value, 0, "");
  return { shape, data };
}

function finiteConstant(v: unknown, path: string): number {
  if (typeof v !== "number" || !Number.isFinite(v))
    throw invalid(`${path}: a constant element must be a finite number, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return v;
}

/**
 * A constant written in JSON: a number, nested arrays, or { shape, data } with flat row-major data.
 * Non-finite values are rejected: a constant is part of the function, not of the data.
 */
export function decodeConstantLiteral(value: unknown): DenseLiteral {
  let shape: Shape;
  let flat: ArrayLike<unknown>;
  if (typeof value === "number") {
    shape = [];
    flat = [value];
  } else if (Array.isArray(value)) {
    return decodeNestedArray(value, "value", finiteConstant);
  } else if (typeof value === "object" && value !== null && "shape" in value && "data" in value) {
    const v = value as { shape: unknown; data: unknown };
    if (!Array.isArray(v.shape) || !v.shape.every((d) => Number.isInteger(d) && d >= 0))
      throw invalid("value.shape must be non-negative integers");
    if (!Array.isArray(v.data)) throw invalid("value.data must be a flat array of numbers");
    shape = v.shape as number[];
    flat = v.data;
    if (flat.length !== sizeOf(shape))
      throw invalid(`value.data has ${flat.length} elements but shape [${shape.join(", ")}] needs ${sizeOf(shape)}`);
  } else {
    throw invalid("a constant is a number, nested arrays of numbers, or {shape, data}");
  }
  const data = new Float64Array(flat.length);
  for (let i = 0; i < flat.length; i++) data[i] = finiteConstant(flat[i], `value[${i}]`);
  return { shape, data };
}
