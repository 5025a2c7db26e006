import { invalid, OpRuleError } from "../../errors.js";
import { formatShape, type Shape, sizeOf } from "../../tensor/shape.js";
import { defineOp } from "../define.js";
import { movedSparsity, transposeMap } from "../sparsity.js";
import type { Attrs, DType } from "../types.js";
import { axisAttr, intAttr, intListAttr, onlyAttrs } from "./attrs.js";

/** Outer × axis × inner: the three-loop view of a tensor around one axis. */
function around(shape: Shape, axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis], sizeOf(shape.slice(axis + 1))];
}

function checkIndices(types: readonly DType[], position: number): void {
  if (types[position] !== "int") throw new OpRuleError(`operand ${position} holds the indices and must be an int tensor`);
}

/** Resolves a (possibly negative) index, throwing a clear error when it is out of range. */
function resolveIndex(i: number, extent: number, k: number): number {
  const r = i < 0 ? i + extent : i;
  if (!(r >= 0 && r < extent)) throw invalid(`index ${i} (element ${k} of the indices) is out of range for an axis of extent ${extent}`);
  return r;
}

const gatherAttrs = (attrs: Attrs | undefined, shape: Shape) => ({ axis: axisAttr(onlyAttrs(attrs, ["axis"]).axis, shape.length, 0) });

export const gather = defineOp<{ axis: number }>({
  name: "gather",
  operands: "x, indices (integers)",
  tensorCases: [
    { name: "axis 0", args: [{ shape: [4, 3] }, { shape: [5], ints: [3, 0, 1, 3, -1] }], attrs: { axis: 0 } },
    { name: "axis 1", args: [{ shape: [2, 4] }, { shape: [2, 2], ints: [1, 1, 0, 3] }], attrs: { axis: 1 } },
  ],
  kind: "structural",
  arity: 2,
  summary: "takes slices of x at integer indices along an axis: x[…, indices, …]",
  attrNames: ["axis"],
  differentiable: [true, false],
  normalizeAttrs: (attrs, [shape], types) => {
    checkIndices(types, 1);
    if (shape.length === 0) throw new OpRuleError("cannot gather from a scalar");
    return gatherAttrs(attrs, shape);
  },
  shape: ([x, idx], { axis }) => [...x.slice(0, axis), ...idx, ...x.slice(axis + 1)],
  kernel: ({ argShapes: [x, idx], attrs }) => {
    const [outer, extent, inner] = around(x, attrs.axis);
    const count = sizeOf(idx);
    // Element by element (a sparse derivative's decompression gathers hundreds of thousands): a
    // subarray per element would cost more than the copy.
    if (inner === 1 && outer === 1) {
      return ([src, indices], out) => {
        for (let k = 0; k < count; k++) out[k] = src[resolveIndex(indices[k], extent, k)];
      };
    }
    return ([src, indices], out) => {
      for (let k = 0; k < count; k++) {
        const at = resolveIndex(indices[k], extent, k);
        for (let o = 0; o < outer; o++) {
          const from = (o * extent + at) * inner;
          out.set(src.subarray(from, from + inner), (o * count + k) * inner);
        }
      }
    };
  },
  sparsity: movedSparsity,
  linear: "linear",
  vjp: (b, [x, idx], _out, ct, _needs, attrs) => [b.op("scatter_add", [ct, idx], { ...attrs, shape: [...b.shape(x)] }), null],
});

/** The transpose of gather: adds each slice of `updates` into a zero tensor at its index. */
export const scatterAdd = defineOp<{ axis: number; shape: number[] }>({
  name: "scatter_add",
  operands: "updates, indices (integers): updates added into zeros of `shape`",
  tensorCases: [{ name: "axis 1", args: [{ shape: [2, 3] }, { shape: [3], ints: [0, 2, 0] }], attrs: { axis: 1, shape: [2, 4] } }],
  kind: "structural",
  arity: 2,
  summary: "adds slices of updates into zeros of the given shape at integer indices along an axis (the reverse of gather)",
  attrNames: ["axis", "shape"],
  differentiable: [true, false],
  normalizeAttrs: (attrs, [updates, idx], types) => {
    checkIndices(types, 1);
    const a = onlyAttrs(attrs, ["axis", "shape"]);
    const shape = intListAttr(a.shape, "shape", undefined, 0);
    const axis = axisAttr(a.axis, shape.length, 0);
    const expected = [...shape.slice(0, axis), ...idx, ...shape.slice(axis + 1)];
    if (expected.length !== updates.length || expected.some((d, i) => d !== updates[i])) {
      throw new OpRuleError(`updates have shape ${formatShape(updates)}, expected ${formatShape(expected)}`);
    }
    return { axis, shape };
  },
  shape: (_args, attrs) => attrs.shape,
  kernel: ({ argShapes: [, idx], shape, attrs }) => {
    const [outer, extent, inner] = around(shape, attrs.axis);
    const count = sizeOf(idx);
    return ([updates, indices], out) => {
      out.fill(0);
      for (let k = 0; k < count; k++) {
        const at = resolveIndex(indices[k], extent, k);
        for (let o = 0; o < outer; o++) {
          const to = (o * extent + at) * inner;
          const from = (o * count + k) * inner;
          for (let j = 0; j < inner; j++) out[to + j] += updates[from + j];
        }
      }
    };
  },
  // The transpose of gather's map: each output element reads the updates gathered from it.
  sparsity: (spec) => {
    const { argShapes, shape, attrs } = spec;
    const [moved] = movedSparsity({
      ...spec,
      argShapes: [shape, argShapes[1]],
      shape: argShapes[0],
      attrs: { axis: attrs.axis },
      op: gather,
    });
    if (moved === null || typeof moved === "string") return [moved, null];
    return [transposeMap(moved, sizeOf(argShapes[0]), sizeOf(shape)), null];
  },
  linear: "linear",
  vjp: (b, [, idx], _out, ct, _needs, attrs) => [b.op("gather", [ct, idx], { axis: attrs.axis }), null],
});

export const oneHot = defineOp<{ depth: number }>({
  name: "one_hot",
  kind: "structural",
  arity: 1,
  summary: "integer labels → rows of 0s with a 1 at the label: shape […] → […, depth]",
  attrNames: ["depth"],
  differentiable: [false],
  normalizeAttrs: (attrs, _shapes, types) => {
    checkIndices(types, 0);
    return { depth: intAttr(onlyAttrs(attrs, ["depth"]).depth, "depth", 1) };
  },
  shape: ([shape], attrs) => [...shape, attrs.depth],
  sparsity: () => [null],
  kernel: ({ argShapes: [shape], attrs: { depth } }) => {
    const n = sizeOf(shape);
    return ([labels], out) => {
      out.fill(0);
      for (let i = 0; i < n; i++) {
        const label = labels[i];
        if (!(label >= 0 && label < depth)) throw invalid(`label ${label} (element ${i}) is out of range for ${depth} classes`);
        out[i * depth + label] = 1;
      }
    };
  },
});
