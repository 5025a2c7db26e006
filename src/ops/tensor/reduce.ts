import { OpRuleError } from "../../errors.js";
import { formatShape, type Shape, sizeOf, stridesOf } from "../../tensor/shape.js";
import { defineOp } from "../define.js";
import { reductionMap, sameFibreMap } from "../sparsity.js";
import type { OpDef, RuleBuilder } from "../types.js";
import { reduceAttrs } from "./attrs.js";

export type ReduceAttrs = { axes: number[]; keepdims: boolean };

function reducedShape(shape: Shape, { axes, keepdims }: ReduceAttrs): number[] {
  return keepdims ? shape.map((d, i) => (axes.includes(i) ? 1 : d)) : shape.filter((_, i) => !axes.includes(i));
}

/** The reduction's result with its reduced axes kept as extent 1, broadcast back over the operand. */
function spreadBack(b: RuleBuilder, reduced: number, x: number, attrs: ReduceAttrs): number {
  const shape = b.shape(x);
  const keep = reducedShape(shape, { ...attrs, keepdims: true });
  return b.op("broadcast_to", [b.op("reshape", [reduced], { shape: keep })], { shape: [...shape] });
}

function reduction(
  name: string,
  summary: string,
  identity: number,
  js: (acc: string, x: string) => string,
  extra: Partial<OpDef<ReduceAttrs>>,
): OpDef {
  return defineOp<ReduceAttrs>({
    name,
    kind: "structural",
    arity: 1,
    summary: `${summary} over the given axes (axis=… or axes=[…], default all; keepdims=false)`,
    attrNames: ["axis", "axes", "keepdims"],
    normalizeAttrs: (attrs, [shape]) => reduceAttrs(attrs, shape.length),
    shape: ([shape], attrs) => reducedShape(shape, attrs),
    reduce: { identity, js },
    // Both branches of max and min: every element of the fibre may be the one chosen.
    sparsity: ({ argShapes: [shape], attrs }) => [reductionMap(shape, attrs.axes)],
    ...extra,
  });
}

export const sum = reduction("sum", "Σ", 0, (acc, x) => `${acc} + ${x}`, {
  tensorCases: [
    { name: "all", args: [{ shape: [3, 4] }] },
    { name: "axis 0", args: [{ shape: [3, 4] }], attrs: { axis: 0 } },
    { name: "axis −1 keepdims", args: [{ shape: [3, 4] }], attrs: { axis: -1, keepdims: true } },
    { name: "axes [0, 2]", args: [{ shape: [2, 3, 4] }], attrs: { axes: [0, 2] } },
  ],
  linear: "linear",
  vjp: (b, [x], _out, ct, _needs, attrs) => [spreadBack(b, ct, x, attrs)],
});

/** ∂max/∂xᵢ = [xᵢ = max] / #ties: ties split the derivative evenly, as the elementwise max does. */
function extremumRules(name: string): Partial<OpDef<ReduceAttrs>> {
  const share = (b: RuleBuilder, x: number, out: number, attrs: ReduceAttrs) => {
    const hit = b.op("eq", [x, spreadBack(b, out, x, attrs)]);
    const ties = b.op("sum", [hit], { ...attrs, keepdims: true });
    return b.div(hit, b.op("broadcast_to", [ties], { shape: [...b.shape(x)] }));
  };
  return {
    jvp: (b, [x], out, [t], attrs) => (t === null ? null : b.op("sum", [b.mul(t, share(b, x, out, attrs))], attrs)),
    vjp: (b, [x], out, ct, _needs, attrs) => [b.mul(spreadBack(b, ct, x, attrs), share(b, x, out, attrs))],
    kinks: { doc: `Ties split the derivative evenly among the elements equal to the ${name}.` },
  };
}

export const amax = reduction("amax", "largest element", Number.NEGATIVE_INFINITY, (acc, x) => `Math.max(${acc}, ${x})`, {
  tensorCases: [{ name: "axis 0", args: [{ shape: [4, 3] }], attrs: { axis: 0 } }],
  aliases: ["reduce_max"],
  ...extremumRules("maximum"),
});

export const amin = reduction("amin", "smallest element", Number.POSITIVE_INFINITY, (acc, x) => `Math.min(${acc}, ${x})`, {
  tensorCases: [{ name: "all", args: [{ shape: [3, 3] }] }],
  aliases: ["reduce_min"],
  ...extremumRules("minimum"),
});

/** For every element, the index of its reduction's output: the fibres a reduction runs along. */
function fibreIndex(shape: Shape, axes: readonly number[]): Int32Array {
  const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
  const keptStrides = stridesOf(kept).map((s, i) => (axes.includes(i) ? 0 : s));
  const n = sizeOf(shape);
  const out = new Int32Array(n);
  const index = new Int32Array(shape.length);
  let o = 0;
  for (let i = 0; i < n; i++) {
    out[i] = o;
    for (let ax = shape.length - 1; ax >= 0; ax--) {
      index[ax]++;
      o += keptStrides[ax];
      if (index[ax] < shape[ax]) break;
      o -= keptStrides[ax] * shape[ax];
      index[ax] = 0;
    }
  }
  return out;
}

/**
 * The product of the other elements of each element's fibre: ∂prod/∂xᵢ. With no zero in the fibre it
 * is prod/xᵢ; with one zero, the zero's entry is the product of the rest and the others are 0.
 */
export const prodOthers = defineOp<ReduceAttrs>({
  name: "prod_others",
  kind: "structural",
  arity: 1,
  summary: "for each element, the product of the other elements reduced with it (the derivative of prod)",
  normalizeAttrs: (attrs, [shape]) => reduceAttrs(attrs, shape.length),
  shape: ([shape]) => shape,
  sparsity: ({ argShapes: [shape], attrs }) => [sameFibreMap(shape, attrs.axes)],
  maxOrder: 0,
  kernel: ({ argShapes: [shape], attrs }) => {
    const fibre = fibreIndex(shape, attrs.axes);
    const outputs = sizeOf(shape) === 0 ? 0 : Math.max(...fibre) + 1;
    const product = new Float64Array(outputs);
    const withoutZero = new Float64Array(outputs);
    const zeros = new Int32Array(outputs);
    return ([x], out) => {
      product.fill(1);
      withoutZero.fill(1);
      zeros.fill(0);
      for (let i = 0; i < fibre.length; i++) {
        const f = fibre[i];
        const v = x[i];
        product[f] *= v;
        if (v === 0) zeros[f]++;
        else withoutZero[f] *= v;
      }
      for (let i = 0; i < fibre.length; i++) {
        const f = fibre[i];
        const v = x[i];
        out[i] = zeros[f] === 0 ? product[f] / v : zeros[f] === 1 && v === 0 ? withoutZero[f] : 0;
      }
    };
  },
});

export const prod = reduction("prod", "∏", 1, (acc, x) => `${acc} * ${x}`, {
  tensorCases: [{ name: "axis 1", args: [{ shape: [3, 4], range: [0.5, 1.5] }], attrs: { axis: 1 } }],
  jvp: (b, [x], _out, [t], attrs) => (t === null ? null : b.op("sum", [b.mul(t, b.op("prod_others", [x], attrs))], attrs)),
  vjp: (b, [x], _out, ct, _needs, attrs) => [b.mul(spreadBack(b, ct, x, attrs), b.op("prod_others", [x], attrs))],
  maxOrder: 1,
  kinks: { doc: "Exact with zeros in the fibre (no division by zero). Second derivatives are not supported." },
});

export const mean = reduction("mean", "arithmetic mean", 0, (acc, x) => `${acc} + ${x}`, {
  tensorCases: [{ name: "axis 1", args: [{ shape: [3, 4] }], attrs: { axis: 1 } }],
  kind: "composite",
  reduce: undefined,
  expand: (b, [x], attrs) => {
    const count = sizeOf(b.shape(x)) / Math.max(1, sizeOf(reducedShape(b.shape(x), attrs)));
    if (count === 0) throw new OpRuleError(`mean over an empty axis of ${formatShape(b.shape(x))}`);
    return b.mul(b.op("sum", [x], attrs), b.constant(1 / count));
  },
});

/** log Σ exp(x), shifted by the (constant) maximum so that no exp overflows. */
export const logsumexp = reduction("logsumexp", "log Σ exp, stable", 0, (acc, x) => `${acc} + ${x}`, {
  tensorCases: [{ name: "axis 1", args: [{ shape: [3, 4] }], attrs: { axis: 1 } }],
  kind: "composite",
  reduce: undefined,
  expand: (b, [x], attrs) => {
    const keep = { ...attrs, keepdims: true };
    const shift = b.op("stop_gradient", [b.op("amax", [x], keep)]);
    const shifted = b.sub(x, shift);
    const lse = b.add(b.op("log", [b.op("sum", [b.op("exp", [shifted])], keep)]), shift);
    return attrs.keepdims ? lse : b.op("reshape", [lse], { shape: reducedShape(b.shape(x), attrs) });
  },
});
