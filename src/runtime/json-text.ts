import { numberJson } from "../json.js";
import { bufferView } from "./shared-memory.js";

/**
 * The text of a large JSON answer, written on the pool: formatting hundreds of thousands of numbers
 * (a training step's gradient sent as JSON, a large Jacobian) held the event loop 35–50 ms per answer.
 * The main thread serialises the answer with a mark in place of each tensor's data (json-view.ts,
 * jsonWithMarks); a worker writes the pieces between the marks and the numbers in their place, as
 * JSON arrays, into shared memory.
 */
export interface JsonTextTask {
  readonly kind: "json-text";
  /** The answer's JSON around its tensors: the text before tensor i is pieces[i]; one piece more than tensors. */
  readonly pieces: readonly string[];
  readonly tensors: readonly Float64Array[];
  /** Non-finite numbers are written as strings; else as null, as JSON.stringify writes them. */
  readonly allowNonFinite: boolean;
  /**
   * Shared memory the caller lends for the text, jsonTextBound(task) bytes at least, taken from its
   * pool. Memory taken fresh costs a page fault per 4 kB on first touch: a training step's gradient
   * as text (4.6 MB, written into a buffer doubled twice) took 2,400 faults and 64 ms here, against
   * none and 54 ms in lent memory. Without it, or where it is too short, the text goes into fresh memory.
   */
  readonly into?: Uint8Array;
}

/** The longest text of a finite number as the answer writes it: `-0.0000012345678901234567`. */
const NUMBER_TEXT_MAX = 25;

/** Bytes that hold the text of any answer with these pieces and tensors: each number at its longest, a comma after it, brackets around each tensor. */
export function jsonTextBound(task: Pick<JsonTextTask, "pieces" | "tensors">): number {
  let bytes = 0;
  for (const piece of task.pieces) bytes += Buffer.byteLength(piece);
  for (const t of task.tensors) bytes += (NUMBER_TEXT_MAX + 1) * t.length + 2;
  return bytes;
}

/** Numbers formatted per step: each step's text is written out at once, a short-lived string. */
const STEP = 4096;

/** The answer's text (UTF-8), in shared memory: it crosses back to the main thread without a copy. */
export function writeJsonText(task: JsonTextTask): Uint8Array {
  // Fresh memory of the bound costs only the pages the text touches.
  const out = new TextBuffer(task.into ?? new SharedArrayBuffer(jsonTextBound(task)));
  task.pieces.forEach((piece, i) => {
    out.write(piece, "utf8");
    if (i < task.tensors.length) writeNumbers(out, task.tensors[i], task.allowNonFinite);
  });
  return out.text();
}

/** `[a,b,…]`, each number as the answer's JSON writes it (src/json.ts stringifyExact). */
function writeNumbers(out: TextBuffer, data: Float64Array, allowNonFinite: boolean): void {
  out.write("[", "latin1");
  for (let from = 0; from < data.length; from += STEP) {
    const step = data.subarray(from, Math.min(data.length, from + STEP));
    if (from > 0) out.write(",", "latin1");
    out.write(plainNumbers(step) ? JSON.stringify(Array.from(step)).slice(1, -1) : numbersText(step, allowNonFinite), "latin1");
  }
  out.write("]", "latin1");
}

/**
 * No −0 and nothing non-finite: JSON.stringify (V8's own fast path) writes the numbers as the answer
 * does. (The typed array's own join writes the same text, but took 75 ms against 47 for a training
 * step's 203,530 distinct numbers; it is faster only where V8's number-string cache holds them.)
 */
function plainNumbers(data: Float64Array): boolean {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v === 0 ? 1 / v < 0 : !Number.isFinite(v)) return false;
  }
  return true;
}

function numbersText(data: Float64Array, allowNonFinite: boolean): string {
  return Array.from(data, (v) => numberText(v, allowNonFinite)).join(",");
}

/** As the answer's JSON writes a number: NaN and ±Infinity as strings where the answer allows them. */
function numberText(v: number, allowNonFinite: boolean): string {
  if (Number.isFinite(v)) return numberJson(v);
  return allowNonFinite ? `"${v}"` : "null";
}

/** Shared memory written front to back, grown by doubling when a write would not fit. */
class TextBuffer {
  private bytes: Buffer;
  private length = 0;

  /** `first`: the shared memory written until the text outgrows it. */
  constructor(first: Uint8Array | SharedArrayBuffer) {
    this.bytes = first instanceof SharedArrayBuffer ? Buffer.from(first) : bufferView(first);
  }

  write(text: string, encoding: "utf8" | "latin1"): void {
    const needed = encoding === "latin1" ? text.length : Buffer.byteLength(text);
    if (this.length + needed > this.bytes.byteLength) {
      const grown = Buffer.from(new SharedArrayBuffer(Math.max(2 * this.bytes.byteLength, this.length + needed)));
      this.bytes.copy(grown, 0, 0, this.length);
      this.bytes = grown;
    }
    this.length += this.bytes.write(text, this.length, encoding);
  }

  text(): Uint8Array {
    return new Uint8Array(this.bytes.buffer, this.bytes.byteOffset, this.length);
  }
}
