import type { Value } from "../engine/values.js";
import { recordOf } from "../names.js";
import { serializeJson, type TensorWriter, tensorBase64, tensorJson } from "./json-view.js";
import type { MinimizeOutput, MinimizeProgress } from "./minimize-input.js";
import type { ValueMap } from "./types.js";

/**
 * The JSON of a minimisation (REST answer and SSE events). The point is written as differentiate
 * writes tensors (json-view.ts): numbers for scalars, {shape, data} or base64 by the request's encoding.
 * Values may be non-finite (a run that stopped with status non_finite), so they are written as the
 * strings "NaN", "Infinity", "-Infinity" rather than dropped by JSON.stringify.
 */
export function tensorWriter(encoding: string | undefined): TensorWriter {
  return encoding === "base64" ? tensorBase64 : tensorJson;
}

function pointJson(point: ValueMap, tensor: TensorWriter): Record<string, unknown> {
  return recordOf(
    Object.entries(point).map(([name, v]: [string, Value]) => [
      name,
      typeof v === "number" ? v : tensor({ shape: v.shape, data: v.data instanceof Float64Array ? v.data : Float64Array.from(v.data) }),
    ]),
  );
}

export function minimizeBody(out: MinimizeOutput, tensor: TensorWriter): Record<string, unknown> {
  const body: Record<string, unknown> = {
    point: pointJson(out.point, tensor),
    value: out.value,
    gradientNorm: out.gradientNorm,
    iterations: out.iterations,
    evaluations: out.evaluations,
  };
  if (out.method === "newton-cg") body.hvps = out.hvps;
  Object.assign(body, { status: out.status, message: out.message, id: out.id, method: out.method, history: out.history });
  return body;
}

export function minimizeJson(out: MinimizeOutput, tensor: TensorWriter): string {
  return serializeJson(minimizeBody(out, tensor), true);
}

/** One progress record: iteration, value, gradientNorm, evaluations, elapsedMs (and the point where asked). */
export function progressJson(p: MinimizeProgress, tensor: TensorWriter): string {
  const { point, ...rest } = p;
  return serializeJson(point ? { ...rest, point: pointJson(point, tensor) } : rest, true);
}
