import { isAscii } from "node:buffer";
import { randomUUID } from "node:crypto";
import type { PrebuiltGraph } from "./parse-function.js";
import { bufferView } from "./shared-memory.js";

/**
 * A large JSON request body, read on a worker: parsed with the protections REST applies to every
 * body (a `__proto__` or `constructor.prototype` key is refused), and its tensors' numbers moved out
 * of the JSON into one binary part, as if the client had sent the framed binary form. The event loop
 * then gets a small header and memory it reads in place: a 3 MB body no longer holds it for the
 * milliseconds that reading, parsing and decoding it take.
 */
export interface SplitBody {
  /** The body with each moved tensor written {shape, dtype, binary: {offset, length}}. */
  readonly header: unknown;
  /**
   * The moved tensors' little-endian bytes (shared: the answer crosses threads without a copy): the
   * start of the memory the caller offered, when they fit there (`inOffered`).
   */
  readonly binary?: Uint8Array;
  /** The binary part lies at the start of the memory offered: after crossing threads its buffer is another object. */
  readonly inOffered?: boolean;
  /** The body's function, when a large JSON graph, built on the worker too (parse-function.ts). */
  readonly prebuilt?: PrebuiltGraph;
}

/** The fields of a request that hold tensors by name (point and points: a batch of them). */
const NAMED_VALUES = ["point", "columns", "tangent", "cotangent", "start"] as const;

/**
 * A tensor is moved only when it is exactly what the service would accept (a valid shape, one data
 * form, the right length, finite numbers): anything else stays as the client wrote it, so the
 * service reports its problem in the same words as for a small body.
 */
interface Move {
  readonly target: Record<string, unknown>;
  readonly key: string;
  readonly shape: readonly number[];
  readonly dtype: "float64" | "float32";
  readonly byteLength: number;
  /** Writes the tensor's bytes into `into` (exactly byteLength long): false when they are not what was declared. */
  readonly write: (into: Buffer) => boolean;
}

const ALIGN = 8;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The body's text. Nearly every large body is ASCII (base64 and numbers), and ASCII read as latin1 is
 * the same text, made without UTF-8 decoding.
 */
export function jsonText(bytes: Uint8Array): string {
  const buffer = bufferView(bytes);
  return buffer.toString(isAscii(buffer) ? "latin1" : "utf8");
}

const BOM = Buffer.from("\ufeff");

/**
 * Parses the JSON text `body` (UTF-8 bytes); throws on malformed JSON or a poisoned key. The moved
 * tensors are written into `memory` when it is large enough (pooled, so its pages are already mapped),
 * else into new memory.
 */
export function splitJsonBody(body: Uint8Array, memory?: Uint8Array): SplitBody {
  const bytes = bufferView(body);
  const lifted = liftBase64(bytes.subarray(0, BOM.length).equals(BOM) ? bytes.subarray(BOM.length) : bytes);
  const parsed = JSON.parse(lifted.text) as unknown;
  refusePoisonedKeys(parsed);
  const split = splitParsed(parsed, lifted, memory);
  // Whatever was lifted and not moved goes back as the client wrote it.
  if (lifted.count > 0) restoreLifted(split.header, lifted);
  return split;
}

function splitParsed(body: unknown, lifted: Lifted, memory: Uint8Array | undefined): SplitBody {
  if (typeof body !== "object" || body === null || Array.isArray(body)) return { header: body };
  const moves: Move[] = [];
  const request = body as Record<string, unknown>;
  for (const field of NAMED_VALUES) collect(request[field], moves, lifted);
  if (Array.isArray(request.points)) for (const p of request.points) collect(p, moves, lifted);
  // A body that already refers to a binary part is not ours to extend: leave it for the service to refuse.
  if (moves.length === 0 || mentionsBinary(request)) return { header: body };
  const binary = writeBinary(moves, memory);
  return { header: body, binary, inOffered: binary !== undefined && binary.buffer === memory?.buffer };
}

/**
 * The body's text with its long base64 strings lifted out, each replaced by a short stand-in.
 *
 * JSON.parse copies every string it reads, character by character: 3 ms of the 3.2 MB W3 step body,
 * nearly all of it the tensors' base64, whose bytes are then decoded from the copy. Lifted, a string
 * stays where it lies in the body's bytes and is decoded from there straight into the binary part, and
 * the parser reads a header of a few hundred bytes. The body's whole text is never made either: a
 * string of 3 MB is 3 MB of memory fresh from the system, whose first touch is a page fault per 4 kB
 * (9 ms on the reference machine, three times the parse).
 *
 * Only the value of a "base64" key is lifted, and only a string with no escapes (no backslash in it):
 * its value is then its text exactly. The scan finds strings by their quotes, skipping escaped ones, so
 * it never mistakes text inside a string for a key; it reads bytes, which is the same as reading the
 * text, since in UTF-8 a quote or a backslash byte is never part of another character. On malformed text
 * it may cut elsewhere, but a cut replaces one run of characters free of quotes and backslashes, between
 * two quotes, by another such run that starts with a hexadecimal digit: whatever a JSON reader makes of
 * the one, it makes of the other, so the parse still fails where the text is malformed. The stand-ins
 * carry a random tag made per body, which a client cannot write into its own strings.
 */
interface Lifted {
  readonly text: string;
  readonly count: number;
  /** Where the lifted string behind a stand-in lies in the body's bytes; undefined for any other string. */
  span(value: string): LiftedSpan | undefined;
}

interface LiftedSpan {
  readonly bytes: Buffer;
  readonly start: number;
  readonly end: number;
}

/** A lifted string's text, as the whole body decoded would have it. */
function spanText({ bytes, start, end }: LiftedSpan): string {
  return bytes.toString("utf8", start, end);
}

/** Shorter base64 strings cost the parser little: left in place. */
const LIFT_MIN = 4096;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const BASE64_KEY = Buffer.from("base64");

function liftBase64(bytes: Buffer): Lifted {
  const none = (): Lifted => ({ text: jsonText(bytes), count: 0, span: () => undefined });
  if (bytes.indexOf('"base64"') < 0) return none();
  const tag = `${randomUUID()}:`;
  const spans: LiftedSpan[] = [];
  const pieces: string[] = [];
  let copied = 0;
  let at = 0;
  let nextBackslash = bytes.indexOf(BACKSLASH);
  /** Just past the closing quote of the last string when it was exactly "base64"; else -1. */
  let afterKey = -1;
  for (;;) {
    const open = bytes.indexOf(QUOTE, at);
    if (open < 0) break;
    let close = bytes.indexOf(QUOTE, open + 1);
    let escaped = false;
    // A backslash outside any string (malformed text) is no escape of this one.
    if (nextBackslash >= 0 && nextBackslash < open) nextBackslash = bytes.indexOf(BACKSLASH, open);
    // Skip escaped quotes: a backslash before the quote starts an escape of two characters.
    while (close >= 0 && nextBackslash >= 0 && nextBackslash < close) {
      escaped = true;
      const after = nextBackslash + 2;
      nextBackslash = bytes.indexOf(BACKSLASH, after);
      if (after > close) close = bytes.indexOf(QUOTE, after);
    }
    if (close < 0) break;
    if (nextBackslash >= 0 && nextBackslash < close + 1) nextBackslash = bytes.indexOf(BACKSLASH, close + 1);
    at = close + 1;
    const length = close - open - 1;
    if (afterKey >= 0 && !escaped && length >= LIFT_MIN && onlyColonBetween(bytes, afterKey, open)) {
      pieces.push(bytes.toString("utf8", copied, open + 1), tag, String(spans.length));
      spans.push({ bytes, start: open + 1, end: close });
      copied = close;
      afterKey = -1;
      continue;
    }
    afterKey = !escaped && length === BASE64_KEY.length && bytes.compare(BASE64_KEY, 0, length, open + 1, close) === 0 ? close + 1 : -1;
  }
  if (spans.length === 0) return none();
  // Cut at quotes only, the pieces decode to what the whole text would: UTF-8 resynchronises at every ASCII byte.
  pieces.push(bytes.toString("utf8", copied));
  return {
    text: pieces.join(""),
    count: spans.length,
    span: (value) => (value.startsWith(tag) ? spans[Number(value.slice(tag.length))] : undefined),
  };
}

/** Whether bytes[from, to) are JSON whitespace around one colon. */
function onlyColonBetween(bytes: Buffer, from: number, to: number): boolean {
  let colons = 0;
  for (let i = from; i < to; i++) {
    const c = bytes[i];
    if (c === 0x3a) colons++;
    else if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return false;
  }
  return colons === 1;
}

/**
 * Throws, as JSON.parse would have, when a lifted string that decoded to exactly its declared bytes was
 * not a well-formed JSON string (it held a raw control character). The decoder skips such a character, and the declared length was checked against the
 * string's length (less up to two trailing "="s), L: the decoder makes ⌊3v/4⌋ bytes of the v characters
 * it reads, and ⌊3(L − 1)/4⌋ < ⌊3L/4⌋ unless L ≡ 1 (mod 4), so for any other length a skipped character
 * would have left the bytes short. L ≡ 1 is no length a base64 encoder writes; such a string is read
 * character by character.
 */
function refuseSkippedControlCharacter(source: Base64Source): void {
  if (unpaddedLength(source) % 4 === 1) refuseControlCharacter(source.text());
}

const EQUALS = 0x3d;

/** Throws, in JSON.parse's words, when `s` has a raw control character, which JSON does not allow in a string. */
function refuseControlCharacter(s: string): void {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 0x20) throw new SyntaxError("Bad control character in string literal");
}

/**
 * Puts back every stand-in still in `value` (a tensor not moved: malformed, or somewhere no tensor is
 * read). A string with a raw control character is malformed JSON, which JSON.parse would have refused:
 * refused here too, so that the event loop parses it again and says where.
 */
function restoreLifted(value: unknown, lifted: Lifted): void {
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const node = pending.pop();
    if (typeof node !== "object" || node === null) continue;
    if (Array.isArray(node)) {
      for (const item of node) pending.push(item);
      continue;
    }
    const record = node as Record<string, unknown>;
    if (Object.hasOwn(record, "base64") && typeof record.base64 === "string") {
      const span = lifted.span(record.base64);
      if (span !== undefined) {
        const original = spanText(span);
        refuseControlCharacter(original);
        record.base64 = original;
      }
    }
    for (const key in record) pending.push(record[key]);
  }
}

/**
 * Throws when `value` holds what REST refuses in every body (fastify's secure-json-parse, protoAction
 * and constructorAction "error"): an own `__proto__` key, or a `constructor` object with an own
 * `prototype`. The event loop then parses the body with that library, which refuses it in its words.
 * The library screens the text with regular expressions first, 1.6 ms for a 3 MB body of base64 and
 * 17 ms for 8 MB of numbers; this walks the parsed values, well under a millisecond for both. A body of
 * many small objects costs it more than the screen (3 ms against 0.5 for 50,000 points), on a worker.
 */
export function refusePoisonedKeys(value: unknown): void {
  if (typeof value !== "object" || value === null) return;
  const pending: object[] = [value];
  while (pending.length > 0) {
    const node = pending.pop() as object;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const item: unknown = node[i];
        if (typeof item === "object" && item !== null) pending.push(item);
      }
      continue;
    }
    const record = node as Record<string, unknown>;
    const ctor = Object.hasOwn(record, "constructor") ? record.constructor : undefined;
    if (Object.hasOwn(record, "__proto__") || (typeof ctor === "object" && ctor !== null && Object.hasOwn(ctor, "prototype"))) {
      throw new SyntaxError("Object contains forbidden prototype property");
    }
    for (const key in record) {
      const item = record[key];
      if (typeof item === "object" && item !== null) pending.push(item);
    }
  }
}

function collect(values: unknown, moves: Move[], lifted: Lifted): void {
  if (typeof values !== "object" || values === null || Array.isArray(values)) return;
  const named = values as Record<string, unknown>;
  for (const key of Object.keys(named)) {
    const move = movable(named, key, lifted);
    if (move !== undefined) moves.push(move);
  }
}

function movable(target: Record<string, unknown>, key: string, lifted: Lifted): Move | undefined {
  const t = target[key];
  if (typeof t !== "object" || t === null || Array.isArray(t)) return undefined;
  const { shape, dtype, data, base64, binary, bytes } = t as Record<string, unknown>;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) return undefined;
  if (binary !== undefined || bytes !== undefined || (data === undefined) === (base64 === undefined)) return undefined;
  const size = shape.reduce((a: number, d: number) => a * d, 1);
  if (data !== undefined) {
    if (!LITTLE_ENDIAN) return undefined;
    // Numbers of `data` are read as float64 whatever `dtype` says; non-finite ones need the request's leave.
    if (!Array.isArray(data) || data.length !== size || !data.every((v) => typeof v === "number" && Number.isFinite(v))) return undefined;
    const write = (into: Buffer) => {
      new Float64Array(into.buffer, into.byteOffset, size).set(data as number[]);
      return true;
    };
    return { target, key, shape, dtype: "float64", byteLength: size * 8, write };
  }
  const type = dtype ?? "float64";
  if ((type !== "float64" && type !== "float32") || typeof base64 !== "string") return undefined;
  const byteLength = size * (type === "float64" ? 8 : 4);
  // A lifted string is decoded from the body's bytes when they are its text (ASCII); any other as a string.
  const span = lifted.span(base64);
  const source =
    span !== undefined && isAscii(span.bytes.subarray(span.start, span.end))
      ? asciiSource(span)
      : stringSource(span === undefined ? base64 : spanText(span));
  // Node's decoder skips characters that are not base64, so a string decodes to at most the length
  // its own length gives; a string whose bound is the declared length, and which then fills it, decodes to exactly it.
  if (base64Bound(source) !== byteLength) return undefined;
  const write = (into: Buffer) => {
    if (source.decodeInto(into) !== byteLength) return false;
    if (span !== undefined) refuseSkippedControlCharacter(source);
    return true;
  };
  return { target, key, shape, dtype: type, byteLength, write };
}

/** A base64 string to decode: one the parser made, or a lifted one read where it lies in the body. */
interface Base64Source {
  readonly length: number;
  charCodeAt(index: number): number;
  /** Decodes as Buffer#write(text, "base64") does into `into`; the bytes written. */
  decodeInto(into: Buffer): number;
  text(): string;
}

function stringSource(text: string): Base64Source {
  return { length: text.length, charCodeAt: (i) => text.charCodeAt(i), decodeInto: (into) => into.write(text, "base64"), text: () => text };
}

/**
 * Base64 characters decoded per string made from a lifted one: a multiple of 4, and small enough that
 * neither the string nor the copy Node's decoder takes of it is memory fresh from the system.
 */
export const DECODE_PIECE = 64 * 1024;

/** A lifted string of ASCII bytes, decoded piece by piece. */
function asciiSource(span: LiftedSpan): Base64Source {
  const { bytes, start, end } = span;
  const decodeInto = (into: Buffer) => {
    let written = 0;
    for (let at = start; at < end; at += DECODE_PIECE) {
      const stop = Math.min(end, at + DECODE_PIECE);
      const n = into.write(bytes.toString("latin1", at, stop), written, "base64");
      written += n;
      // A piece short of its three quarters held a character the decoder skips, or a "=" before the end,
      // and the pieces after it would not decode as the whole string does: decode the whole string.
      if (stop < end && n !== (DECODE_PIECE / 4) * 3) return into.write(spanText(span), "base64");
    }
    return written;
  };
  return { length: end - start, charCodeAt: (i) => bytes[start + i], decodeInto, text: () => spanText(span) };
}

/** The length less up to two trailing "="s, as Buffer.byteLength(text, "base64") counts it. */
function unpaddedLength(source: Base64Source): number {
  let length = source.length;
  if (length > 0 && source.charCodeAt(length - 1) === EQUALS) length--;
  if (length > 1 && source.charCodeAt(length - 1) === EQUALS) length--;
  return length;
}

/** What Buffer.byteLength(text, "base64") gives. */
function base64Bound(source: Base64Source): number {
  return (unpaddedLength(source) * 3) >>> 2;
}

function mentionsBinary(request: Record<string, unknown>): boolean {
  const all = [...NAMED_VALUES.map((f) => request[f]), ...(Array.isArray(request.points) ? request.points : [])];
  return all.some(
    (values) =>
      typeof values === "object" &&
      values !== null &&
      Object.values(values as Record<string, unknown>).some((t) => typeof t === "object" && t !== null && "binary" in t),
  );
}

/**
 * Lays the moved tensors out end to end, each at an 8-byte boundary so it is read in place, decoded
 * straight into their place. A tensor whose bytes are not what it declared stays as the client wrote it
 * (its place is left unused), so that the service refuses it in the words a small body gets.
 */
function writeBinary(moves: readonly Move[], memory: Uint8Array | undefined): Uint8Array | undefined {
  let length = 0;
  const offsets = moves.map((m) => {
    const at = length;
    length += Math.ceil(m.byteLength / ALIGN) * ALIGN;
    return at;
  });
  const fits =
    memory !== undefined && memory.buffer instanceof SharedArrayBuffer && memory.byteOffset % ALIGN === 0 && memory.byteLength >= length;
  const part = fits ? memory.subarray(0, length) : new Uint8Array(new SharedArrayBuffer(length));
  let moved = 0;
  moves.forEach((m, i) => {
    if (!m.write(Buffer.from(part.buffer, part.byteOffset + offsets[i], m.byteLength))) return;
    m.target[m.key] = { shape: m.shape, dtype: m.dtype, binary: { offset: offsets[i], length: m.byteLength } };
    moved++;
  });
  return moved > 0 ? part : undefined;
}
