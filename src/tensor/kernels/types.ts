/**
 * Types shared by the numeric kernels. The kernels are pure functions over typed arrays: they know
 * nothing of tensors, graphs or programs, allocate nothing large on their hot path (callers pass the
 * output and any workspace), and accept views (`subarray`) over any buffer, SharedArrayBuffer included.
 */

/** The element types the kernels support. */
export type FloatArray = Float64Array | Float32Array;

/** Thrown for arguments that break a kernel's contract (sizes, bounds, mixed element types). */
export class KernelArgumentError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "KernelArgumentError";
  }
}

export function checkDim(value: number, name: string, min = 0): void {
  if (!Number.isInteger(value) || value < min || value > 0x7fffffff) {
    throw new KernelArgumentError(`${name} must be an integer ≥ ${min}, got ${value}`);
  }
}

/** An optional geometry field: its default when absent, else checked like checkDim. */
export function optionalDim(value: number | undefined, fallback: number, name: string, min: number): number {
  if (value === undefined) return fallback;
  checkDim(value, name, min);
  return value;
}

export function checkSameType(arrays: readonly FloatArray[], what: string): void {
  const first = arrays[0];
  const f64 = first instanceof Float64Array;
  if (!f64 && !(first instanceof Float32Array)) throw new KernelArgumentError(`${what}: expected a Float64Array or Float32Array`);
  for (const a of arrays) {
    if (a instanceof Float64Array !== f64 || !(a instanceof Float64Array || a instanceof Float32Array)) {
      throw new KernelArgumentError(`${what}: all operands must have the same element type`);
    }
  }
}

/** Throws unless `[offset, offset + span)` lies within an array of `length` elements (span 0 always fits). */
export function checkSpan(length: number, offset: number, span: number, what: string): void {
  if (span === 0) return;
  if (!Number.isInteger(offset) || offset < 0 || offset + span > length) {
    throw new KernelArgumentError(`${what}: elements [${offset}, ${offset + span}) are out of bounds of an array of ${length}`);
  }
}
