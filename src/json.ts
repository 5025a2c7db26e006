/**
 * JSON with the non-finite numbers kept: NaN and ±Infinity become the strings "NaN", "Infinity" and
 * "-Infinity" (JSON has no literal for them, and JSON.stringify would silently write null).
 */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, (_key, v) => (typeof v === "number" && !Number.isFinite(v) ? String(v) : v), indent);
}
