import {
  AdjointClientError,
  type FunctionInfo,
  type Request,
  type Result,
  type Tensor,
  type TensorInput,
  toTensor,
  type Values,
} from "./types.js";

/** REST over fetch (Node 18+ and browsers): tensors as base64 little-endian float64 both ways. */

const NON_FINITE: Record<string, number> = { NaN: Number.NaN, Infinity: Number.POSITIVE_INFINITY, "-Infinity": Number.NEGATIVE_INFINITY };
const RESULT_META = new Set(["id", "mode", "value", "outputs"]);

function toBase64(bytes: Uint8Array): string {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Typed arrays are the platform's byte order, little-endian wherever Node and browsers run. */
function jsonTensor(v: TensorInput): unknown {
  const t = toTensor(v);
  if (t.scalar) {
    const x = t.data[0];
    return Number.isFinite(x) ? x : Number.isNaN(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity";
  }
  return { shape: t.shape, dtype: "float64", base64: toBase64(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)) };
}

function jsonNamed(values: Record<string, TensorInput> | undefined): Record<string, unknown> | undefined {
  return values && Object.fromEntries(Object.entries(values).map(([k, v]) => [k, jsonTensor(v)]));
}

/** Decodes an answer: tensors to {shape, data: Float64Array}, non-finite strings to numbers. */
export function decode(v: unknown): unknown {
  if (typeof v === "string") return v in NON_FINITE ? NON_FINITE[v] : v;
  if (Array.isArray(v)) return v.map(decode);
  if (v === null || typeof v !== "object") return v;
  const o = v as Record<string, unknown>;
  if (Array.isArray(o.shape) && (typeof o.base64 === "string" || Array.isArray(o.data)) && o.format === undefined) {
    const shape = o.shape as number[];
    let data: Float64Array;
    if (typeof o.base64 === "string") {
      const bytes = fromBase64(o.base64);
      data = o.dtype === "float32" ? Float64Array.from(new Float32Array(bytes.buffer)) : new Float64Array(bytes.buffer);
    } else data = Float64Array.from((o.data as unknown[]).map((x) => (typeof x === "string" ? NON_FINITE[x] : (x as number))));
    return shape.length === 0 ? data[0] : ({ shape, data } satisfies Tensor);
  }
  return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, decode(x)]));
}

export function resultOf(body: Record<string, unknown>, row: Record<string, unknown>): Result {
  const fields = Object.fromEntries(Object.entries(row).filter(([k]) => !RESULT_META.has(k)));
  return {
    id: String(body.id ?? ""),
    mode: String(body.mode ?? ""),
    value: row.value as number | Tensor | undefined,
    outputs: (row.outputs as Values) ?? {},
    gradient: row.gradient as Values | undefined,
    fields,
  };
}

export class HttpTransport {
  private readonly base: string;
  constructor(url: string) {
    this.base = url.replace(/\/+$/, "");
  }

  close(): void {}

  private async json(method: string, path: string, body: unknown, signal: AbortSignal): Promise<Record<string, unknown>> {
    let response: Response;
    try {
      const init: RequestInit = { method, signal, headers: { accept: "application/json" } };
      if (body !== undefined) init.body = JSON.stringify(body);
      if (body !== undefined) init.headers = { accept: "application/json", "content-type": "application/json" };
      response = await fetch(this.base + path, init);
    } catch (e) {
      if ((e as Error).name === "TimeoutError" || (e as Error).name === "AbortError") throw e;
      throw new AdjointClientError("unavailable", `${this.base}: ${(e as Error).message}`);
    }
    const text = await response.text();
    if (response.ok) return JSON.parse(text) as Record<string, unknown>;
    let problem: Record<string, unknown> = {};
    try {
      problem = JSON.parse(text) as Record<string, unknown>;
    } catch {
      problem = { detail: text };
    }
    const after = response.headers.get("retry-after");
    const kind = (problem.kind as string) ?? (response.status === 503 ? "unavailable" : "internal");
    throw new AdjointClientError(
      kind,
      String(problem.detail ?? ""),
      problem.field as string | undefined,
      response.status,
      after === null ? undefined : Number(after) * 1000,
    );
  }

  async differentiate(r: Request, signal: AbortSignal): Promise<Result> {
    const body = {
      ...r,
      point: jsonNamed(r.point),
      columns: jsonNamed(r.columns),
      tangent: jsonNamed(r.tangent),
      cotangent: jsonNamed(r.cotangent),
      encoding: "base64",
    };
    const answer = decode(await this.json("POST", "/v1/differentiate", body, signal)) as Record<string, unknown>;
    return resultOf(answer, (answer.columns as Record<string, unknown>) ?? answer);
  }

  async register(fn: Record<string, unknown>, signal: AbortSignal): Promise<FunctionInfo> {
    return (await this.json("POST", "/v1/functions", { function: fn }, signal)) as unknown as FunctionInfo;
  }

  ops(signal: AbortSignal): Promise<unknown> {
    return this.json("GET", "/v1/ops", undefined, signal);
  }
}
