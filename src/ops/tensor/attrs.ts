import { OpRuleError } from "../../errors.js";
import { normalizeAxes } from "../../tensor/shape.js";
import type { Attrs } from "../types.js";

/** Rejects attributes the op does not know, naming them and the ones it takes. */
export function onlyAttrs(attrs: Attrs | undefined, known: readonly string[]): Record<string, unknown> {
  const a = { ...(attrs ?? {}) };
  for (const key of Object.keys(a)) {
    if (!known.includes(key))
      throw new OpRuleError(`unknown attribute ${key}; this op takes ${known.join(", ") || "none"}`, `attrs.${key}`);
  }
  return a;
}

export function intAttr(value: unknown, name: string, min = Number.NEGATIVE_INFINITY): number {
  if (!Number.isInteger(value) || (value as number) < min) {
    throw new OpRuleError(
      `${name} must be an integer${min > Number.NEGATIVE_INFINITY ? ` ≥ ${min}` : ""}, got ${JSON.stringify(value)}`,
      `attrs.${name}`,
    );
  }
  return value as number;
}

export function intListAttr(value: unknown, name: string, length?: number, min = Number.NEGATIVE_INFINITY): number[] {
  if (!Array.isArray(value)) throw new OpRuleError(`${name} must be a list of integers, got ${JSON.stringify(value)}`, `attrs.${name}`);
  if (length !== undefined && value.length !== length) {
    throw new OpRuleError(`${name} must have ${length} entries, got ${value.length}`, `attrs.${name}`);
  }
  return value.map((v, i) => intAttr(v, `${name}[${i}]`, min));
}

export function boolAttr(value: unknown, name: string, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") throw new OpRuleError(`${name} must be true or false`, `attrs.${name}`);
  return value;
}

/** A 2-vector attribute that may be given as one integer for both (kernel, stride, dilation…). */
export function pairAttr(value: unknown, name: string, fallback: number, min: number): [number, number] {
  if (value === undefined) return [fallback, fallback];
  if (typeof value === "number") {
    const v = intAttr(value, name, min);
    return [v, v];
  }
  const list = intListAttr(value, name, 2, min);
  return [list[0], list[1]];
}

/**
 * Reduction axes: `axes` (a list) or `axis` (one integer or a list); default all. Canonical form:
 * sorted non-negative axes, and keepdims.
 */
export function reduceAttrs(attrs: Attrs | undefined, rank: number): { axes: number[]; keepdims: boolean } {
  const a = onlyAttrs(attrs, ["axes", "axis", "keepdims"]);
  if (a.axes !== undefined && a.axis !== undefined) throw new OpRuleError("give axes or axis, not both", "attrs.axis");
  const raw = a.axes ?? a.axis;
  const list = raw === undefined ? Array.from({ length: rank }, (_, i) => i) : typeof raw === "number" ? [raw] : raw;
  const axes = normalizeAxes(
    intListAttr(list, a.axes !== undefined ? "axes" : "axis"),
    rank,
    a.axes !== undefined ? "attrs.axes" : "attrs.axis",
  );
  return { axes, keepdims: boolAttr(a.keepdims, "keepdims", false) };
}

/** One axis, possibly negative, resolved against a rank. */
export function axisAttr(value: unknown, rank: number, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  return normalizeAxes([intAttr(value, "axis")], rank, "attrs.axis")[0];
}
