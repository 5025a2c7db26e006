import { OpRuleError } from "../../errors.js";
import {
  avgPool2d,
  avgPool2dBackward,
  type FloatArray,
  maxPool2d,
  maxPool2dBackwardFromArgmax,
  type Pool2dGeometry,
} from "../../tensor/kernels/index.js";
import { extentOf, formatShape, type Shape, sizeOf, windowOutputExtent } from "../../tensor/shape.js";
import { defineOp } from "../define.js";
import type { Attrs, SparsityRule, SparsitySpec } from "../types.js";
import { boolAttr, onlyAttrs, pairAttr } from "./attrs.js";
import { paddingAttr, window } from "./window.js";
import { avgPoolGradSparsity, maxPoolGradSparsity, poolPickSparsity, poolSparsity } from "./window-sparsity.js";

/**
 * Pooling, NCHW. Like convolution (conv.ts), each derivative is an op with its own rules, so second
 * derivatives through pooling work like any other.
 */

type PoolAttrs = {
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number, number, number];
  /**
   * torch's ceil_mode: the output extent rounded up, the last window hanging past the padding. Both
   * flags are present only when true, so that a pooling without them keeps its attributes (and the
   * function its content hash) as before they existed.
   */
  ceil_mode?: true;
  /** torch's count_include_pad (average pooling only): padding counts in each window's divisor. */
  count_include_pad?: true;
};
type PoolGradAttrs = PoolAttrs & { input_size: [number, number] };

const MAX_ATTRS = ["kernel", "stride", "padding", "ceil_mode"];
const AVG_ATTRS = [...MAX_ATTRS, "count_include_pad"];

function poolAttrs(attrs: Attrs | undefined, x: Shape, names: readonly string[]): PoolAttrs {
  const a = onlyAttrs(attrs, names);
  if (x.length !== 4) throw new OpRuleError(`pooling needs x [N, C, H, W], got ${formatShape(x)}`);
  const kernel = pairAttr(a.kernel, "kernel", 0, 1);
  if (a.kernel === undefined) throw new OpRuleError("kernel is required", "attrs.kernel");
  const padding = paddingAttr(a.padding);
  if (padding[0] >= kernel[0] || padding[1] >= kernel[0] || padding[2] >= kernel[1] || padding[3] >= kernel[1]) {
    throw new OpRuleError("padding must be smaller than the kernel on every side", "attrs.padding");
  }
  const p: PoolAttrs = { kernel, stride: pairAttr(a.stride, "stride", 0, 1), padding, ...flags(a) };
  if (a.stride === undefined) p.stride = [kernel[0], kernel[1]];
  const [oh, ow] = poolOutput(x, p);
  if (oh < 1 || ow < 1)
    throw new OpRuleError(`the pooling window ${formatShape(kernel)} does not fit the input ${formatShape(x.slice(2))}`);
  return p;
}

function flags(a: Record<string, unknown>): Pick<PoolAttrs, "ceil_mode" | "count_include_pad"> {
  return {
    ...(boolAttr(a.ceil_mode, "ceil_mode", false) ? { ceil_mode: true } : {}),
    ...(boolAttr(a.count_include_pad, "count_include_pad", false) ? { count_include_pad: true } : {}),
  };
}

/**
 * The bottom and right padding that ceil mode adds so that the floor rule gives torch's rounded-up
 * extent: ceil((H + pads − K) / s) + 1 windows, less the last if it would start past the input and
 * its leading padding. Every kernel and sparsity rule then reads the windows as ordinary padding.
 */
function ceilExtra(x: Shape, a: PoolAttrs): [number, number] {
  if (!a.ceil_mode) return [0, 0];
  const extra = (input: number, k: number, s: number, before: number, after: number) => {
    let n = Math.ceil((input + before + after - k) / s) + 1;
    if ((n - 1) * s >= input + before) n--;
    return Math.max(0, (n - 1) * s + k - (input + before + after));
  };
  return [
    extra(x[2], a.kernel[0], a.stride[0], a.padding[0], a.padding[1]),
    extra(x[3], a.kernel[1], a.stride[1], a.padding[2], a.padding[3]),
  ];
}

/** The padding the windows are laid over: the attribute's, plus ceil mode's extra. */
function windowPadding(x: Shape, a: PoolAttrs): [number, number, number, number] {
  const [eh, ew] = ceilExtra(x, a);
  return [a.padding[0], a.padding[1] + eh, a.padding[2], a.padding[3] + ew];
}

function poolOutput(x: Shape, a: PoolAttrs): [number, number] {
  const p = windowPadding(x, a);
  return [
    windowOutputExtent(x[2], a.kernel[0], a.stride[0], p[0], p[1], 1),
    windowOutputExtent(x[3], a.kernel[1], a.stride[1], p[2], p[3], 1),
  ];
}

function poolGeometry(x: Shape, a: PoolAttrs): Pool2dGeometry {
  return {
    batch: x[0],
    channels: x[1],
    inHeight: x[2],
    inWidth: x[3],
    kernelHeight: a.kernel[0],
    kernelWidth: a.kernel[1],
    ...window(a.stride, windowPadding(x, a)),
  };
}

/** A window sparsity rule over the padding the windows really have (ceil mode's included). */
function overWindows<A extends PoolAttrs>(rule: SparsityRule<A>, xOf: (s: SparsitySpec<A>) => Shape): SparsityRule<A> {
  return (spec) => rule({ ...spec, attrs: { ...spec.attrs, padding: windowPadding(xOf(spec), spec.attrs) } });
}
const xFirst = <A extends PoolAttrs>(s: SparsitySpec<A>) => s.argShapes[0];

const avgOptions = (x: Shape, a: PoolAttrs) => ({ countIncludePad: a.count_include_pad === true, ceilExtra: ceilExtra(x, a) });

const poolShape = (x: Shape, attrs: PoolAttrs) => [x[0], x[1], ...poolOutput(x, attrs)];
/** Each window visits every element under it (the gradients recompute or revisit the windows too). */
const windowCost = (windows: Shape, a: PoolAttrs) => extentOf(windows) * a.kernel[0] * a.kernel[1];
const samePool = (a: PoolAttrs) => ({
  kernel: a.kernel,
  stride: a.stride,
  padding: a.padding,
  ...(a.ceil_mode ? { ceil_mode: true } : {}),
});
const sameAvgPool = (a: PoolAttrs) => ({ ...samePool(a), ...(a.count_include_pad ? { count_include_pad: true } : {}) });

/** What max and average pooling share: one input, the window attributes, shape, cost, and a kernel over windows. */
function windowPooling(
  names: readonly string[],
  pool: (g: Pool2dGeometry, x: FloatArray, y: FloatArray, xShape: Shape, a: PoolAttrs) => void,
) {
  return {
    kind: "structural" as const,
    arity: 1,
    attrNames: [...names],
    cost: (_args: readonly Shape[], out: Shape, attrs: PoolAttrs) => windowCost(out, attrs),
    normalizeAttrs: (attrs: Attrs | undefined, [x]: readonly Shape[]) => ({ ...poolAttrs(attrs, x, names) }),
    shape: ([x]: readonly Shape[], attrs: PoolAttrs) => poolShape(x, attrs),
    kernel: ({ argShapes: [x], attrs }: { argShapes: readonly Shape[]; attrs: PoolAttrs }) => {
      const g = poolGeometry(x, attrs);
      return ([input]: readonly unknown[], out: unknown) => pool(g, input as FloatArray, out as FloatArray, x, attrs);
    },
  };
}

/** Recomputes the argmax of every window of x (the first maximum in row-major window order). */
function argmaxOf(g: Pool2dGeometry, x: Shape, float32: boolean) {
  const outputs =
    sizeOf(
      poolOutput(x, {
        kernel: [g.kernelHeight, g.kernelWidth],
        stride: [g.strideH ?? 1, g.strideW ?? 1],
        padding: [g.padTop ?? 0, g.padBottom ?? 0, g.padLeft ?? 0, g.padRight ?? 0],
      }),
    ) *
    x[0] *
    x[1];
  const values = float32 ? new Float32Array(outputs) : new Float64Array(outputs);
  const argmax = new Int32Array(outputs);
  return (input: FloatArray) => {
    maxPool2d(g, input, values, argmax);
    return argmax;
  };
}

export const maxPool2dOp = defineOp<PoolAttrs>({
  name: "max_pool2d",
  sparsity: overWindows(poolSparsity, xFirst),
  tensorCases: [
    { name: "stride and padding", args: [{ shape: [2, 2, 5, 5] }], attrs: { kernel: 2, stride: [2, 1], padding: [1, 0, 0, 1] } },
    { name: "ceil mode", args: [{ shape: [1, 2, 5, 6] }], attrs: { kernel: [2, 3], stride: 2, padding: [1, 0], ceil_mode: true } },
  ],
  ...windowPooling(MAX_ATTRS, (g, x, y) => maxPool2d(g, x, y)),
  summary:
    "maximum over each window, NCHW (kernel, stride = kernel by default, padding never read; ceil_mode rounds the output extent up as torch does)",
  jvp: (b, [x], _out, [t], attrs) => (t === null ? null : b.op("max_pool2d_pick", [x, t], samePool(attrs))),
  vjp: (b, [x], _out, ct, _needs, attrs) => [b.op("max_pool2d_grad", [x, ct], samePool(attrs))],
  kinks: { doc: "Each window's derivative goes to its first maximum in row-major window order; ties give it all to that element." },
  secondOrder: "The routing is piecewise constant: derivatives through the choice of maximum are 0.",
});

/** Routes dy to each window's argmax of x: the derivative of max pooling. */
export const maxPool2dGrad = defineOp<PoolAttrs>({
  name: "max_pool2d_grad",
  operands: "x [N, C, H, W] (whose argmax routes), dy [N, C, OH, OW]",
  sparsity: overWindows(maxPoolGradSparsity, xFirst),
  kind: "structural",
  arity: 2,
  summary: "the derivative of max_pool2d: each dy [N, C, OH, OW] added at its window's argmax in x",
  attrNames: MAX_ATTRS,
  cost: ([, dy], _out, attrs) => windowCost(dy, attrs),
  differentiable: [false, true],
  normalizeAttrs: (attrs, [x, dy]) => {
    const a = poolAttrs(attrs, x, MAX_ATTRS);
    const expected = poolShape(x, a);
    if (dy.length !== 4 || dy.some((d, i) => d !== expected[i]))
      throw new OpRuleError(`dy has shape ${formatShape(dy)}, expected ${formatShape(expected)}`);
    return { ...a };
  },
  shape: ([x]) => x,
  kernel: ({ argShapes: [x], attrs, float32 }) => {
    const g = poolGeometry(x, attrs);
    const argmax = argmaxOf(g, x, float32);
    return ([input, dy], out) => maxPool2dBackwardFromArgmax(g, argmax(input as FloatArray), dy as FloatArray, out as FloatArray);
  },
  linear: "linear",
  vjp: (b, [x], _out, ct, _needs, attrs) => [null, b.op("max_pool2d_pick", [x, ct], samePool(attrs))],
});

/** t at each window's argmax of x: the tangent of max pooling (and the transpose of its gradient). */
export const maxPool2dPick = defineOp<PoolAttrs>({
  name: "max_pool2d_pick",
  operands: "x [N, C, H, W] (whose argmax picks), t (x's shape)",
  sparsity: overWindows(poolPickSparsity, xFirst),
  kind: "structural",
  arity: 2,
  summary: "for each window of x, the element of t at x's argmax (the tangent of max_pool2d)",
  attrNames: MAX_ATTRS,
  cost: (_args, out, attrs) => windowCost(out, attrs),
  differentiable: [false, true],
  normalizeAttrs: (attrs, [x, t]) => {
    if (x.length !== t.length || x.some((d, i) => d !== t[i]))
      throw new OpRuleError(`t has shape ${formatShape(t)}, expected x's ${formatShape(x)}`);
    return { ...poolAttrs(attrs, x, MAX_ATTRS) };
  },
  shape: ([x], attrs) => poolShape(x, attrs),
  kernel: ({ argShapes: [x], attrs, float32 }) => {
    const g = poolGeometry(x, attrs);
    const argmax = argmaxOf(g, x, float32);
    const plane = x[2] * x[3];
    const perPlane = sizeOf(poolShape(x, attrs).slice(2));
    return ([input, t], out) => {
      const at = argmax(input as FloatArray);
      for (let o = 0; o < at.length; o++) {
        const base = Math.floor(o / perPlane) * plane;
        out[o] = at[o] < 0 ? 0 : t[base + at[o]];
      }
    };
  },
  linear: "linear",
  vjp: (b, [x], _out, ct, _needs, attrs) => [null, b.op("max_pool2d_grad", [x, ct], samePool(attrs))],
});

export const avgPool2dOp = defineOp<PoolAttrs>({
  name: "avg_pool2d",
  sparsity: overWindows(poolSparsity, xFirst),
  tensorCases: [
    { name: "padding", args: [{ shape: [1, 2, 5, 4] }], attrs: { kernel: [3, 2], stride: 1, padding: 1 } },
    {
      name: "padding counted, ceil mode",
      args: [{ shape: [1, 2, 6, 7] }],
      attrs: { kernel: [3, 2], stride: [2, 3], padding: [1, 1], count_include_pad: true, ceil_mode: true },
    },
    { name: "ceil mode", args: [{ shape: [2, 1, 6, 5] }], attrs: { kernel: 2, stride: [2, 2], padding: [1, 0], ceil_mode: true } },
  ],
  ...windowPooling(AVG_ATTRS, (g, x, y, xShape, a) => avgPool2d(g, x, y, avgOptions(xShape, a))),
  summary:
    "mean over each window, NCHW; by default padding is not counted (the divisor is the number of elements inside the input): count_include_pad counts it, and ceil_mode rounds the output extent up, as torch's options do",
  linear: "linear",
  vjp: (b, [x], _out, ct, _needs, attrs) => [b.op("avg_pool2d_grad", [ct], { ...sameAvgPool(attrs), input_size: b.shape(x).slice(2) })],
});

/** Spreads each dy evenly over its window: the derivative (and transpose) of average pooling. */
export const avgPool2dGrad = defineOp<PoolGradAttrs>({
  name: "avg_pool2d_grad",
  operands: "dy [N, C, OH, OW]",
  sparsity: overWindows<PoolGradAttrs>(avgPoolGradSparsity, (s) => [s.argShapes[0][0], s.argShapes[0][1], ...s.attrs.input_size]),
  tensorCases: [
    { name: "back to 4×4", args: [{ shape: [1, 2, 2, 2] }], attrs: { kernel: 2, input_size: [4, 4] } },
    {
      name: "padding counted, ceil mode",
      args: [{ shape: [1, 1, 3, 3] }],
      attrs: { kernel: 3, stride: 2, padding: 1, count_include_pad: true, ceil_mode: true, input_size: [4, 4] },
    },
  ],
  kind: "structural",
  arity: 1,
  summary: "the derivative of avg_pool2d: each dy spread evenly over its window, back to the input size",
  attrNames: [...AVG_ATTRS, "input_size"],
  cost: ([dy], _out, attrs) => windowCost(dy, attrs),
  normalizeAttrs: (attrs, [dy]) => {
    const { input_size, ...pool } = onlyAttrs(attrs, [...AVG_ATTRS, "input_size"]);
    const size = pairAttr(input_size, "input_size", 0, 1);
    const x = [dy[0], dy[1], size[0], size[1]];
    const p = poolAttrs(pool as Attrs, x, AVG_ATTRS);
    const expected = poolShape(x, p);
    if (dy.some((d, i) => d !== expected[i])) throw new OpRuleError(`dy has shape ${formatShape(dy)}, expected ${formatShape(expected)}`);
    return { ...p, input_size: size };
  },
  shape: ([dy], attrs) => [dy[0], dy[1], ...attrs.input_size],
  kernel: ({ argShapes: [dy], attrs }) => {
    const size = attrs.input_size;
    const x = [dy[0], dy[1], size[0], size[1]];
    const g = poolGeometry(x, attrs);
    const options = avgOptions(x, attrs);
    return ([grad], out) => avgPool2dBackward(g, grad as FloatArray, out as FloatArray, options);
  },
  linear: "linear",
  vjp: (b, _args, _out, ct, _needs, attrs) => [b.op("avg_pool2d", [ct], sameAvgPool(attrs))],
});
