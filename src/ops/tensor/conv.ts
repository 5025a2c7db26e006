import { OpRuleError } from "../../errors.js";
import {
  type Conv2dGeometry,
  conv2dFilterGrad as conv2dFilterGradKernel,
  conv2dInputGrad as conv2dInputGradKernel,
  conv2d as conv2dKernel,
  conv2dWorkspaceSize,
  type FloatArray,
} from "../../tensor/kernels/index.js";
import { extentOf, formatShape, type Shape, windowOutputExtent } from "../../tensor/shape.js";
import { defineOp } from "../define.js";
import type { Attrs, RuleBuilder } from "../types.js";
import { onlyAttrs, pairAttr } from "./attrs.js";
import { paddingAttr, window } from "./window.js";
import { conv2dFilterGradSparsity, conv2dInputGradSparsity, conv2dSparsity } from "./window-sparsity.js";

/**
 * Convolution, NCHW (pooling is in pool.ts). Each derivative is itself an op with its own rules
 * (convolution is bilinear), so the family is closed under differentiation: second derivatives of a
 * CNN's loss work like any other.
 */

type ConvAttrs = {
  stride: [number, number];
  /** Zero padding: top, bottom, left, right. */
  padding: [number, number, number, number];
  dilation: [number, number];
};
type InputGradAttrs = ConvAttrs & { input_size: [number, number] };
type FilterGradAttrs = ConvAttrs & { kernel_size: [number, number] };

function convAttrs(attrs: Attrs | undefined, extra: readonly string[]): ConvAttrs & Record<string, unknown> {
  const a = onlyAttrs(attrs, ["stride", "padding", "dilation", ...extra]);
  return {
    ...a,
    stride: pairAttr(a.stride, "stride", 1, 1),
    padding: paddingAttr(a.padding),
    dilation: pairAttr(a.dilation, "dilation", 1, 1),
  };
}

function convOutput(x: Shape, w: Shape, a: ConvAttrs): [number, number] {
  const oh = windowOutputExtent(x[2], w[2], a.stride[0], a.padding[0], a.padding[1], a.dilation[0]);
  const ow = windowOutputExtent(x[3], w[3], a.stride[1], a.padding[2], a.padding[3], a.dilation[1]);
  if (oh < 1 || ow < 1)
    throw new OpRuleError(`the kernel ${formatShape(w.slice(2))} (dilated) does not fit the padded input ${formatShape(x.slice(2))}`);
  return [oh, ow];
}

function geometry(x: Shape, w: Shape, a: ConvAttrs): Conv2dGeometry {
  return {
    batch: x[0],
    inChannels: x[1],
    inHeight: x[2],
    inWidth: x[3],
    outChannels: w[0],
    kernelHeight: w[2],
    kernelWidth: w[3],
    ...window(a.stride, a.padding),
    dilationH: a.dilation[0],
    dilationW: a.dilation[1],
  };
}

/** Scratch for im2col, allocated once per compiled kernel. */
function workspaceFor(g: Conv2dGeometry, float32: boolean): FloatArray {
  const n = conv2dWorkspaceSize(g);
  return float32 ? new Float32Array(n) : new Float64Array(n);
}

const conv = (b: RuleBuilder, x: number, w: number, a: ConvAttrs) =>
  b.op("conv2d", [x, w], { stride: a.stride, padding: a.padding, dilation: a.dilation });
const inputGrad = (b: RuleBuilder, dy: number, w: number, a: ConvAttrs, size: readonly number[]) =>
  b.op("conv2d_input_grad", [dy, w], { stride: a.stride, padding: a.padding, dilation: a.dilation, input_size: [size[0], size[1]] });
const filterGrad = (b: RuleBuilder, x: number, dy: number, a: ConvAttrs, size: readonly number[]) =>
  b.op("conv2d_filter_grad", [x, dy], { stride: a.stride, padding: a.padding, dilation: a.dilation, kernel_size: [size[0], size[1]] });

export const conv2d = defineOp<ConvAttrs>({
  name: "conv2d",
  operands: "x [N, C, H, W], w [O, C, KH, KW]",
  sparsity: conv2dSparsity,
  tensorCases: [
    {
      name: "stride, padding, dilation",
      args: [{ shape: [2, 2, 5, 6] }, { shape: [3, 2, 3, 2] }],
      attrs: { stride: [2, 1], padding: [1, 0, 2, 1], dilation: [1, 2] },
    },
    { name: "1×1", args: [{ shape: [1, 3, 4, 4] }, { shape: [2, 3, 1, 1] }] },
  ],
  kind: "structural",
  arity: 2,
  summary: "2-D convolution (cross-correlation), NCHW: x [N, C, H, W] ⋆ w [O, C, KH, KW] with stride, padding, dilation",
  attrNames: ["stride", "padding", "dilation"],
  // Multiply-adds: each output element sums C·KH·KW products.
  cost: ([, w], out) => extentOf(out) * extentOf(w.slice(1)),
  normalizeAttrs: (attrs, [x, w]) => {
    const a = convAttrs(attrs, []);
    if (x.length !== 4 || w.length !== 4)
      throw new OpRuleError(`conv2d needs x [N, C, H, W] and w [O, C, KH, KW], got ${formatShape(x)} and ${formatShape(w)}`);
    if (x[1] !== w[1]) throw new OpRuleError(`x has ${x[1]} channels but w expects ${w[1]} (x ${formatShape(x)}, w ${formatShape(w)})`);
    convOutput(x, w, a);
    return a;
  },
  shape: ([x, w], attrs) => [x[0], w[0], ...convOutput(x, w, attrs)],
  kernel: ({ argShapes: [x, w], attrs, float32 }) => {
    const g = geometry(x, w, attrs);
    const workspace = workspaceFor(g, float32);
    return ([input, filter], out) => conv2dKernel(g, input as FloatArray, filter as FloatArray, out as FloatArray, { workspace });
  },
  linear: "bilinear",
  vjp: (b, [x, w], _out, ct, needs, a) => [
    needs[0] ? inputGrad(b, ct, w, a, b.shape(x).slice(2)) : null,
    needs[1] ? filterGrad(b, x, ct, a, b.shape(w).slice(2)) : null,
  ],
});

/** ∂⟨conv2d(x, w), dy⟩/∂x: the transposed convolution of dy by w, back to the input's size. */
export const conv2dInputGrad = defineOp<InputGradAttrs>({
  name: "conv2d_input_grad",
  operands: "dy [N, O, OH, OW], w [O, C, KH, KW]",
  sparsity: conv2dInputGradSparsity,
  tensorCases: [
    {
      name: "stride, padding, dilation",
      args: [{ shape: [2, 3, 3, 6] }, { shape: [3, 2, 3, 2] }],
      attrs: { stride: [2, 1], padding: 1, dilation: [1, 2], input_size: [5, 6] },
    },
  ],
  kind: "structural",
  arity: 2,
  summary: "the derivative of conv2d with respect to its input: the transposed convolution of dy [N, O, OH, OW] by w",
  attrNames: ["stride", "padding", "dilation", "input_size"],
  // The forward product's multiply-adds, run backwards: each dy element meets C·KH·KW weights.
  cost: ([dy, w]) => extentOf(dy) * extentOf(w.slice(1)),
  normalizeAttrs: (attrs, [dy, w]) => {
    const a = convAttrs(attrs, ["input_size"]);
    const size = pairAttr(a.input_size, "input_size", 0, 1);
    const [oh, ow] = convOutput([dy[0], w[1], ...size], w, a);
    if (dy.length !== 4 || dy[1] !== w[0] || dy[2] !== oh || dy[3] !== ow) {
      throw new OpRuleError(
        `dy has shape ${formatShape(dy)}, expected [${dy[0]}, ${w[0]}, ${oh}, ${ow}] for w ${formatShape(w)} and input size ${formatShape(size)}`,
      );
    }
    return { ...a, input_size: size };
  },
  shape: ([dy, w], attrs) => [dy[0], w[1], ...attrs.input_size],
  kernel: ({ argShapes: [dy, w], attrs, float32 }) => {
    const size = attrs.input_size;
    const g = geometry([dy[0], w[1], size[0], size[1]], w, attrs);
    const workspace = workspaceFor(g, float32);
    return ([grad, filter], out) => conv2dInputGradKernel(g, grad as FloatArray, filter as FloatArray, out as FloatArray, { workspace });
  },
  linear: "bilinear",
  // ⟨g, J(dy, w)⟩ = ⟨conv2d(g, w), dy⟩ = ⟨w, filter_grad(g, dy)⟩
  vjp: (b, [dy, w], _out, ct, needs, a) => [
    needs[0] ? conv(b, ct, w, a) : null,
    needs[1] ? filterGrad(b, ct, dy, a, b.shape(w).slice(2)) : null,
  ],
});

/** ∂⟨conv2d(x, w), dy⟩/∂w: the correlation of x with dy, summed over the batch. */
export const conv2dFilterGrad = defineOp<FilterGradAttrs>({
  name: "conv2d_filter_grad",
  operands: "x [N, C, H, W], dy [N, O, OH, OW]",
  sparsity: conv2dFilterGradSparsity,
  tensorCases: [{ name: "padding", args: [{ shape: [2, 2, 5, 6] }, { shape: [2, 3, 5, 6] }], attrs: { padding: 1, kernel_size: [3, 3] } }],
  kind: "structural",
  arity: 2,
  summary: "the derivative of conv2d with respect to its filter: x [N, C, H, W] correlated with dy [N, O, OH, OW]",
  attrNames: ["stride", "padding", "dilation", "kernel_size"],
  // Each filter element sums a product over every image and output position.
  cost: ([, dy], out) => extentOf(out) * extentOf([dy[0], ...dy.slice(2)]),
  normalizeAttrs: (attrs, [x, dy]) => {
    const a = convAttrs(attrs, ["kernel_size"]);
    const size = pairAttr(a.kernel_size, "kernel_size", 0, 1);
    const [oh, ow] = convOutput(x, [dy[1], x[1], ...size], a);
    if (dy.length !== 4 || dy[0] !== x[0] || dy[2] !== oh || dy[3] !== ow) {
      throw new OpRuleError(
        `dy has shape ${formatShape(dy)}, expected [${x[0]}, ${dy[1]}, ${oh}, ${ow}] for x ${formatShape(x)} and kernel ${formatShape(size)}`,
      );
    }
    return { ...a, kernel_size: size };
  },
  shape: ([x, dy], attrs) => [dy[1], x[1], ...attrs.kernel_size],
  kernel: ({ argShapes: [x, dy], attrs, float32 }) => {
    const size = attrs.kernel_size;
    const g = geometry(x, [dy[1], x[1], size[0], size[1]], attrs);
    const workspace = workspaceFor(g, float32);
    return ([input, grad], out) => conv2dFilterGradKernel(g, input as FloatArray, grad as FloatArray, out as FloatArray, { workspace });
  },
  linear: "bilinear",
  // ⟨g, J(x, dy)⟩ = ⟨conv2d(x, g), dy⟩ = ⟨x, input_grad(dy, g)⟩
  vjp: (b, [x, dy], _out, ct, needs, a) => [
    needs[0] ? inputGrad(b, dy, ct, a, b.shape(x).slice(2)) : null,
    needs[1] ? conv(b, x, ct, a) : null,
  ],
});
