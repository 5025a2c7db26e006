import type { PageState } from "./state.js";

/** An error answer (application/problem+json), as docs/service.md describes it. */
export interface Problem {
  readonly title?: string;
  readonly detail: string;
  readonly kind?: string;
  readonly field?: string;
  /** Expressions: the column (1-based) where parsing failed. */
  readonly position?: number;
  readonly node?: string;
}

export type Answer = Record<string, unknown>;

export type Outcome = { readonly ok: true; readonly body: Answer } | { readonly ok: false; readonly problem: Problem };

/** Modes that answer a trace (docs/service.md: value, reverse and forward). */
export const TRACED = new Set(["value", "reverse", "forward"]);

/** `x1=2,x2=0.5` or a JSON object; throws an Error naming the part it cannot read. */
export function parsePoint(text: string): Record<string, unknown> {
  const t = text.trim();
  if (t === "") return {};
  if (t.startsWith("{")) {
    const v: unknown = JSON.parse(t);
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("the point must be a JSON object");
    return v as Record<string, unknown>;
  }
  const point: Record<string, unknown> = {};
  for (const part of t.split(",")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(\S+)\s*$/.exec(part);
    const value = m ? Number(m[2]) : Number.NaN;
    if (!m || (Number.isNaN(value) && m[2] !== "NaN")) throw new Error(`cannot read "${part}" of the point: write NAME=NUMBER`);
    point[m[1]] = value;
  }
  return point;
}

function shapeOf(v: unknown): number[] {
  const shape: number[] = [];
  for (let x = v; Array.isArray(x); x = x[0]) shape.push(x.length);
  return shape;
}

/** The function part of a request. An expression with array-valued inputs needs their shapes declared. */
export function functionSpec(s: PageState, point: Record<string, unknown>): Record<string, unknown> {
  if (s.kind === "graph") return { graph: JSON.parse(s.source) };
  if (s.kind === "model") return { model: JSON.parse(s.source) };
  const names = Object.keys(point);
  if (!names.some((n) => Array.isArray(point[n]))) return { expression: s.source };
  return { expression: s.source, inputs: names.map((name) => ({ name, shape: shapeOf(point[name]) })) };
}

export function differentiateRequest(s: PageState): Answer {
  const point = parsePoint(s.at);
  const body: Answer = { function: functionSpec(s, point), point, mode: s.mode };
  if (TRACED.has(s.mode)) body.trace = true;
  if (s.allowNonFinite) body.allowNonFinite = true;
  if (s.kind === "model" && !hasParameters(point)) body.initialize = { seed: Number(s.seed) || 0 };
  return body;
}

/** A model point with no parameter (only x and y) has them drawn from the seed. */
function hasParameters(point: Record<string, unknown>): boolean {
  return Object.keys(point).some((k) => k !== "x" && k !== "y");
}

export async function post(path: string, body: unknown): Promise<Outcome> {
  const response = await fetch(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const text = await response.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (response.ok && parsed !== undefined) return { ok: true, body: parsed as Answer };
  const problem = (parsed as Problem | undefined) ?? { detail: `${response.status} ${response.statusText}: ${text.slice(0, 200)}` };
  return { ok: false, problem };
}
