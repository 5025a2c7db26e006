import { invalid } from "../errors.js";
import { type Shape, sizeOf } from "./shape.js";

export interface DenseLiteral {
  readonly shape: Shape;
  readonly data: Float64Array;
}

/** Shape of a nested array, checking that it is rectangular. */
function nestedShape(value: unknown, where: string): number[] {
  const shape: number[] = [];
  let v = value;
  while (Array.isArray(v)) {
    shape.push(v.length);
    if (v.length === 0) break;
    v = v[0];
  }
  const check = (x: unknown, depth: number, path: string) => {
    if (depth === shape.length) {
      if (typeof x !== "number") throw invalid(`${where}${path}: expected a number, got ${JSON.stringify(x)?.slice(0, 40)}`);
      return;
    }
    if (!Array.isArray(x) || x.length !== shape[depth]) {
      throw invalid(`${where}${path}: ragged nested array (expected ${shape[depth]} elements at depth ${depth})`);
    }
    x.forEach((y, i) => {
      check(y, depth + 1, `${path}[${i}]`);
    });
  };
  check(value, 0, "");
  return shape;
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
    shape = nestedShape(value, "value");
    flat = value.flat(Number.POSITIVE_INFINITY) as unknown[];
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
  for (let i = 0; i < flat.length; i++) {
    const x = flat[i];
    if (typeof x !== "number" || !Number.isFinite(x)) throw invalid(`constant element ${i} is not a finite number`);
    data[i] = x;
  }
  return { shape, data };
}
