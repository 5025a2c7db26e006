import { randomUUID } from "node:crypto";

/**
 * −0 is written `-0.0`: JSON.stringify writes it as 0, losing the sign that gRPC's doubles keep, and
 * `-0.0` (unlike `-0`, which Python's and Rust's parsers read as the integer 0) parses back to −0 in
 * JavaScript, Python, Go and Rust alike. JSON.stringify cannot write it, so the replacer puts this
 * placeholder in its place, and the text is patched after. The random part keeps a client's own
 * string (a node id, a name) from ever being taken for the placeholder.
 */
const NEGATIVE_ZERO = `-0.0 ${randomUUID()}`;
const PLACEHOLDER = JSON.stringify(NEGATIVE_ZERO);

/** Whether −0 occurs anywhere in `value` (plain JSON data: objects, arrays, numbers). */
export function hasNegativeZero(value: unknown): boolean {
  if (typeof value === "number") return value === 0 && 1 / value < 0;
  if (typeof value !== "object" || value === null) return false;
  if (Array.isArray(value)) {
    // Numbers inline: a tensor's `data` can hold millions, and a call per element doubled the scan's cost.
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (typeof v === "number") {
        if (v === 0 && 1 / v < 0) return true;
      } else if (hasNegativeZero(v)) return true;
    }
    return false;
  }
  for (const k in value) if (Object.hasOwn(value, k) && hasNegativeZero((value as Record<string, unknown>)[k])) return true;
  return false;
}

/** A number JSON.stringify does not write back: −0 (written 0), NaN or ±Infinity (written null). */
export function unwritableNumber(v: number): boolean {
  return v === 0 ? 1 / v < 0 : !Number.isFinite(v);
}

/** Whether `value` (plain JSON data) holds a number JSON.stringify does not write back. */
export function hasUnwritableNumber(value: unknown): boolean {
  if (typeof value === "number") return unwritableNumber(value);
  if (typeof value !== "object" || value === null) return false;
  if (Array.isArray(value)) return value.some(hasUnwritableNumber);
  for (const k in value) if (Object.hasOwn(value, k) && hasUnwritableNumber((value as Record<string, unknown>)[k])) return true;
  return false;
}

/**
 * A string as JSON text, as JSON.stringify writes it. Names and ids rarely need escaping, and
 * JSON.stringify of a short string cost 0.2 µs, a fifth of the worked example's answer: a string
 * without quotes, backslashes, control characters or surrogates is quoted as it is.
 */
export function quoteJson(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(s);
  }
  return `"${s}"`;
}

/** The text of a finite number as the service writes it: as JSON.stringify, but −0 as `-0.0`. */
export function numberJson(v: number): string {
  return v === 0 && 1 / v < 0 ? "-0.0" : `${v}`;
}

/**
 * JSON with every number kept: −0 as `-0.0`, and (with `nonFinite`) NaN and ±Infinity as the strings
 * "NaN", "Infinity" and "-Infinity" (JSON has no literal for them, and JSON.stringify would silently
 * write null). Plain JSON.stringify where neither occurs, which is the common and fast case.
 */
export function stringifyExact(value: unknown, nonFinite: boolean, indent?: number): string {
  const negativeZero = hasNegativeZero(value);
  if (!negativeZero && !nonFinite) return JSON.stringify(value, undefined, indent);
  const text = JSON.stringify(
    value,
    (_key, v) => {
      if (typeof v !== "number") return v;
      if (v === 0 && 1 / v < 0) return NEGATIVE_ZERO;
      return nonFinite && !Number.isFinite(v) ? String(v) : v;
    },
    indent,
  );
  return negativeZero ? text.replaceAll(PLACEHOLDER, "-0.0") : text;
}

/** JSON with the non-finite numbers kept as strings and −0 as `-0.0` (see stringifyExact). */
export function toJson(value: unknown, indent?: number): string {
  return stringifyExact(value, true, indent);
}
