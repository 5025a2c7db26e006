/** A tensor as the API writes it; non-finite numbers arrive as the strings "NaN", "Infinity", "-Infinity". */
export interface Tensor {
  readonly shape: readonly number[];
  readonly data: readonly (number | string)[];
}

export function isTensor(v: unknown): v is Tensor {
  return typeof v === "object" && v !== null && Array.isArray((v as Tensor).shape) && Array.isArray((v as Tensor).data);
}

/** A number at full float64 precision: JavaScript's shortest text that reads back as the same double. */
export function num(v: unknown): string {
  if (typeof v === "number") return String(v);
  if (typeof v === "string") return v;
  if (isTensor(v)) return tensorText(v, 6);
  if (v === undefined || v === null) return "";
  return JSON.stringify(v);
}

/** `[2,3] 1, 2, 3, …`: the shape, then the first `most` elements. */
export function tensorText(t: Tensor, most: number): string {
  const shown = t.data.slice(0, most).map(num).join(", ");
  return `[${t.shape.join(",")}] ${shown}${t.data.length > most ? ", …" : ""}`;
}

export function isFiniteValue(v: unknown): boolean {
  if (typeof v === "number") return Number.isFinite(v);
  if (typeof v === "string") return false;
  if (isTensor(v)) return v.data.every((x) => typeof x === "number" && Number.isFinite(x));
  return true;
}

/** Element numbers of a scalar or tensor, non-finite strings read as numbers. */
export function elements(v: unknown): number[] {
  if (isTensor(v)) return v.data.map(Number);
  if (typeof v === "number" || typeof v === "string") return [Number(v)];
  return [];
}

export function l2(v: unknown): number {
  return Math.sqrt(elements(v).reduce((s, x) => s + x * x, 0));
}

/** `el("td", {class: "num"}, "1.5")`: elements are built by hand, never from HTML text, so client names stay text. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  e.append(...children);
  return e;
}

const SVG = "http://www.w3.org/2000/svg";

export function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: (Node | string)[]): SVGElement {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  e.append(...children);
  return e;
}
