import { endianness } from "node:os";
import { setImmediate as nextTurn } from "node:timers/promises";
import { firstNonFinite, type Value } from "../engine/values.js";
import { AdjointError, exhausted, invalid, listed } from "../errors.js";
import { record } from "../names.js";
import { copyBytes } from "../runtime/shared-memory.js";
import { decodeNestedArray } from "../tensor/literal.js";
import { formatShape, sizeOf } from "../tensor/shape.js";
import type { ElementDType, NamedValues, TensorObject, TensorValue } from "./types.js";

/**
 * Tensor values, decoded in one place for every transport: JSON numbers and nested arrays, the
 * {shape, data} and {shape, dtype, base64} objects, references into the binary part of a framed HTTP
 * body, and gRPC's repeated doubles and raw bytes (which its adapter hands over as {shape, data} and
 * {shape, dtype, bytes}). Non-finite values are written "NaN", "Infinity", "-Infinity" in JSON and are
 * rejected unless the request allows them.
 */
export interface DecodedTensor {
  readonly shape: readonly number[];
  readonly data: Float64Array;
}

/** What decoding needs besides the value: the request's permissions, its binary part and its element budget. */
export class DecodeContext {
  private elements = 0;
  /** Raw tensors whose finiteness is checked later (deferFiniteChecks), in the order they were decoded. */
  private deferred: { data: Float64Array; where: string; input?: string }[] | undefined;

  constructor(
    readonly allowNonFinite: boolean,
    readonly maxElements: number,
    readonly binary?: Uint8Array,
  ) {}

  /** Counts elements against the per-request limit before anything is allocated for them. */
  charge(n: number, field: string): void {
    this.elements += n;
    if (this.elements > this.maxElements) {
      throw exhausted(`${field}: the request has more than ${this.maxElements} tensor elements (limit ADJOINT_MAX_TENSOR_ELEMENTS)`, {
        field,
      });
    }
  }

  /**
   * From now on, raw tensors (bytes of float64, float32, int32, int64) are not scanned for non-finite
   * values as they are decoded, but by checkDeferred: a pool batch's caller runs it while the worker
   * computes, so that the scan (about a nanosecond a number, a third of a millisecond for a training
   * step's inputs) adds nothing to the answer's time.
   */
  deferFiniteChecks(): this {
    this.deferred ??= [];
    return this;
  }

  /** A raw tensor's finiteness, now or later (deferFiniteChecks), under the request's policy. */
  checkFinite(data: Float64Array, where: string, input?: string): void {
    if (this.allowNonFinite) return;
    if (this.deferred !== undefined) this.deferred.push({ data, where, input });
    else this.scan(data, where, input);
  }

  /**
   * Rejects with the first non-finite value of the tensors whose check was deferred, as decoding would
   * have thrown. Scanned a slice at a time between turns of the event loop: in one piece, a training
   * step's inputs held the loop 0.6 ms on top of decoding them, and small requests waited behind both.
   */
  async checkDeferred(): Promise<void> {
    const deferred = this.deferred ?? [];
    this.deferred = undefined;
    let scanned = 0;
    for (const { data, where, input } of deferred) {
      for (let from = 0; from < data.length; from += SCAN_SLICE) {
        if (scanned >= SCAN_SLICE) {
          scanned = 0;
          await nextTurn();
        }
        const slice = data.subarray(from, from + SCAN_SLICE);
        this.scan(slice, where, input, from);
        scanned += slice.length;
      }
    }
  }

  private scan(data: Float64Array, where: string, input?: string, offset = 0): void {
    const bad = firstNonFinite(data);
    if (bad >= 0) this.number(data[bad], `${where}[${offset + bad}]`, input);
  }

  /** A number from JSON: finite, or a non-finite one spelled as a string where allowed. */
  number(x: unknown, field: string, input?: string): number {
    let v: number;
    if (typeof x === "number") v = x;
    else if (x === "NaN") v = Number.NaN;
    else if (x === "Infinity") v = Number.POSITIVE_INFINITY;
    else if (x === "-Infinity") v = Number.NEGATIVE_INFINITY;
    else throw invalid(`${field} must be a number, got ${describe(x)}`, { field, input });
    if (!this.allowNonFinite && !Number.isFinite(v)) {
      throw invalid(`${field} is ${v}; non-finite values are rejected unless the request sets allowNonFinite`, { field, input });
    }
    return v;
  }
}

function describe(x: unknown): string {
  const text = JSON.stringify(x);
  return text === undefined ? typeof x : text.length > 40 ? `${text.slice(0, 40)}…` : text;
}

/** Whether this machine stores a float64 as its little-endian bytes (raw tensors are sent that way). */
export const LITTLE_ENDIAN = endianness() === "LE";

/** Numbers a deferred finiteness check scans in one turn of the event loop: about 0.1 ms. */
const SCAN_SLICE = 64 * 1024;

/**
 * Decodes any tensor form. `input` names the function input, for the error's location. With `into`
 * (a block of a batch's memory), a tensor object of exactly that many elements is written there,
 * its raw bytes copied once, and its data is that block; any other value is decoded as without it.
 */
export function decodeTensor(value: TensorValue, field: string, ctx: DecodeContext, input?: string, into?: Float64Array): DecodedTensor {
  if (typeof value === "number" || typeof value === "string") {
    ctx.charge(1, field);
    return { shape: [], data: Float64Array.of(ctx.number(value, field, input)) };
  }
  if (Array.isArray(value)) return decodeNested(value, field, ctx, input);
  if (typeof value === "object" && value !== null) return decodeObject(value as TensorObject, field, ctx, input, into);
  throw invalid(`${field} must be a number, nested arrays of numbers, or a tensor {shape, data | base64 | binary}`, { field, input });
}

/** A value as the engine takes it: a number for a scalar, else {shape, data} (see decodeTensor for `into`). */
export function decodeValue(value: TensorValue, field: string, ctx: DecodeContext, input?: string, into?: Float64Array): Value {
  if (typeof value === "number") {
    ctx.charge(1, field);
    return ctx.number(value, field, input);
  }
  const t = decodeTensor(value, field, ctx, input, into);
  return t.shape.length === 0 ? t.data[0] : t;
}

/**
 * Values by name (a point, a tangent, a cotangent). Names, shapes and types are checked against the
 * function by the engine, whose messages name the field and both shapes. `into` gives the block of
 * memory a name's tensor may be decoded straight into (see decodeTensor).
 */
export function decodeValues(
  values: NamedValues,
  field: string,
  ctx: DecodeContext,
  into?: (name: string) => Float64Array | undefined,
): Record<string, Value> {
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    throw invalid(`${field} must be an object mapping names to values`, { field });
  }
  const out = record<Value>();
  for (const name of Object.keys(values)) out[name] = decodeValue(values[name], `${field}.${name}`, ctx, name, into?.(name));
  return out;
}

function decodeNested(value: readonly unknown[], field: string, ctx: DecodeContext, input?: string): DecodedTensor {
  try {
    return decodeNestedArray(
      value,
      field,
      (v, path) => ctx.number(v, path, input),
      (count) => ctx.charge(count, field),
    );
  } catch (e) {
    if (e instanceof AdjointError && input !== undefined && e.location.input === undefined)
      throw new AdjointError(e.kind, e.message, { ...e.location, input });
    throw e;
  }
}

function decodeObject(t: TensorObject, field: string, ctx: DecodeContext, input?: string, into?: Float64Array): DecodedTensor {
  const shape = t.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw invalid(`${field}.shape must be an array of non-negative integers`, { field: `${field}.shape`, input });
  }
  const size = sizeOf(shape);
  const forms = (["data", "base64", "binary", "bytes"] as const).filter((k) => t[k] !== undefined);
  if (forms.length !== 1) {
    throw invalid(`${field}: a tensor needs exactly one of data, base64 or binary${forms.length ? `, got ${listed(forms)}` : ""}`, {
      field,
      input,
    });
  }
  ctx.charge(size, field);
  const destination = into !== undefined && into.length === size ? into : undefined;
  if (t.data !== undefined) {
    if (!Array.isArray(t.data)) throw invalid(`${field}.data must be a flat array of numbers`, { field: `${field}.data`, input });
    if (t.data.length !== size) {
      throw invalid(`${field}: shape mismatch: data has ${t.data.length} elements but shape ${formatShape(shape)} needs ${size}`, {
        field: `${field}.data`,
        input,
      });
    }
    const data = destination ?? new Float64Array(size);
    for (let i = 0; i < size; i++) data[i] = ctx.number(t.data[i], `${field}.data[${i}]`, input);
    return { shape, data };
  }
  const dtype = t.dtype ?? "float64";
  if (!Object.hasOwn(WIDTH, dtype)) {
    throw invalid(`${field}.dtype must be float64, float32, int32 or int64, got ${describe(dtype)}`, { field: `${field}.dtype`, input });
  }
  let bytes: Uint8Array;
  let where: string;
  if (t.base64 !== undefined) {
    where = `${field}.base64`;
    if (typeof t.base64 !== "string") throw invalid(`${where} must be a string`, { field: where, input });
    bytes = Buffer.from(t.base64, "base64");
  } else if (t.binary !== undefined) {
    where = `${field}.binary`;
    const { offset, length } = t.binary;
    const part = ctx.binary;
    if (part === undefined) throw invalid(`${where}: binary tensor data needs a framed binary body`, { field: where, input });
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > part.byteLength) {
      throw invalid(`${where}: bytes ${offset}…${offset + length} are outside the binary part (${part.byteLength} bytes)`, {
        field: where,
        input,
      });
    }
    bytes = part.subarray(offset, offset + length);
  } else {
    where = `${field}.raw`;
    bytes = t.bytes as Uint8Array;
  }
  const width = WIDTH[dtype];
  if (bytes.byteLength !== size * width) {
    throw invalid(
      `${where}: shape mismatch: ${bytes.byteLength} bytes, but shape ${formatShape(shape)} of ${dtype} needs ${size * width}`,
      {
        field: where,
        input,
      },
    );
  }
  const data = readLittleEndian(bytes, dtype, size, where, input, destination);
  ctx.checkFinite(data, where, input);
  return { shape, data };
}

/** Bytes per element of each dtype a raw tensor may have. */
const WIDTH: Readonly<Record<ElementDType, number>> = { float64: 8, float32: 4, int32: 4, int64: 8 };

/**
 * Raw elements as float64, written into `into` when given (a block of a batch's memory: the bytes are
 * copied once, whatever their alignment), unless they are float64 already aligned in shared memory,
 * which is then viewed where it lies. Integers (class labels sent as int32 or int64) become the
 * same numbers exactly; an int64 beyond ±(2^53 − 1) may have no exact float64, so it is refused
 * rather than rounded.
 */
function readLittleEndian(
  bytes: Uint8Array,
  dtype: ElementDType,
  size: number,
  where: string,
  input?: string,
  into?: Float64Array,
): Float64Array {
  const width = WIDTH[dtype];
  if (LITTLE_ENDIAN && dtype === "float64" && into !== undefined) {
    // Already in shared memory, aligned: read there by the worker (decodePointBatch), not copied.
    if (bytes.buffer instanceof SharedArrayBuffer && bytes.byteOffset % 8 === 0)
      return new Float64Array(bytes.buffer, bytes.byteOffset, size);
    copyBytes(new Uint8Array(into.buffer, into.byteOffset, into.byteLength), bytes);
    return into;
  }
  if (LITTLE_ENDIAN && bytes.byteOffset % width === 0) {
    // Aligned float64 data is used where it lies (the caller copies it once, into the batch's memory).
    if (dtype === "float64") return new Float64Array(bytes.buffer, bytes.byteOffset, size);
    const elements = dtype === "float32" ? new Float32Array(bytes.buffer, bytes.byteOffset, size) : undefined;
    const ints = dtype === "int32" ? new Int32Array(bytes.buffer, bytes.byteOffset, size) : undefined;
    const source = elements ?? ints;
    if (source !== undefined) {
      if (into === undefined) return Float64Array.from(source);
      into.set(source);
      return into;
    }
  }
  // Unaligned float64 (a protobuf bytes field lies wherever the message puts it): one copy to an
  // aligned buffer is several times faster than reading element by element.
  if (LITTLE_ENDIAN && dtype === "float64") return new Float64Array(new Uint8Array(bytes).buffer, 0, size);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = into ?? new Float64Array(size);
  for (let i = 0; i < size; i++) {
    if (dtype === "float64") out[i] = dv.getFloat64(i * 8, true);
    else if (dtype === "float32") out[i] = dv.getFloat32(i * 4, true);
    else if (dtype === "int32") out[i] = dv.getInt32(i * 4, true);
    else {
      const v = dv.getBigInt64(i * 8, true);
      if (v > MAX_EXACT || v < -MAX_EXACT) {
        throw invalid(`${where}[${i}]: the int64 ${v} is beyond ±(2^53 − 1), past which float64 does not hold every integer`, {
          field: where,
          input,
        });
      }
      out[i] = Number(v);
    }
  }
  return out;
}

const MAX_EXACT = BigInt(Number.MAX_SAFE_INTEGER);

/** Float64 data as little-endian bytes (a view where the platform is little-endian). */
export function toLittleEndianBytes(data: Float64Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.length * 8);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) dv.setFloat64(i * 8, data[i], true);
  return out;
}
