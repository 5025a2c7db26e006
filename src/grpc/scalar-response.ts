import { SECTION_NAMES, SECTIONS, type Section } from "../engine/sections.js";
import type { DifferentiateOutput } from "../service/types.js";

/**
 * The DifferentiateResponse of a one-point answer whose every number is a scalar (the worked example,
 * an optimiser's calls), written straight from the answer: byte for byte what
 * `toBinary(differentiateResponse(out))` gives, without building the messages first, which cost several
 * times the evaluation in allocation alone. Undefined for any other answer.
 *
 * The message is written back to front (BackwardWriter), so that each nested message is complete, and
 * its length known, when its length prefix is written: one pass, and no buffer per nested message as a
 * forward writer's fork() and join() make. Fields therefore go in reverse order of field number.
 */
export function scalarResponseBytes(out: DifferentiateOutput, sequence = 0): Uint8Array | undefined {
  const row = out.result;
  if (row === undefined || out.results !== undefined || out.columns !== undefined || out.parameters !== undefined) return undefined;
  // Anything besides numeric sections (a trace, a method, a check, sparse structure) takes the general path.
  for (const key in row) if (!Object.hasOwn(SECTIONS, key)) return undefined;
  // So does any tensor: met while writing, it abandons what the scratch buffer holds.
  const w = writer.start();
  if (sequence !== 0) w.varint(sequence).tag(RESPONSE.sequence, VARINT);
  const resultEnd = w.length;
  // Result.value (16, after the sections' 1–12): the one output again.
  const outputs = (row.outputs ?? {}) as Record<string, unknown>;
  const outputNames = Object.keys(outputs);
  if (outputNames.length === 1) {
    const value = outputs[outputNames[0]];
    if (typeof value !== "number") return undefined;
    scalarTensor(w, value).tag(RESULT_VALUE, LENGTH_DELIMITED);
  }
  for (let s = SECTION_NAMES.length - 1; s >= 0; s--) {
    const section = SECTION_NAMES[s];
    const v: unknown = row[section];
    if (v === undefined) continue;
    const kind = SECTIONS[section];
    const field = RESULT_FIELD[section];
    if (kind === "scalar") {
      if (typeof v !== "number") return undefined;
      scalarTensor(w, v).tag(field, LENGTH_DELIMITED);
    } else if (kind === "map") {
      if (!tensorMap(w, field, v as Record<string, unknown>)) return undefined;
    } else {
      const nested = v as Record<string, Record<string, unknown>>;
      const names = Object.keys(nested);
      for (let i = names.length - 1; i >= 0; i--) {
        // A map entry whose value is a TensorMap, whose one field is itself a map of tensors.
        const end = w.length;
        if (!tensorMap(w, 1, nested[names[i]])) return undefined;
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

const VARINT = 0;
const LENGTH_DELIMITED = 2;

/** Field numbers of DifferentiateResponse and Result (proto/adjoint/v1/adjoint.proto) that this writes. */
const RESPONSE = { id: 1, mode: 2, result: 3, sequence: 6 } as const;
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

/** A map<string, Tensor> field, one entry per name, each scalar a Tensor with one value; false at a tensor. */
function tensorMap(w: BackwardWriter, field: number, m: Record<string, unknown>): boolean {
  const names = Object.keys(m);
  for (let i = names.length - 1; i >= 0; i--) {
    const value = m[names[i]];
    if (typeof value !== "number") return false;
    const entryEnd = w.length;
    scalarTensor(w, value).tag(2, LENGTH_DELIMITED);
    w.string(names[i]).tag(1, LENGTH_DELIMITED);
    w.lengthSince(entryEnd).tag(field, LENGTH_DELIMITED);
  }
  return true;
}

/** Tensor{values: [v]} (the packed repeated double, field 3), preceded by its length. */
function scalarTensor(w: BackwardWriter, v: number): BackwardWriter {
  return w.double(v).varint(8).tag(3, LENGTH_DELIMITED).varint(10);
}

/** Bytes kept for writing answers; one that needs more gets a larger buffer for itself alone. */
const SCRATCH_BYTES = 16 * 1024;

/**
 * A protobuf writer that fills a buffer from its end towards its start: each call puts its bytes in
 * front of everything written so far. `length` marks where a nested message ends; once it is written,
 * lengthSince(mark) prefixes its length. One scratch buffer serves every answer (this runs to the end
 * synchronously); finish() copies the message out.
 */
class BackwardWriter {
  private buffer = Buffer.allocUnsafe(SCRATCH_BYTES);
  private position = SCRATCH_BYTES;

  start(): this {
    if (this.buffer.byteLength > SCRATCH_BYTES) this.buffer = Buffer.allocUnsafe(SCRATCH_BYTES);
    this.position = this.buffer.byteLength;
    return this;
  }

  /** Bytes written so far. */
  get length(): number {
    return this.buffer.byteLength - this.position;
  }

  finish(): Buffer {
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
