import { SECTION_NAMES, SECTIONS, type Section } from "../engine/sections.js";
import { isTensor, type Value } from "../engine/values.js";
import { copyBytes } from "../runtime/shared-memory.js";
import { LITTLE_ENDIAN, toLittleEndianBytes } from "../service/tensor.js";
import type { AnswerMemory, DifferentiateOutput } from "../service/types.js";
import { ElementType } from "./gen/adjoint/v1/adjoint_pb.js";
import { allowFraming, PartedAnswer, partedAnswers } from "./message-memory.js";

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
export function directResponseBytes(out: DifferentiateOutput, sequence?: number): Uint8Array | undefined;
/** With the batch memory the answer's tensors lie in: its large tensors sent from there (PartedAnswer). */
export function directResponseBytes(
  out: DifferentiateOutput,
  sequence: number,
  memory: AnswerMemory | undefined,
): Uint8Array | PartedAnswer | undefined;
export function directResponseBytes(out: DifferentiateOutput, sequence = 0, memory?: AnswerMemory): Uint8Array | PartedAnswer | undefined {
  const row = out.result;
  if (row === undefined || out.results !== undefined || out.columns !== undefined) return undefined;
  // Anything besides numeric sections takes the general path.
  for (const key in row) if (!Object.hasOwn(SECTIONS, key)) return undefined;
  const outputs = (row.outputs ?? {}) as Record<string, Value>;
  const outputNames = Object.keys(outputs);
  // Result.value (16, after the sections' 1–12): the one output again.
  const value = outputNames.length === 1 ? outputs[outputNames[0]] : undefined;
  const viewable = memory?.lends !== undefined && partedAnswers() ? viewableIn(memory) : undefined;
  const bulk = bulkBytes(row, value, out.parameters, viewable);
  if (bulk < 0) return undefined;
  const w = writer.start(bulk, viewable);
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
  return w.finish(memory);
}

/**
 * Tensors at least this large whose elements lie in the batch memory an answer is lent (AnswerMemory)
 * are sent from there (PartedAnswer) rather than copied into the message: a training step's 1.6 MB of
 * gradients cost 0.25 ms of the event loop to copy, and a fresh 1.6 MB buffer a call.
 */
const VIEWED_BYTES = 64 * 1024;

/** Whether a tensor's elements are sent from the memory they lie in (on a little-endian machine). */
type Viewable = (data: Float64Array) => boolean;

function viewableIn(memory: AnswerMemory): Viewable | undefined {
  if (!LITTLE_ENDIAN) return undefined;
  return (data) => data.byteLength >= VIEWED_BYTES && memory.lends?.(data) === true;
}

/**
 * The bytes of tensor data the answer will hold (the one output counted again for Result.value), or −1
 * when some value is neither a number nor a tensor.
 */
function bulkBytes(
  row: NonNullable<DifferentiateOutput["result"]>,
  value: Value | undefined,
  parameters: Record<string, Value> | undefined,
  viewable: Viewable | undefined,
): number {
  let bytes = 0;
  const add = (v: unknown) => {
    if (typeof v === "number") return;
    if (!isTensor(v)) bytes = Number.NEGATIVE_INFINITY;
    else if (!(viewable !== undefined && v.data instanceof Float64Array && viewable(v.data))) bytes += v.data.length * 8;
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
  if (data.length > 0) (w.views(data) ? w.view(data) : w.bytes(toLittleEndianBytes(data))).tag(4, LENGTH_DELIMITED);
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
  private viewable: Viewable | undefined;
  /** Tensors sent from their own memory, in the order written (back to front), each with how many written bytes follow it. */
  private viewed: { data: Float64Array; followedBy: number }[] = [];
  private viewedBytes = 0;

  start(bulk: number, viewable?: Viewable): this {
    // A scratch's worth besides the tensor data covers the names and shapes, nearly always; past it,
    // reserve() grows the buffer.
    this.buffer = bulk <= SCRATCH_BYTES / 2 ? this.scratch : Buffer.allocUnsafe(bulk + SCRATCH_BYTES);
    this.position = this.buffer.byteLength;
    this.viewable = viewable;
    this.viewed = [];
    this.viewedBytes = 0;
    return this;
  }

  /** Bytes written so far, the viewed tensors' included. */
  get length(): number {
    return this.buffer.byteLength - this.position + this.viewedBytes;
  }

  views(data: Float64Array): boolean {
    return this.viewable?.(data) === true;
  }

  /** A tensor's elements as a length-delimited field's contents, left where they lie. */
  view(data: Float64Array): this {
    this.viewed.push({ data, followedBy: this.buffer.byteLength - this.position });
    this.viewedBytes += data.byteLength;
    return this.varint(data.byteLength);
  }

  finish(memory?: AnswerMemory): Buffer | PartedAnswer {
    if (this.viewed.length > 0 && memory !== undefined) return this.parted(memory);
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

  /**
   * The message as parts: the written bytes, copied out of the writer's buffer (a few hundred: tags,
   * names, shapes) behind five bytes for the frame header, cut where each viewed tensor goes.
   */
  private parted(memory: AnswerMemory): PartedAnswer {
    const written = this.buffer.byteLength - this.position;
    const copy = Buffer.allocUnsafe(5 + written);
    this.buffer.copy(copy, 5, this.position);
    const parts: Buffer[] = [];
    let from = 0;
    // The last tensor written is the first in the message.
    for (let i = this.viewed.length - 1; i >= 0; i--) {
      const { data, followedBy } = this.viewed[i];
      const to = 5 + written - followedBy;
      if (parts.length === 0) parts.push(copy.subarray(5, to));
      else if (to > from) parts.push(copy.subarray(from, to));
      parts.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      from = to;
    }
    if (from < copy.byteLength) parts.push(copy.subarray(from));
    const answer = new PartedAnswer(parts, written + this.viewedBytes, memory.keep());
    this.buffer = this.scratch;
    this.viewed = [];
    this.viewedBytes = 0;
    this.viewable = undefined;
    return answer;
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
