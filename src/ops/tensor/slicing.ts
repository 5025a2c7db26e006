import { OpRuleError } from "../../errors.js";
import { formatShape, sizeOf, stridesOf } from "../../tensor/shape.js";
import { defineOp } from "../define.js";
import { movedSparsity, padSparsity } from "../sparsity.js";
import type { MaybeNode } from "../types.js";
import { axisAttr, intAttr, intListAttr, onlyAttrs } from "./attrs.js";

/** slice, pad and concat: each one's derivative is built from the others (slice ↔ pad, concat → slice). */

type SliceAttrs = { begin: number[]; end: number[]; step: number[] };
export type PadAttrs = { before: number[]; after: number[]; interior: number[]; value: number };
type AxisAttrs = { axis: number };

/** Python slice semantics on one axis: negative indices count from the end; bounds clamp. */
function resolveSlice(begin: number | null, end: number | null, dim: number): [number, number] {
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
  const b = begin === null ? 0 : clamp(begin);
  const e = end === null ? dim : clamp(end);
  return [b, Math.max(e, b)];
}

export const slice = defineOp<SliceAttrs>({
  name: "slice",
  tensorCases: [{ name: "steps and negatives", args: [{ shape: [5, 6] }], attrs: { begin: [1, -5], end: [null, -1], step: [2, 3] } }],
  kind: "structural",
  arity: 1,
  summary: "x[begin:end:step] per axis (Python semantics, step ≥ 1); axes not given are kept whole",
  attrNames: ["begin", "end", "step"],
  normalizeAttrs: (attrs, [shape]) => {
    const a = onlyAttrs(attrs, ["begin", "end", "step"]);
    const list = (v: unknown, name: string) => {
      if (v === undefined) return [];
      if (!Array.isArray(v)) throw new OpRuleError(`${name} must be a list`, `attrs.${name}`);
      if (v.length > shape.length)
        throw new OpRuleError(`${name} has ${v.length} entries for ${shape.length} axes ${formatShape(shape)}`, `attrs.${name}`);
      return v.map((x, i) => (x === null ? null : intAttr(x, `${name}[${i}]`)));
    };
    const begins = list(a.begin, "begin");
    const ends = list(a.end, "end");
    const steps = list(a.step, "step");
    const begin: number[] = [];
    const end: number[] = [];
    const step: number[] = [];
    shape.forEach((dim, i) => {
      const s = steps[i] ?? 1;
      if (s < 1) throw new OpRuleError(`step[${i}] must be ≥ 1, got ${s}`, "attrs.step");
      const [bb, ee] = resolveSlice(begins[i] ?? null, ends[i] ?? null, dim);
      begin.push(bb);
      end.push(ee);
      step.push(s);
    });
    return { begin, end, step };
  },
  shape: ([shape], { begin, end, step }) => shape.map((_, i) => Math.ceil((end[i] - begin[i]) / step[i])),
  view: (argShape, { begin, step }, view) => {
    let offset = view.offset;
    argShape.forEach((_, i) => {
      offset += begin[i] * view.strides[i];
    });
    return { offset, strides: view.strides.map((s, i) => s * step[i]) };
  },
  linear: "linear",
  vjp: (b, [x], out, ct, _needs, { begin, step }) => {
    const shape = b.shape(x);
    const outShape = b.shape(out);
    const after = shape.map((d, i) => (outShape[i] === 0 ? d - begin[i] : d - (begin[i] + (outShape[i] - 1) * step[i] + 1)));
    return [b.op("pad", [ct], { before: begin, after, interior: step.map((s) => s - 1) })];
  },
});

export const pad = defineOp<PadAttrs>({
  name: "pad",
  tensorCases: [
    { name: "with interior", args: [{ shape: [2, 3] }], attrs: { before: [1, 0], after: [0, 2], interior: [1, 2], value: 0.5 } },
  ],
  kind: "structural",
  arity: 1,
  summary: "surrounds the operand with `value` (before/after each axis) and spreads it by `interior` (between elements)",
  attrNames: ["before", "after", "interior", "value"],
  normalizeAttrs: (attrs, [shape]) => {
    const a = onlyAttrs(attrs, ["before", "after", "interior", "value"]);
    const zeros = shape.map(() => 0);
    const before = a.before === undefined ? zeros : intListAttr(a.before, "before", shape.length, 0);
    const after = a.after === undefined ? zeros : intListAttr(a.after, "after", shape.length, 0);
    const interior = a.interior === undefined ? zeros : intListAttr(a.interior, "interior", shape.length, 0);
    const value = a.value ?? 0;
    if (typeof value !== "number" || !Number.isFinite(value)) throw new OpRuleError("value must be a finite number", "attrs.value");
    return { before, after, interior, value };
  },
  shape: ([shape], { before, after, interior }) => shape.map((d, i) => before[i] + after[i] + (d === 0 ? 0 : d + (d - 1) * interior[i])),
  kernel: ({ argShapes: [shape], shape: outShape, attrs: { before, interior, value } }) => {
    const outStrides = stridesOf(outShape);
    const rank = shape.length;
    const n = sizeOf(shape);
    // Where element 0 of the operand lands, and how far each operand axis steps in the output.
    const base = before.reduce((acc, b, i) => acc + b * outStrides[i], 0);
    const step = outStrides.map((s, i) => s * (interior[i] + 1));
    const index = new Int32Array(rank);
    return ([x], out) => {
      out.fill(value);
      index.fill(0);
      let o = base;
      for (let i = 0; i < n; i++) {
        out[o] = x[i];
        for (let ax = rank - 1; ax >= 0; ax--) {
          index[ax]++;
          o += step[ax];
          if (index[ax] < shape[ax]) break;
          o -= step[ax] * shape[ax];
          index[ax] = 0;
        }
      }
    };
  },
  // Without interior spacing, padding is its operand read through a shifted, bounded window.
  viewWhen: ({ interior }) => interior.every((s) => s === 0),
  view: (argShape, { before, value }, view) => {
    let offset = view.offset;
    before.forEach((b, i) => {
      offset -= b * view.strides[i];
    });
    const bounds = argShape.map((d, i): [number, number] => [before[i], before[i] + d]);
    return { offset, strides: [...view.strides], bounds, fill: value };
  },
  // Affine: the fill value is a constant, so the tangent is padded with zeros.
  linear: "linear",
  linearPart: (attrs) => ({ ...attrs, value: 0 }),
  sparsity: padSparsity,
  vjp: (b, [x], _out, ct, _needs, { before, interior }) => {
    const shape = b.shape(x);
    const end = shape.map((d, i) => before[i] + (d === 0 ? 0 : (d - 1) * (interior[i] + 1) + 1));
    return [b.op("slice", [ct], { begin: before, end, step: interior.map((s) => s + 1) })];
  },
});

export const concat = defineOp<AxisAttrs>({
  name: "concat",
  operands: "x₁, x₂, …: one or more tensors, equal in every axis but `axis`",
  tensorCases: [{ name: "axis 1", args: [{ shape: [2, 3] }, { shape: [2, 1] }, { shape: [2, 2] }], attrs: { axis: 1 } }],
  kind: "structural",
  arity: { min: 1 },
  summary: "joins tensors along an existing axis (default 0)",
  attrNames: ["axis"],
  normalizeAttrs: (attrs, shapes) => {
    const a = onlyAttrs(attrs, ["axis"]);
    const rank = shapes[0].length;
    if (rank === 0) throw new OpRuleError("cannot concatenate scalars; use stack");
    const axis = axisAttr(a.axis, rank, 0);
    shapes.forEach((s, k) => {
      if (s.length !== rank || s.some((d, i) => i !== axis && d !== shapes[0][i])) {
        throw new OpRuleError(`operand ${k} has shape ${formatShape(s)}, which does not match ${formatShape(shapes[0])} off axis ${axis}`);
      }
    });
    return { axis };
  },
  shape: (shapes, { axis }) => shapes[0].map((d, i) => (i === axis ? shapes.reduce((acc, s) => acc + s[axis], 0) : d)),
  sparsity: movedSparsity,
  kernel: ({ argShapes, shape, attrs: { axis } }) => {
    const outer = sizeOf(shape.slice(0, axis));
    const inner = sizeOf(shape.slice(axis + 1));
    const widths = argShapes.map((s) => s[axis] * inner);
    const rowWidth = shape[axis] * inner;
    return (args, out) => {
      let col = 0;
      args.forEach((x, k) => {
        const w = widths[k];
        for (let r = 0; r < outer; r++) out.set(x.subarray(r * w, (r + 1) * w), r * rowWidth + col);
        col += w;
      });
    };
  },
  linear: "linear",
  vjp: (b, args, _out, ct, needs, { axis }) => {
    const rank = b.shape(ct).length;
    let at = 0;
    return args.map((a, k): MaybeNode => {
      const width = b.shape(a)[axis];
      const begin = new Array<number>(rank).fill(0);
      const end = [...b.shape(ct)];
      begin[axis] = at;
      end[axis] = at + width;
      at += width;
      return needs[k] ? b.op("slice", [ct], { begin, end, step: new Array(rank).fill(1) }) : null;
    });
  },
});
