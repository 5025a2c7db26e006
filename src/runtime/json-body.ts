import { isAscii } from "node:buffer";

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
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return buffer.toString(isAscii(buffer) ? "latin1" : "utf8");
}

/**
 * Parses `text`; throws on malformed JSON or a poisoned key. The moved tensors are written into
 * `memory` when it is large enough (pooled, so its pages are already mapped), else into new memory.
 */
export function splitJsonBody(text: string, memory?: Uint8Array): SplitBody {
  const body = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as unknown;
  refusePoisonedKeys(body);
  if (typeof body !== "object" || body === null || Array.isArray(body)) return { header: body };
  const moves: Move[] = [];
  const request = body as Record<string, unknown>;
  for (const field of NAMED_VALUES) collect(request[field], moves);
  if (Array.isArray(request.points)) for (const p of request.points) collect(p, moves);
  // A body that already refers to a binary part is not ours to extend: leave it for the service to refuse.
  if (moves.length === 0 || mentionsBinary(request)) return { header: body };
  const binary = writeBinary(moves, memory);
  return { header: body, binary, inOffered: binary !== undefined && binary.buffer === memory?.buffer };
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

function collect(values: unknown, moves: Move[]): void {
  if (typeof values !== "object" || values === null || Array.isArray(values)) return;
  const named = values as Record<string, unknown>;
  for (const key of Object.keys(named)) {
    const move = movable(named, key);
    if (move !== undefined) moves.push(move);
  }
}

function movable(target: Record<string, unknown>, key: string): Move | undefined {
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
  // Node's decoder skips characters that are not base64, so a string decodes to at most the length
  // its own length gives; a string whose bound is the declared length, and which then fills it, decodes to exactly it.
  if (Buffer.byteLength(base64, "base64") !== byteLength) return undefined;
  return { target, key, shape, dtype: type, byteLength, write: (into) => into.write(base64, "base64") === byteLength };
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
