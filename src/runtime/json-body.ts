import secureJson from "secure-json-parse";

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
  /** The moved tensors' little-endian bytes (shared: the answer crosses threads without a copy). */
  readonly binary?: Uint8Array;
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
  readonly bytes: Uint8Array | Float64Array;
}

const ALIGN = 8;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Parses `text`; throws as fastify's parser does on malformed JSON or a poisoned key. */
export function splitJsonBody(text: string): SplitBody {
  const body = secureJson.parse(text, undefined, { protoAction: "error", constructorAction: "error" }) as unknown;
  if (typeof body !== "object" || body === null || Array.isArray(body)) return { header: body };
  const moves: Move[] = [];
  const request = body as Record<string, unknown>;
  for (const field of NAMED_VALUES) collect(request[field], moves);
  if (Array.isArray(request.points)) for (const p of request.points) collect(p, moves);
  // A body that already refers to a binary part is not ours to extend: leave it for the service to refuse.
  if (moves.length === 0 || mentionsBinary(request)) return { header: body };
  return { header: body, binary: writeBinary(moves) };
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
    return { target, key, shape, dtype: "float64", bytes: Float64Array.from(data as number[]) };
  }
  const type = dtype ?? "float64";
  if ((type !== "float64" && type !== "float32") || typeof base64 !== "string") return undefined;
  const decoded = Buffer.from(base64, "base64");
  if (decoded.byteLength !== size * (type === "float64" ? 8 : 4)) return undefined;
  return { target, key, shape, dtype: type, bytes: decoded };
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

/** Lays the moved tensors out end to end, each at an 8-byte boundary so it is read in place. */
function writeBinary(moves: readonly Move[]): Uint8Array {
  let length = 0;
  const offsets = moves.map((m) => {
    const at = length;
    length += Math.ceil(m.bytes.byteLength / ALIGN) * ALIGN;
    return at;
  });
  const part = new Uint8Array(new SharedArrayBuffer(length));
  moves.forEach((m, i) => {
    part.set(new Uint8Array(m.bytes.buffer, m.bytes.byteOffset, m.bytes.byteLength), offsets[i]);
    m.target[m.key] = { shape: m.shape, dtype: m.dtype, binary: { offset: offsets[i], length: m.bytes.byteLength } };
  });
  return part;
}
