import { randomUUID } from "node:crypto";
import type { PatternCsr, SparsityReport } from "../engine/modes/index.js";
import { everySectionValue, mapSections, SECTION_NAMES, type Section } from "../engine/sections.js";
import type { Value } from "../engine/values.js";
import { stringifyExact } from "../json.js";
import { own, recordOf } from "../names.js";
import { bufferView, pooledBytes } from "../runtime/shared-memory.js";
import { scalarAnswerJson } from "./json-scalar.js";
import { toLittleEndianBytes } from "./tensor.js";
import type { Column, ColumnsResult, DifferentiateOutput, ResultRow, SparseStructure } from "./types.js";

/** How a tensor of the answer is written: as JSON {shape, data}, or as a reference into a binary part. */
export type TensorWriter = (t: { readonly shape: readonly number[]; readonly data: Float64Array }) => unknown;

/**
 * The JSON answer (REST). A function with one output answers `value`; with several, `outputs` by name.
 * Scalars are numbers, tensors {shape, data} with row-major data (or, in a framed binary answer,
 * {shape, dtype, binary} references into its binary part). A batch of `points` answers `results`,
 * one object per point in order; a batch of `columns` answers `columns`, each field a tensor whose
 * first axis is the point. Non-finite numbers appear only when the request allowed them, as the
 * strings "NaN", "Infinity" and "-Infinity".
 */
export function jsonBody(out: DifferentiateOutput, tensor: TensorWriter = tensorJson): Record<string, unknown> {
  const row = (r: ResultRow) => rowBody(r, tensor);
  const body: Record<string, unknown> =
    out.result !== undefined ? row(out.result) : out.results !== undefined ? { results: out.results.map(row) } : {};
  if (out.columns !== undefined) body.columns = columnsBody(out.columns, tensor);
  if (out.parameters !== undefined)
    body.parameters = mapSections<Value, unknown>({ outputs: out.parameters }, (v) => valueJson(v, tensor)).outputs;
  body.id = out.id;
  body.mode = out.mode;
  return body;
}

/**
 * A tensor as JSON with its elements as base64 little-endian float64 bytes: for large results, where
 * formatting and parsing hundreds of thousands of decimal numbers would cost more than the computation.
 */
export function tensorBase64(t: { readonly shape: readonly number[]; readonly data: Float64Array }): unknown {
  const bytes = toLittleEndianBytes(t.data);
  return { shape: t.shape, dtype: "float64", base64: bufferView(bytes).toString("base64") };
}

/** A tensor as JSON: {shape, data} with the data as a plain array. */
export function tensorJson(t: { readonly shape: readonly number[]; readonly data: ArrayLike<number> }): unknown {
  return { shape: t.shape, data: Array.from(t.data) };
}

function isNumber(v: unknown): boolean {
  return typeof v === "number";
}

function valueJson(v: Value, tensor: TensorWriter): unknown {
  return typeof v === "number" ? v : tensor({ shape: v.shape, data: v.data instanceof Float64Array ? v.data : Float64Array.from(v.data) });
}

/** The sections of an answer besides the outputs, and what it says besides numbers. */
function sectionsBody(converted: Partial<Record<Section, unknown>>, row: ResultRow | ColumnsResult, body: Record<string, unknown>): void {
  for (const s of SECTION_NAMES) if (s !== "outputs" && converted[s] !== undefined) body[s] = converted[s];
  if (row.method) body.method = row.method;
  if (row.partials) body.partials = row.partials;
  if (row.colors !== undefined) body.colors = row.colors;
  if (row.csr) sparseSections(row.csr, body);
  if (row.sparsity) body.sparsity = sparsityJson(row.sparsity);
}

/**
 * Sparse jacobian and hessian blocks as {format: "csr", shape, indptr, indices, data}: the section
 * already holds each block's data as a tensor; its structure comes from the plan. With plain JSON
 * tensors the three arrays are plain; otherwise (base64, binary) indptr and indices are int32
 * base64 tensors and data is the tensor as written.
 */
function sparseSections(csr: SparseStructure, body: Record<string, unknown>): void {
  for (const s of ["jacobian", "hessian"] as const) {
    const section = body[s] as Record<string, Record<string, unknown>> | undefined;
    if (section === undefined) continue;
    for (const name of Object.keys(section)) {
      for (const key of Object.keys(section[name])) {
        const block = own(own(csr, name) ?? {}, key);
        if (block !== undefined) section[name][key] = csrJson(block, section[name][key]);
      }
    }
  }
}

function csrJson(block: PatternCsr, data: unknown): Record<string, unknown> {
  const t = data as { shape?: readonly number[]; data?: unknown };
  // A batch by columns keeps its data tensor whole ([points, nnz]); one point's is a plain array.
  const plainData = Array.isArray(t.data) && t.shape?.length === 1;
  return {
    format: "csr",
    shape: block.shape,
    indptr: plainData ? Array.from(block.indptr) : int32Base64(block.indptr),
    indices: plainData ? Array.from(block.indices) : int32Base64(block.indices),
    data: plainData ? (data as { data: unknown }).data : data,
  };
}

/** An int32 array as a base64 tensor of little-endian bytes. */
function int32Base64(a: Int32Array): unknown {
  const le = new Uint8Array(a.length * 4);
  const view = new DataView(le.buffer);
  a.forEach((v, i) => {
    view.setInt32(i * 4, v, true);
  });
  return { shape: [a.length], dtype: "int32", base64: Buffer.from(le).toString("base64") };
}

/** The sparsity mode's patterns, plain arrays. */
function sparsityJson(r: SparsityReport): unknown {
  const blocks = (m: Record<string, Record<string, PatternCsr>>) =>
    recordOf(
      Object.entries(m).map(([name, inner]) => [
        name,
        recordOf(
          Object.entries(inner).map(([key, b]) => [
            key,
            { format: "csr", shape: b.shape, indptr: Array.from(b.indptr), indices: Array.from(b.indices) },
          ]),
        ),
      ]),
    );
  return { jacobian: blocks(r.jacobian), ...(r.hessian ? { hessian: blocks(r.hessian) } : {}), colors: r.colors };
}

function rowBody(row: ResultRow, tensor: TensorWriter): Record<string, unknown> {
  // Numbers are written as they are: an answer of scalars (most of them) needs no converted copy.
  const converted = everySectionValue(row, isNumber) ? row : mapSections<Value, unknown>(row, (v) => valueJson(v, tensor));
  const outputs = converted.outputs as Record<string, unknown>;
  const names = Object.keys(outputs);
  const body: Record<string, unknown> = names.length === 1 ? { value: outputs[names[0]] } : { outputs };
  sectionsBody(converted, row, body);
  if (row.trace) body.trace = plain(row.trace);
  if (row.nonFinite) body.nonFinite = row.nonFinite;
  if (row.check) body.check = row.check;
  return body;
}

function columnsBody(columns: ColumnsResult, tensor: TensorWriter): Record<string, unknown> {
  const converted = mapSections<Column, unknown>(columns, (c) => tensor(c));
  const outputs = converted.outputs as Record<string, unknown>;
  const names = Object.keys(outputs);
  const body: Record<string, unknown> = names.length === 1 ? { value: outputs[names[0]] } : { outputs };
  sectionsBody(converted, columns, body);
  if (columns.nonFinite) body.nonFinite = columns.nonFinite;
  return body;
}

/** Typed arrays (tensor data in a trace) as plain arrays, everything else as it is. */
function plain(v: unknown): unknown {
  if (ArrayBuffer.isView(v)) return Array.from(v as unknown as ArrayLike<number>);
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === "object" && v !== null) return recordOf(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

/**
 * An answer's JSON: scalar answers written directly (json-scalar.ts), the rest through jsonBody; with
 * base64 tensors, as bytes (answerBase64Bytes).
 */
export function answerJson(out: DifferentiateOutput, tensor: TensorWriter = tensorJson): string | Buffer {
  const scalar = scalarAnswerJson(out);
  if (scalar !== undefined) return scalar;
  if (tensor === tensorBase64) return answerBase64Bytes(out);
  return serializeJson(jsonBody(out, tensor), out.allowNonFinite);
}

/**
 * Stands for a tensor in the JSON until its text is written in (the random part keeps a client's own
 * string, a name say, from ever being taken for it). The mark is a JSON string: cut out with its quotes.
 */
const TENSOR_MARK = `tensor ${randomUUID()} `;
const TENSOR_REFERENCE = new RegExp(`"${TENSOR_MARK}(\\d+)"`, "g");

/**
 * The JSON answer cut where each tensor's text goes: `place` writes a tensor's JSON with the mark it is
 * given where that text belongs, and pieces[i] is the JSON before tensors[i] (one piece more ends it).
 * Base64 answers (answerBase64Bytes) and large answers' numbers (jsonWithMarks) are written so, without
 * JSON.stringify formatting or scanning megabytes of tensor text.
 */
function jsonAroundTensors(
  out: DifferentiateOutput,
  place: (t: { readonly shape: readonly number[] }, mark: string) => unknown,
): { pieces: string[]; tensors: Float64Array[] } {
  const tensors: Float64Array[] = [];
  const json = serializeJson(
    jsonBody(out, (t) => {
      tensors.push(t.data);
      return place(t, `${TENSOR_MARK}${tensors.length - 1}`);
    }),
    out.allowNonFinite,
  );
  const pieces: string[] = [];
  let from = 0;
  for (const match of json.matchAll(TENSOR_REFERENCE)) {
    pieces.push(json.slice(from, match.index));
    from = (match.index ?? 0) + match[0].length;
  }
  pieces.push(json.slice(from));
  return { pieces, tensors };
}

/**
 * The JSON answer with base64 tensors, byte for byte what serializing it whole gives: each tensor's
 * text (ASCII, nothing to escape) is encoded straight into the answer's bytes, never scanned by
 * JSON.stringify nor encoded again as UTF-8.
 */
export function answerBase64Bytes(out: DifferentiateOutput): Buffer {
  const { pieces, tensors } = jsonAroundTensors(out, (t, mark) => ({ shape: t.shape, dtype: "float64", base64: mark }));
  const bytes = tensors.map((t) => toLittleEndianBytes(t));
  let length = 0;
  for (const piece of pieces) length += Buffer.byteLength(piece);
  for (const b of bytes) length += base64Length(b.byteLength) + 2;
  // A large answer in pooled memory (the caller gives it back once it is sent).
  const answer = pooledBytes(length);
  let at = 0;
  pieces.forEach((piece, i) => {
    at += answer.write(piece, at, "utf8");
    if (i < bytes.length) {
      at += answer.write('"', at, "latin1");
      at = writeBase64(answer, bytes[i], at);
      at += answer.write('"', at, "latin1");
    }
  });
  // Every byte written, or none of this memory (not zeroed) goes out.
  if (at !== length) throw new Error(`answerBase64Bytes: wrote ${at} of ${length} bytes`);
  return answer;
}

function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}

/**
 * Bytes of base64 text encoded per step: a multiple of 3, so that the pieces' texts join into the
 * whole's (padding comes only at the very end), and small enough that each piece's text is a
 * short-lived string rather than megabytes of old-generation memory.
 */
const BASE64_STEP = 3 * 16 * 1024;

/** Writes `source` as base64 text into `target` at `at`; where it ends. */
function writeBase64(target: Buffer, source: Uint8Array, at: number): number {
  const view = bufferView(source);
  for (let from = 0; from < view.byteLength; from += BASE64_STEP) {
    at += target.write(view.subarray(from, from + BASE64_STEP).toString("base64"), at, "latin1");
  }
  return at;
}

/** An answer whose tensors hold more numbers than this in all has them written into its text on the pool. */
export const LARGE_TEXT_NUMBERS = 65_536;

/**
 * The JSON answer cut where each tensor's numbers go, for a worker to write them in
 * (runtime/json-text.ts): pieces[i] is the text before tensors[i], and one piece more ends it. The
 * text put together is byte for byte answerJson's with plain JSON tensors. Undefined for an answer
 * of at most `minNumbers` numbers in tensors, which is written at once.
 */
export function jsonWithMarks(
  out: DifferentiateOutput,
  minNumbers = LARGE_TEXT_NUMBERS,
): { pieces: string[]; tensors: Float64Array[] } | undefined {
  if (tensorNumbers(out) <= minNumbers) return undefined;
  return jsonAroundTensors(out, (t, mark) => ({ shape: t.shape, data: mark }));
}

/** How many numbers an answer's tensors hold (a scalar is not a tensor: it is written with the JSON). */
function tensorNumbers(out: DifferentiateOutput): number {
  let n = 0;
  const count = (v: Value | Column) => {
    if (typeof v !== "number") n += v.data.length;
    return true;
  };
  if (out.result !== undefined) everySectionValue(out.result, count);
  for (const row of out.results ?? []) everySectionValue(row, count);
  if (out.columns !== undefined) everySectionValue(out.columns, count);
  for (const name in out.parameters ?? {}) count((out.parameters as Record<string, Value>)[name]);
  return n;
}

/**
 * Serialises an answer: plain JSON with −0 written `-0.0` (as gRPC keeps its sign; src/json.ts), and
 * non-finite numbers kept as strings when the request allowed them.
 */
export function serializeJson(body: unknown, allowNonFinite: boolean): string {
  return stringifyExact(body, allowNonFinite);
}
