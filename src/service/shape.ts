import type { Evaluation } from "../engine/compiled-function.js";
import { everySectionValue, mapSections, setField } from "../engine/sections.js";
import { firstNonFinite, type Value } from "../engine/values.js";
import { type AdjointError, invalid } from "../errors.js";
import { type BatchLayout, type PointExtra, readValue } from "../runtime/batch.js";
import type { ModePlan } from "./modes.js";
import type { ColumnsResult, ResultRow } from "./types.js";

/** Enforces the non-finite policy on a single answer. */
export function checkFinite(evaluation: Evaluation, allowNonFinite: boolean, field: string): ResultRow {
  if (!allowNonFinite && (evaluation.nonFinite !== undefined || !finiteRow(evaluation))) throw nonFiniteError(evaluation.nonFinite, field);
  return evaluation;
}

function finiteRow(row: ResultRow): boolean {
  return everySectionValue<Value>(row, isFiniteValue);
}

function isFiniteValue(v: Value): boolean {
  return typeof v === "number" ? Number.isFinite(v) : firstNonFinite(v.data) < 0;
}

function nonFiniteError(report: Evaluation["nonFinite"], field: string): AdjointError {
  return invalid(
    `${field}: the result is not finite${report ? ` (${report.message})` : ""}; set allowNonFinite to receive NaN and ±Infinity (as strings in JSON)`,
    { field, ...(report ? { node: report.node } : {}) },
  );
}

/**
 * One answer row per point of a batch, the non-finite policy enforced: copied out of its memory, or
 * (`views`) viewing it, for an answer encoded before the memory is given back (service.ts, LentMemory).
 */
export function rowsOf(
  layout: BatchLayout,
  outputs: Float64Array,
  extras: readonly PointExtra[],
  allowNonFinite: boolean,
  fieldOf: (i: number) => string,
  annotations: ModePlan["annotations"],
  views = false,
): ResultRow[] {
  const rows: Record<string, unknown>[] = [];
  for (let i = 0; i < layout.count; i++) {
    const row: Record<string, unknown> = { ...annotations };
    for (const f of layout.fields) {
      const v = readValue(outputs, f, i);
      setField(row, f, views ? v : copyValue(v));
    }
    rows.push(row);
  }
  const result = rows as unknown as ResultRow[];
  for (const extra of extras) Object.assign(result[extra.index], extraOf(extra));
  if (!allowNonFinite) {
    result.forEach((row, i) => {
      if (row.nonFinite !== undefined || !finiteRow(row)) throw nonFiniteError(row.nonFinite, fieldOf(i));
    });
  }
  return result;
}

/** A value read from a batch's memory, copied out of it (shared memory must not leak into answers). */
function copyValue(v: Value): Value {
  return typeof v === "number" ? v : { shape: v.shape, data: (v.data as Float64Array).slice() };
}

function extraOf(extra: PointExtra): Partial<ResultRow> {
  return {
    ...(extra.trace ? { trace: extra.trace } : {}),
    ...(extra.nonFinite ? { nonFinite: extra.nonFinite } : {}),
    ...(extra.check ? { check: extra.check } : {}),
  };
}

/** A batch's answer as columns: views of its memory, which the answer owns from here on. */
export function columnsOf(
  layout: BatchLayout,
  outputs: Float64Array,
  extras: readonly PointExtra[],
  allowNonFinite: boolean,
  annotations: ModePlan["annotations"],
): ColumnsResult {
  const { count } = layout;
  const result: Record<string, unknown> = { ...annotations };
  for (const f of layout.fields)
    setField(result, f, { shape: [count, ...f.shape], data: outputs.subarray(f.offset, f.offset + count * f.size) });
  const bad = extras.filter((e) => e.nonFinite !== undefined);
  if (!allowNonFinite) {
    const first = bad[0]?.index ?? firstNonFiniteIndex(layout, outputs);
    if (first !== undefined) throw nonFiniteError(bad[0]?.nonFinite, `columns (point ${first})`);
  }
  const columns = result as unknown as ColumnsResult;
  return bad.length ? { ...columns, nonFinite: bad.map((e) => ({ index: e.index, ...e.nonFinite! })) } : columns;
}

function firstNonFiniteIndex(layout: BatchLayout, outputs: Float64Array): number | undefined {
  for (const f of layout.fields) {
    const at = firstNonFinite(outputs.subarray(f.offset, f.offset + layout.count * f.size));
    if (at >= 0) return Math.floor(at / f.size);
  }
  return undefined;
}

/**
 * Σ weightₖ·rowₖ over every numeric section (the shards of a mean over the batch), into new memory:
 * the rows may view their batches' memory, which can be given back once this returns.
 */
export function combineWeighted(parts: readonly { weight: number; row: ResultRow }[]): ResultRow {
  const [first, ...rest] = parts;
  const sum = mapSections<Value, Value>(first.row, (v) => scaledCopy(v, first.weight)) as Record<string, Record<string, Value>>;
  for (const { weight, row } of rest) {
    for (const section of ["outputs", "gradient"] as const) {
      const add = row[section];
      if (!add) continue;
      for (const name of Object.keys(add)) {
        const acc = sum[section][name];
        const v = add[name];
        if (typeof acc === "number") sum[section][name] = acc + weight * (v as number);
        else {
          const data = acc.data as Float64Array;
          const more = (v as Exclude<Value, number>).data;
          for (let i = 0; i < data.length; i++) data[i] += weight * more[i];
        }
      }
    }
  }
  return { ...first.row, ...sum } as ResultRow;
}

/** A plain loop: `Float64Array.from` with a mapping function took 20 ms for W3's 200,000 numbers. */
function scaledCopy(v: Value, weight: number): Value {
  if (typeof v === "number") return v * weight;
  const from = v.data;
  const data = new Float64Array(from.length);
  for (let i = 0; i < data.length; i++) data[i] = from[i] * weight;
  return { shape: v.shape, data };
}
