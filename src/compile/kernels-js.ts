import { allOps } from "../ops/registry.js";
import type { OpDef } from "../ops/types.js";

/**
 * Formats a number as a JavaScript literal. Generated code only ever contains numbers formatted
 * here and op templates from our own table; never text from a client.
 */
export function formatLiteral(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Number.POSITIVE_INFINITY) return "Infinity";
  if (x === Number.NEGATIVE_INFINITY) return "(-Infinity)";
  if (Object.is(x, -0)) return "(-0)";
  const s = String(x);
  if (Number(s) !== x) throw new Error(`number ${s} does not round-trip`);
  return x < 0 ? `(${s})` : s;
}

/** The elementwise ops, numbered: opcodes of scalar programs. Rebuilt if a test registers an op. */
let table: { ops: OpDef[]; codes: Map<string, number> } | undefined;

export function elementwiseTable(): { ops: readonly OpDef[]; codes: ReadonlyMap<string, number> } {
  const ops = allOps().filter((d) => d.kind === "elementwise");
  if (!table || table.ops.length !== ops.length) {
    table = { ops, codes: new Map(ops.map((d, i) => [d.name, i])) };
  }
  return table;
}

/** The op's template applied to operand expressions, rounded to float32 when asked. */
export function kernelExpression(def: OpDef, operands: readonly string[], float32: boolean): string {
  const js = (def.js as NonNullable<OpDef["js"]>)(operands);
  return float32 ? `Math.fround(${js})` : `(${js})`;
}
