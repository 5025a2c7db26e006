import { OpRuleError } from "../../errors.js";
import { broadcastShapes, formatShape, type Shape, sameShape, sizeOf, stridesOf } from "../../tensor/shape.js";
import { defineOp } from "../define.js";
import { unbroadcast } from "../rule-helpers.js";
import type { RuleBuilder, ViewRule } from "../types.js";
import { axisAttr, intAttr, intListAttr, onlyAttrs } from "./attrs.js";

type ShapeAttrs = { shape: number[] };
type PermAttrs = { perm: number[] };
type AxisAttrs = { axis: number };

function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  const want = stridesOf(shape);
  for (let i = 0; i < shape.length; i++) if (shape[i] !== 1 && strides[i] !== want[i]) return false;
  return true;
}

/** Reshape re-strides a contiguous operand; on a strided one it can only add or drop axes of extent 1. */
const reshapeView: ViewRule<ShapeAttrs> = (argShape, { shape: target }, view) => {
  if (isContiguous(argShape, view.strides)) return { offset: view.offset, strides: stridesOf(target) };
  const kept = argShape.map((d, i) => [d, view.strides[i]] as const).filter(([d]) => d !== 1);
  const targetKept = target.filter((d) => d !== 1);
  if (kept.length !== targetKept.length || kept.some(([d], i) => d !== targetKept[i])) return undefined;
  let k = 0;
  return { offset: view.offset, strides: target.map((d) => (d === 1 ? 0 : kept[k++][1])) };
};

export const reshape = defineOp<ShapeAttrs>({
  name: "reshape",
  tensorCases: [{ name: "with −1", args: [{ shape: [2, 6] }], attrs: { shape: [3, -1] } }],
  kind: "structural",
  arity: 1,
  summary: "the same elements in a new shape (row-major); one extent may be −1",
  attrNames: ["shape"],
  normalizeAttrs: (attrs, [shape]) => {
    const a = onlyAttrs(attrs, ["shape"]);
    const target = intListAttr(a.shape, "shape", undefined, -1);
    const unknown = target.filter((d) => d === -1).length;
    if (unknown > 1) throw new OpRuleError("at most one extent may be −1", "attrs.shape");
    const known = target.reduce((p, d) => (d === -1 ? p : p * d), 1);
    const total = sizeOf(shape);
    const resolved = target.map((d) => (d === -1 ? (known === 0 ? 0 : total / known) : d));
    if (sizeOf(resolved) !== total || resolved.some((d) => !Number.isInteger(d))) {
      throw new OpRuleError(`cannot reshape ${formatShape(shape)} (${total} elements) to ${formatShape(target)}`, "attrs.shape");
    }
    return { shape: resolved };
  },
  shape: (_args, attrs) => attrs.shape,
  view: reshapeView,
  linear: "linear",
  vjp: (b, [x], _out, ct) => [b.op("reshape", [ct], { shape: [...b.shape(x)] })],
});

export const broadcastTo = defineOp<ShapeAttrs>({
  name: "broadcast_to",
  tensorCases: [{ name: "new and unit axes", args: [{ shape: [3, 1] }], attrs: { shape: [2, 3, 4] } }],
  kind: "structural",
  arity: 1,
  summary: "repeats the operand along new leading axes and axes of extent 1 (NumPy broadcasting)",
  attrNames: ["shape"],
  normalizeAttrs: (attrs, [shape]) => {
    const a = onlyAttrs(attrs, ["shape"]);
    const target = intListAttr(a.shape, "shape", undefined, 0);
    if (target.length < shape.length || !sameShape(broadcastShapes([shape, target]), target)) {
      throw new OpRuleError(`cannot broadcast ${formatShape(shape)} to ${formatShape(target)}`, "attrs.shape");
    }
    return { shape: target };
  },
  shape: (_args, attrs) => attrs.shape,
  view: (argShape, { shape: target }, view) => {
    const lead = target.length - argShape.length;
    return {
      offset: view.offset,
      strides: target.map((d, i) => (i < lead || (argShape[i - lead] === 1 && d !== 1) ? 0 : view.strides[i - lead])),
    };
  },
  linear: "linear",
  vjp: (b, [x], _out, ct) => [unbroadcast(b, ct, b.shape(x))],
});

export const transpose = defineOp<PermAttrs>({
  name: "transpose",
  tensorCases: [
    { name: "default", args: [{ shape: [2, 3, 4] }] },
    { name: "perm", args: [{ shape: [2, 3, 4] }], attrs: { perm: [1, 2, 0] } },
  ],
  kind: "structural",
  arity: 1,
  summary: "permutes the axes (default: reverses them)",
  attrNames: ["perm"],
  normalizeAttrs: (attrs, [shape]) => {
    const a = onlyAttrs(attrs, ["perm"]);
    const perm = a.perm === undefined ? shape.map((_, i) => shape.length - 1 - i) : intListAttr(a.perm, "perm", shape.length, 0);
    if ([...perm].sort((x, y) => x - y).some((p, i) => p !== i)) {
      throw new OpRuleError(`perm ${formatShape(perm)} is not a permutation of the ${shape.length} axes`, "attrs.perm");
    }
    return { perm };
  },
  shape: ([shape], { perm }) => perm.map((p) => shape[p]),
  view: (_argShape, { perm }, view) => ({ offset: view.offset, strides: perm.map((p) => view.strides[p]) }),
  linear: "linear",
  vjp: (b, _args, _out, ct, _needs, { perm }) => {
    const inverse = new Array<number>(perm.length);
    perm.forEach((p, i) => {
      inverse[p] = i;
    });
    return [b.op("transpose", [ct], { perm: inverse })];
  },
});

/** Composite shape ops: built from reshape and concat, so they need no rules. */
function expandAxes(b: RuleBuilder, x: number, axes: readonly number[]): number {
  const shape = [...b.shape(x)];
  const rank = shape.length + axes.length;
  const norm = axes.map((a) => (a < 0 ? a + rank : a)).sort((p, q) => p - q);
  for (const a of norm) {
    if (a < 0 || a > shape.length) throw new OpRuleError(`axis ${a} is out of range for the result's rank ${rank}`, "attrs.axis");
    shape.splice(a, 0, 1);
  }
  return b.op("reshape", [x], { shape });
}

export const expandDims = defineOp<{ axis: number[] }>({
  name: "expand_dims",
  tensorCases: [{ name: "axis 1", args: [{ shape: [3, 2] }], attrs: { axis: 1 } }],
  kind: "composite",
  arity: 1,
  summary: "inserts axes of extent 1",
  attrNames: ["axis"],
  normalizeAttrs: (attrs) => {
    const a = onlyAttrs(attrs, ["axis"]);
    return { axis: typeof a.axis === "number" ? [intAttr(a.axis, "axis")] : intListAttr(a.axis ?? [0], "axis") };
  },
  expand: (b, [x], attrs) => expandAxes(b, x, attrs.axis),
});

export const squeeze = defineOp<{ axes: number[] }>({
  name: "squeeze",
  tensorCases: [{ name: "all unit axes", args: [{ shape: [3, 1, 2] }] }],
  kind: "composite",
  arity: 1,
  summary: "removes axes of extent 1 (the given ones, or all)",
  attrNames: ["axes"],
  normalizeAttrs: (attrs, [shape]) => {
    const a = onlyAttrs(attrs, ["axes"]);
    const axes =
      a.axes === undefined
        ? shape.flatMap((d, i) => (d === 1 ? [i] : []))
        : intListAttr(a.axes, "axes").map((x) => (x < 0 ? x + shape.length : x));
    for (const ax of axes) {
      if (shape[ax] !== 1) throw new OpRuleError(`cannot squeeze axis ${ax} of ${formatShape(shape)}: its extent is not 1`, "attrs.axes");
    }
    return { axes };
  },
  expand: (b, [x], attrs) => {
    const axes = new Set(attrs.axes);
    return b.op("reshape", [x], { shape: b.shape(x).filter((_, i) => !axes.has(i)) });
  },
});

export const flatten = defineOp({
  name: "flatten",
  tensorCases: [{ name: "rank 3", args: [{ shape: [2, 3, 2] }] }],
  kind: "composite",
  arity: 1,
  summary: "keeps the first axis (the batch) and flattens the rest: [N, …] → [N, ∏…]",
  expand: (b, [x]) => {
    const shape = b.shape(x);
    if (shape.length < 1) throw new OpRuleError("flatten needs at least one axis");
    return b.op("reshape", [x], { shape: [shape[0], sizeOf(shape.slice(1))] });
  },
});

export const stack = defineOp<AxisAttrs>({
  name: "stack",
  operands: "x₁, x₂, …: one or more tensors of one shape",
  tensorCases: [{ name: "axis −1", args: [{ shape: [2, 3] }, { shape: [2, 3] }], attrs: { axis: -1 } }],
  kind: "composite",
  arity: { min: 1 },
  summary: "joins tensors of one shape along a new axis (default 0)",
  attrNames: ["axis"],
  normalizeAttrs: (attrs, shapes) => {
    const a = onlyAttrs(attrs, ["axis"]);
    shapes.forEach((s, k) => {
      if (!sameShape(s, shapes[0]))
        throw new OpRuleError(`operand ${k} has shape ${formatShape(s)}, operand 0 ${formatShape(shapes[0])}: stack needs equal shapes`);
    });
    return { axis: axisAttr(a.axis, shapes[0].length + 1, 0) };
  },
  expand: (b, args, { axis }) =>
    b.op(
      "concat",
      args.map((x) => expandAxes(b, x, [axis])),
      { axis },
    ),
});
