import { allOps } from "../ops/registry.js";
import { arityRange, type OpDef } from "../ops/types.js";
import { MODE_NAMES, MODE_PLANS } from "./modes.js";

export interface OpManifestEntry {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly arity: { readonly min: number; readonly max: number | null };
  readonly summary: string;
  /** The operands in order, with their roles. */
  readonly operands: string;
  readonly kind: OpDef["kind"];
  readonly commutative: boolean;
  readonly attributes: readonly string[];
  /** The modes that accept a function using this op. */
  readonly modes: readonly string[];
  /** Highest order of derivative those modes reach through this op. */
  readonly maxOrder: number;
  readonly kinks?: string;
  readonly secondOrder?: string;
}

export interface OpsManifest {
  readonly modes: readonly { readonly name: string; readonly summary: string; readonly order: number }[];
  readonly ops: readonly OpManifestEntry[];
}

/** An op carries derivatives if it has a derivative rule or expands into ops that do. */
function differentiable(def: OpDef): boolean {
  return def.partials !== undefined || (def.jvp !== undefined && def.vjp !== undefined) || def.expand !== undefined;
}

/**
 * The operands of an op that does not describe its own: elementwise ops take a (and b, broadcast
 * against a), as their summaries name them; the other one-operand ops take a tensor x.
 */
function defaultOperands(def: OpDef, arity: number): string {
  if (def.kind === "elementwise") return arity === 1 ? "a" : "a, b (broadcast against each other)";
  if (arity !== 1) throw new Error(`op ${def.name} takes ${arity} operands and must describe them (operands)`);
  return "x";
}

let cached: OpsManifest | undefined;

/** The capability manifest, read from the op table (so it needs no edit when an op is added). */
export function opsManifest(): OpsManifest {
  if (cached && cached.ops.length === allOps().length) return cached;
  const modes = MODE_NAMES.map((name) => ({ name, summary: MODE_PLANS[name].summary, order: MODE_PLANS[name].order }));
  const maxOrder = Math.max(...modes.map((m) => m.order));
  const ops = allOps().map((def): OpManifestEntry => {
    const { min, max } = arityRange(def);
    const d = differentiable(def);
    return {
      name: def.name,
      aliases: def.aliases ?? [],
      arity: { min, max: Number.isFinite(max) ? max : null },
      summary: def.summary,
      operands: def.operands ?? defaultOperands(def, min),
      kind: def.kind,
      commutative: def.commutative ?? false,
      attributes: def.attrNames ?? [],
      modes: MODE_NAMES.filter((m) => MODE_PLANS[m].order <= (d ? (def.maxOrder ?? maxOrder) : 0)),
      maxOrder: d ? Math.min(def.maxOrder ?? maxOrder, maxOrder) : 0,
      ...(def.kinks ? { kinks: def.kinks.doc } : {}),
      ...(def.secondOrder ? { secondOrder: def.secondOrder } : {}),
    };
  });
  cached = { modes, ops };
  return cached;
}
