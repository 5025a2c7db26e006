import { broadcastShapes } from "../../tensor/shape.js";
import { defineOp } from "../define.js";
import { elementwiseSparsity } from "../sparsity.js";
import type { OpDef, RuleBuilder } from "../types.js";

type ElementwiseSpec = Omit<OpDef, "kind" | "shape" | "js" | "partials"> & Required<Pick<OpDef, "js">> & Pick<OpDef, "partials">;

/** An elementwise op broadcasts its operands by NumPy's rules; its output is always a float. */
export function elementwise(spec: ElementwiseSpec): OpDef {
  return defineOp({
    kind: "elementwise",
    shape: (argShapes) => broadcastShapes(argShapes),
    dtype: () => "float",
    sparsity: elementwiseSparsity(spec.differentiable),
    ...spec,
  });
}

/** Shorthand for a unary op applied in a rule. */
export function call(b: RuleBuilder, name: string, ...args: number[]): number {
  return b.op(name, args);
}
