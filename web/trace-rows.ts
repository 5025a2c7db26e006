import type { Trace, TraceRow } from "../src/engine/trace.js";
import { num } from "./format.js";

/** The API's evaluation trace (docs/service.md, `trace`), as the engine defines it. */
export type { Trace, TraceRow };

/** Where the service says a NaN or infinity first arose (`nonFinite` in the answer). */
export interface NonFinite {
  readonly pass: string;
  readonly node: string;
  readonly op: string;
  readonly value: string;
  readonly message: string;
}

/** More nodes than this are not laid out: a layered layout of thousands of nodes would freeze the page. */
export const GRAPH_LIMIT = 300;

/** `v4 = mul(-0.5, v3)`, the seed's form; inputs read `x1 = input`. */
export function formula(row: TraceRow): string {
  if (row.op === "input") return `${row.id} = input`;
  return `${row.id} = ${row.op}(${row.args.map((a) => (typeof a === "number" ? num(a) : a)).join(", ")})`;
}

/** The derivative columns: ū in reverse mode, u̇ per swept input in forward mode, none for a value. */
export function derivativeColumns(trace: Trace): { readonly title: string; readonly read: (row: TraceRow) => unknown }[] {
  if (trace.mode === "reverse") return [{ title: "ūᵢ", read: (r) => r.adjoint }];
  if (trace.mode !== "forward") return [];
  const first = trace.rows.find((r) => r.tangent !== undefined)?.tangent;
  if (first === null || typeof first !== "object" || Array.isArray(first) || "shape" in first) {
    return [{ title: "u̇ᵢ", read: (r) => r.tangent }];
  }
  return Object.keys(first).map((name) => ({
    title: `u̇ᵢ (∂/∂${name})`,
    read: (r) => (r.tangent as Record<string, unknown> | undefined)?.[name],
  }));
}

/**
 * The rows to draw: all of them when few, else the GRAPH_LIMIT nearest the outputs (breadth first
 * along the operands), in evaluation order, so what is shown is what the result depends on most directly.
 */
export function sampleRows(rows: readonly TraceRow[], limit = GRAPH_LIMIT): { shown: TraceRow[]; hidden: number } {
  if (rows.length <= limit) return { shown: [...rows], hidden: 0 };
  const byId = new Map(rows.map((r, i) => [r.id, i]));
  const keep = new Set<number>();
  const queue: number[] = [];
  rows.forEach((r, i) => {
    if (r.output !== undefined && keep.size < limit) {
      keep.add(i);
      queue.push(i);
    }
  });
  if (queue.length === 0) {
    keep.add(rows.length - 1);
    queue.push(rows.length - 1);
  }
  for (let head = 0; head < queue.length && keep.size < limit; head++) {
    for (const a of rows[queue[head]].args) {
      const j = typeof a === "string" ? byId.get(a) : undefined;
      if (j === undefined || keep.has(j)) continue;
      keep.add(j);
      queue.push(j);
      if (keep.size >= limit) break;
    }
  }
  const shown = [...keep].sort((a, b) => a - b).map((i) => rows[i]);
  return { shown, hidden: rows.length - shown.length };
}
