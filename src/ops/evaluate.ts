import { scalarKernels } from "./scalar-kernels.js";
import type { OpDef } from "./types.js";

type ScalarFn = (a: number, b: number, c: number) => number;

const cache = new WeakMap<OpDef, ScalarFn>();

/**
 * The scalar function of an elementwise op, made from its one template so that constant folding and
 * the tests evaluate exactly what compiled programs evaluate. The template is ours, never a client's.
 */
export function scalarFunction(def: OpDef): ScalarFn {
  let fn = cache.get(def);
  if (fn) return fn;
  if (!def.js) throw new Error(`op ${def.name} has no scalar kernel`);
  fn = new Function("H", `return (a, b, c) => ${def.js(["a", "b", "c"])};`)(scalarKernels) as ScalarFn;
  cache.set(def, fn);
  return fn;
}

export function evaluateScalar(def: OpDef, args: readonly number[]): number {
  return scalarFunction(def)(args[0], args[1], args[2]);
}
