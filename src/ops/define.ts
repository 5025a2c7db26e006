import { zerosOf } from "./rule-helpers.js";
import { viewSparsity } from "./sparsity.js";
import type { Attrs, MaybeNode, OpDef, RuleBuilder } from "./types.js";

type JvpRule = NonNullable<OpDef["jvp"]>;

/**
 * Enters an op, its rules typed by its own attributes, into the table, which holds every op with its
 * attribute type erased. That is sound because the builder hands an op's rules only attributes its
 * own normalizeAttrs returned. A linear or bilinear op gets its JVP here, from the op itself, and a
 * view op its sparsity rule, from its view.
 */
export function defineOp<A extends Attrs | undefined>(typed: OpDef<A>): OpDef {
  let def = typed as unknown as OpDef;
  // A view reads one operand element per output element, so its view is its sparsity rule too.
  if (def.view && !def.sparsity) def = { ...def, sparsity: viewSparsity(def.view) };
  if (def.linear === undefined) return def;
  if (def.jvp) throw new Error(`op ${def.name} is declared ${def.linear} and has a jvp: the jvp of a ${def.linear} op is derived`);
  return { ...def, jvp: def.linear === "linear" ? linearJvp(def) : bilinearJvp(def) };
}

/** The op on the tangents; operands that carry no derivative (indices, a selector) stay as they are. */
function linearJvp(def: OpDef): JvpRule {
  return (b, args, _out, tangents, attrs) => {
    if (tangents.every((t) => t === null)) return null;
    const operands = args.map((a, k) => (def.differentiable?.[k] === false ? a : (tangents[k] ?? zeroFor(b, def, a))));
    return b.op(def.name, operands, def.linearPart ? def.linearPart(attrs) : attrs);
  };
}

/** An elementwise op broadcasts a scalar 0; any other op needs the operand's full shape. */
function zeroFor(b: RuleBuilder, def: OpDef, operand: number): number {
  return def.kind === "elementwise" ? b.constant(0) : zerosOf(b, b.shape(operand));
}

/** op(ȧ, b) + op(a, ḃ), leaving out a term whose tangent is absent. */
function bilinearJvp(def: OpDef): JvpRule {
  return (b, [x, y], _out, [tx, ty], attrs) => {
    const terms: MaybeNode[] = [tx === null ? null : b.op(def.name, [tx, y], attrs), ty === null ? null : b.op(def.name, [x, ty], attrs)];
    const present = terms.filter((t): t is number => t !== null);
    return present.length === 0 ? null : present.reduce((s, t) => b.add(s, t));
  };
}
