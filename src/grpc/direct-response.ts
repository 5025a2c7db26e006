import { SECTION_NAMES, SECTIONS, type Section } from "../engine/sections.js";
import { isTensor, type Value } from "../engine/values.js";
import { copyBytes } from "../runtime/shared-memory.js";
import { toLittleEndianBytes } from "../service/tensor.js";
import type { DifferentiateOutput } from "../service/types.js";
import { ElementType } from "./gen/adjoint/v1/adjoint_pb.js";
import { allowFraming } from "./message-memory.js";

/**
 * The DifferentiateResponse of a one-point answer whose every number is a scalar or a tensor (the worked
 * example, an optimiser's calls, a training step), written straight from the answer: byte for byte what
 * `toBinary(differentiateResponse(out))` gives, without building the messages first, which cost several
 * times the evaluation in allocation alone. Undefined for any other answer (several points, columns,
 * a trace, a method, a check, sparse structure).
 *
 * The message is written back to front (BackwardWriter), so that each nested message is complete, and
 * its length known, when its length prefix is written: one pass, and no buffer per nested message as a
 * forward writer's fork() and join() make. Fields therefore go in reverse order of field number.
 *
 * An answer that holds tensors is written into one buffer of its own, sized from their bytes before
 * writing, and handed over as it is: toBinary would grow its buffer by doubling and copy the message out
 * once more, several times a megabyte-sized answer's bytes in short-lived buffers whose external memory
 * sets off the main thread's full (Mark-Compact) collections.
 */
export function directResponseBytes(out: DifferentiateOutput, sequence = 0): Uint8Array | undefined {
  const row = out.result;
  if (row === undefined || out.results !== undefined || out.columns !== undefined) return undefined;
  // Anything besides numeric sections takes the general path.
  for (const key in row) if (!Object.hasOwn(SECTIONS, key)) return undefined;
  const outputs = (row.outputs ?? {}) as Record<string, Value>;
  const outputNames = Object.keys(outputs);
  // Result.value (16, after the sections' 1–12): the one output again.
  const value = outputNames.length === 1 ? outputs[outputNames[0]] : undefined;
  const bulk = bulkBytes(row, value, out.parameters);
  if (bulk < 0) return undefined;
  const w = writer.start(bulk);
  if (out.parameters !== undefined) tensorMap(w, RESPONSE.parameters, out.parameters);
  if (sequence !== 0) w.varint(sequence).tag(RESPONSE.sequence, VARINT);
  const resultEnd = w.length;
  if (value !== undefined) tensor(w, value).tag(RESULT_VALUE, LENGTH_DELIMITED);
  for (let s = SECTION_NAMES.length - 1; s >= 0; s--) {
    const section = SECTION_NAMES[s];
    const v: unknown = row[section];
    if (v === undefined) continue;
    const kind = SECTIONS[section];
    const field = RESULT_FIELD[section];
    if (kind === "scalar") tensor(w, v as Value).tag(field, LENGTH_DELIMITED);
    else if (kind === "map") tensorMap(w, field, v as Record<string, Value>);
    else {
      const nested = v as Record<string, Record<string, Value>>;
      const names = Object.keys(nested);
      for (let i = names.length - 1; i >= 0; i--) {
        // A map entry whose value is a TensorMap, whose one field is itself a map of tensors.
        const end = w.length;
        tensorMap(w, 1, nested[names[i]]);
        w.lengthSince(end).tag(2, LENGTH_DELIMITED);
        w.string(names[i]).tag(1, LENGTH_DELIMITED);
        w.lengthSince(end).tag(field, LENGTH_DELIMITED);
      }
    }
  }
  w.lengthSince(resultEnd).tag(RESPONSE.result, LENGTH_DELIMITED);
  if (out.mode !== "") w.string(out.mode).tag(RESPONSE.mode, LENGTH_DELIMITED);
  if (out.id !== "") w.string(out.id).tag(RESPONSE.id, LENGTH_DELIMITED);
  return w.finish();
}

/**
 * The bytes of tensor data the answer will hold (the one output counted again for Result.value), or −1
 * when some value is neither a number nor a tensor.
 */
function bulkBytes(
  row: NonNullable<DifferentiateOutput["result"]>,
  value: Value | undefined,
  parameters: Record<string, Value> | undefined,
): number {
  let bytes = 0;
  const add = (v: unknown) => {
    if (typeof v === "number") return;
    if (isTensor(v)) bytes += v.data.length * 8;
    else bytes = Number.NEGATIVE_INFINITY;
  };
  const addAll = (m: Record<string, unknown>) => {
    for (const name of Object.keys(m)) add(m[name]);
  };
  if (value !== undefined) add(value);
  if (parameters !== undefined) addAll(parameters);
  for (const section of SECTION_NAMES) {
    const v: unknown = row[section];
    if (v === undefined) continue;
    const kind = SECTIONS[section];
    if (kind === "scalar") add(v);
    else if (kind === "map") addAll(v as Record<string, unknown>);
    else for (const m of Object.values(v as Record<string, Record<string, unknown>>)) addAll(m);
  }
  return bytes < 0 ? -1 : bytes;
}

const VARINT = 0;
const LENGTH_DELIMITED = 2;

/** Field numbers of DifferentiateResponse and Result (proto/adjoint/v1/adjoint.proto) that this writes. */
const RESPONSE = { id: 1, mode: 2, result: 3, sequence: 6, parameters: 8 } as const;
const RESULT_VALUE = 16;
const RESULT_FIELD: Readonly<Record<Section, number>> = {
  outputs: 1,
  gradient: 2,
  jvp: 3,
  vjp: 4,
  hvp: 7,
  jacobian: 8,
  hessian: 9,
  derivative: 10,
  divergence: 11,
  laplacian: 12,
};

/** A map<string, Tensor> field, one entry per name. */
function tensorMap(w: BackwardWriter, field: number, m: Record<string, Value>): void {
  const names = Object.keys(m);
  for (let i = names.length - 1; i >= 0; i--) {
    const entryEnd = w.length;
    tensor(w, m[names[i]]).tag(2, LENGTH_DELIMITED);
    w.string(names[i]).tag(1, LENGTH_DELIMITED);
    w.lengthSince(entryEnd).tag(field, LENGTH_DELIMITED);
  }
}

/**
 * A value as a Tensor message, preceded by its length: a scalar as one value (the packed repeated
 * double, field 3), a tensor as its shape (1), FLOAT64 (2) and its elements as little-endian bytes (4).
 */
function tensor(w: BackwardWriter, v: Value): BackwardWriter {
  if (typeof v === "number") return w.double(v).varint(8).tag(3, LENGTH_DELIMITED).varint(10);
  const end = w.length;
  const data = v.data instanceof Float64Array ? v.data : Float64Array.from(v.data);
  if (data.length > 0) w.bytes(toLittleEndianBytes(data)).tag(4, LENGTH_DELIMITED);
  w.varint(ElementType.FLOAT64).tag(2, VARINT);
  if (v.shape.length > 0) {
    const shapeEnd = w.length;
    for (let i = v.shape.length - 1; i >= 0; i--) w.varint(v.shape[i]);
    w.lengthSince(shapeEnd).tag(1, LENGTH_DELIMITED);
  }
  return w.lengthSince(end);
}

/** Bytes kept for writing answers; one that needs more gets a larger buffer for itself alone. */
const SCRATCH_BYTES = 16 * 1024;

/**
 * A protobuf writer that fills a buffer from its end towards its start: each call puts its bytes in
 * front of everything written so far. `length` marks where a nested message ends; once it is written,
 * lengthSince(mark) prefixes its length. One scratch buffer serves every small answer (this runs to
 * the end synchronously), and finish() copies the message out of it; an answer with more tensor data
 * (`bulk` bytes) gets a buffer of its own, which finish() hands over as it is.
 */
class BackwardWriter {
  private readonly scratch = Buffer.allocUnsafe(SCRATCH_BYTES);
  private buffer = this.scratch;
  private position = SCRATCH_BYTES;

  start(bulk: number): this {
    // A scratch's worth besides the tensor data covers the names and shapes, nearly always; past it,
    // reserve() grows the buffer.
    this.buffer = bulk <= SCRATCH_BYTES / 2 ? this.scratch : Buffer.allocUnsafe(bulk + SCRATCH_BYTES);
    this.position = this.buffer.byteLength;
    return this;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.buffer.byteLength - this.position;
  }

  finish(): Buffer {
    if (this.buffer !== this.scratch) {
      const out = this.buffer.subarray(this.position);
      // Not kept for the next answer: the last training step's megabytes would stay reachable while
      // the service idles. What lies in front of the answer is unused, room for its frame header.
      this.buffer = this.scratch;
      allowFraming(out);
      return out;
    }
    const out = Buffer.allocUnsafe(this.length);
    this.buffer.copy(out, 0, this.position);
    return out;
  }

  tag(field: number, wireType: number): this {
    return this.varint((field << 3) | wireType);
  }

  /** The length of what was written since `mark` (a value of `length`), as a varint. */
  lengthSince(mark: number): this {
    return this.varint(this.length - mark);
  }

  /** A non-negative integer below 2^53. */
  varint(n: number): this {
    let size = 1;
    for (let rest = n; rest >= 0x80; rest = Math.floor(rest / 0x80)) size++;
    this.reserve(size);
    let at = this.position;
    let rest = n;
    for (; rest >= 0x80; rest = Math.floor(rest / 0x80)) this.buffer[at++] = (rest % 0x80) | 0x80;
    this.buffer[at] = rest;
    return this;
  }

  /** Bytes as they are (a length-delimited field's contents), possibly viewing a batch's shared memory. */
  bytes(b: Uint8Array): this {
    this.reserve(b.byteLength);
    copyBytes(this.buffer, b, this.position);
    return this.varint(b.byteLength);
  }

  double(v: number): this {
    this.reserve(8);
    this.buffer.writeDoubleLE(v, this.position);
    return this;
  }

  /** A string's UTF-8 bytes preceded by their length. */
  string(s: string): this {
    // Names are short and mostly ASCII: copied a byte at a time, they skip two calls into C++.
    if (s.length <= SHORT_STRING && isAscii(s)) {
      this.reserve(s.length);
      for (let i = 0; i < s.length; i++) this.buffer[this.position + i] = s.charCodeAt(i);
      return this.varint(s.length);
    }
    const size = Buffer.byteLength(s);
    this.reserve(size);
    this.buffer.write(s, this.position, size, "utf8");
    return this.varint(size);
  }

  /** Moves the start back by `size` bytes, first moving what is written into a larger buffer if needed. */
  private reserve(size: number): void {
    if (this.position < size) {
      const written = this.length;
      const larger = Buffer.allocUnsafe(Math.max(2 * this.buffer.byteLength, written + size));
      this.buffer.copy(larger, larger.byteLength - written, this.position);
      this.buffer = larger;
      this.position = larger.byteLength - written;
    }
    this.position -= size;
  }
}

const writer = new BackwardWriter();

/** Strings up to this many characters are checked for ASCII and copied in JavaScript. */
const SHORT_STRING = 64;

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return false;
  return true;
}
