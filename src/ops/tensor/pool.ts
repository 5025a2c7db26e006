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
import type { Attrs } from "../types.js";
import { onlyAttrs, pairAttr } from "./attrs.js";
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
};
type PoolGradAttrs = PoolAttrs & { input_size: [number, number] };

function poolAttrs(attrs: Attrs | undefined, x: Shape): PoolAttrs {
  const a = onlyAttrs(attrs, ["kernel", "stride", "padding"]);
  if (x.length !== 4) throw new OpRuleError(`pooling needs x [N, C, H, W], got ${formatShape(x)}`);
  const kernel = pairAttr(a.kernel, "kernel", 0, 1);
  if (a.kernel === undefined) throw new OpRuleError("kernel is required", "attrs.kernel");
  const padding = paddingAttr(a.padding);
  if (padding[0] >= kernel[0] || padding[1] >= kernel[0] || padding[2] >= kernel[1] || padding[3] >= kernel[1]) {
    throw new OpRuleError("padding must be smaller than the kernel on every side", "attrs.padding");
  }
  const p = { kernel, stride: pairAttr(a.stride, "stride", 0, 1), padding };
  if (a.stride === undefined) p.stride = [kernel[0], kernel[1]];
  const [oh, ow] = poolOutput(x, p);
  if (oh < 1 || ow < 1)
    throw new OpRuleError(`the pooling window ${formatShape(kernel)} does not fit the input ${formatShape(x.slice(2))}`);
  return p;
}

function poolOutput(x: Shape, a: PoolAttrs): [number, number] {
  return [
    windowOutputExtent(x[2], a.kernel[0], a.stride[0], a.padding[0], a.padding[1], 1),
    windowOutputExtent(x[3], a.kernel[1], a.stride[1], a.padding[2], a.padding[3], 1),
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
    ...window(a.stride, a.padding),
  };
}

const poolShape = (x: Shape, attrs: PoolAttrs) => [x[0], x[1], ...poolOutput(x, attrs)];
/** Each window visits every element under it (the gradients recompute or revisit the windows too). */
const windowCost = (windows: Shape, a: PoolAttrs) => extentOf(windows) * a.kernel[0] * a.kernel[1];
const samePool = (a: PoolAttrs) => ({ kernel: a.kernel, stride: a.stride, padding: a.padding });

/** What max and average pooling share: one input, the window attributes, shape, cost, and a kernel over windows. */
function windowPooling(pool: (g: Pool2dGeometry, x: FloatArray, y: FloatArray) => void) {
  return {
    kind: "structural" as const,
    arity: 1,
    attrNames: ["kernel", "stride", "padding"],
    cost: (_args: readonly Shape[], out: Shape, attrs: PoolAttrs) => windowCost(out, attrs),
    normalizeAttrs: (attrs: Attrs | undefined, [x]: readonly Shape[]) => ({ ...poolAttrs(attrs, x) }),
    shape: ([x]: readonly Shape[], attrs: PoolAttrs) => poolShape(x, attrs),
    kernel: ({ argShapes: [x], attrs }: { argShapes: readonly Shape[]; attrs: PoolAttrs }) => {
      const g = poolGeometry(x, attrs);
      return ([input]: readonly unknown[], out: unknown) => pool(g, input as FloatArray, out as FloatArray);
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
  sparsity: poolSparsity,
  tensorCases: [
    { name: "stride and padding", args: [{ shape: [2, 2, 5, 5] }], attrs: { kernel: 2, stride: [2, 1], padding: [1, 0, 0, 1] } },
  ],
  ...windowPooling(maxPool2d),
  summary: "maximum over each window, NCHW (kernel, stride = kernel by default, padding never read)",
  jvp: (b, [x], _out, [t], attrs) => (t === null ? null : b.op("max_pool2d_pick", [x, t], samePool(attrs))),
  vjp: (b, [x], _out, ct, _needs, attrs) => [b.op("max_pool2d_grad", [x, ct], samePool(attrs))],
  kinks: { doc: "Each window's derivative goes to its first maximum in row-major window order; ties give it all to that element." },
  secondOrder: "The routing is piecewise constant: derivatives through the choice of maximum are 0.",
});

/** Routes dy to each window's argmax of x: the derivative of max pooling. */
export const maxPool2dGrad = defineOp<PoolAttrs>({
  name: "max_pool2d_grad",
  sparsity: maxPoolGradSparsity,
  kind: "structural",
  arity: 2,
  summary: "the derivative of max_pool2d: each dy [N, C, OH, OW] added at its window's argmax in x",
  attrNames: ["kernel", "stride", "padding"],
  cost: ([, dy], _out, attrs) => windowCost(dy, attrs),
  differentiable: [false, true],
  normalizeAttrs: (attrs, [x, dy]) => {
    const a = poolAttrs(attrs, x);
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
  vjp: (b, [x], _out, ct, _needs, attrs) => [null, b.op("max_pool2d_pick", [x, ct], attrs)],
});

/** t at each window's argmax of x: the tangent of max pooling (and the transpose of its gradient). */
export const maxPool2dPick = defineOp<PoolAttrs>({
  name: "max_pool2d_pick",
  sparsity: poolPickSparsity,
  kind: "structural",
  arity: 2,
  summary: "for each window of x, the element of t at x's argmax (the tangent of max_pool2d)",
  attrNames: ["kernel", "stride", "padding"],
  cost: (_args, out, attrs) => windowCost(out, attrs),
  differentiable: [false, true],
  normalizeAttrs: (attrs, [x, t]) => {
    if (x.length !== t.length || x.some((d, i) => d !== t[i]))
      throw new OpRuleError(`t has shape ${formatShape(t)}, expected x's ${formatShape(x)}`);
    return { ...poolAttrs(attrs, x) };
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
  vjp: (b, [x], _out, ct, _needs, attrs) => [null, b.op("max_pool2d_grad", [x, ct], attrs)],
});

export const avgPool2dOp = defineOp<PoolAttrs>({
  name: "avg_pool2d",
  sparsity: poolSparsity,
  tensorCases: [{ name: "padding", args: [{ shape: [1, 2, 5, 4] }], attrs: { kernel: [3, 2], stride: 1, padding: 1 } }],
  ...windowPooling(avgPool2d),
  summary: "mean over each window, NCHW; padding is not counted (the divisor is the number of elements inside the input)",
  linear: "linear",
  vjp: (b, [x], _out, ct, _needs, attrs) => [b.op("avg_pool2d_grad", [ct], { ...samePool(attrs), input_size: b.shape(x).slice(2) })],
});

/** Spreads each dy evenly over its window: the derivative (and transpose) of average pooling. */
export const avgPool2dGrad = defineOp<PoolGradAttrs>({
  name: "avg_pool2d_grad",
  sparsity: avgPoolGradSparsity,
  tensorCases: [{ name: "back to 4×4", args: [{ shape: [1, 2, 2, 2] }], attrs: { kernel: 2, input_size: [4, 4] } }],
  kind: "structural",
  arity: 1,
  summary: "the derivative of avg_pool2d: each dy spread evenly over its window, back to the input size",
  attrNames: ["kernel", "stride", "padding", "input_size"],
  cost: ([dy], _out, attrs) => windowCost(dy, attrs),
  normalizeAttrs: (attrs, [dy]) => {
    const a = onlyAttrs(attrs, ["kernel", "stride", "padding", "input_size"]);
    const size = pairAttr(a.input_size, "input_size", 0, 1);
    const x = [dy[0], dy[1], size[0], size[1]];
    const p = poolAttrs({ kernel: a.kernel, stride: a.stride, padding: a.padding }, x);
    const expected = poolShape(x, p);
    if (dy.some((d, i) => d !== expected[i])) throw new OpRuleError(`dy has shape ${formatShape(dy)}, expected ${formatShape(expected)}`);
    return { ...p, input_size: size };
  },
  shape: ([dy], attrs) => [dy[0], dy[1], ...attrs.input_size],
  kernel: ({ argShapes: [dy], attrs }) => {
    const size = attrs.input_size;
    const g = poolGeometry([dy[0], dy[1], size[0], size[1]], attrs);
    return ([grad], out) => avgPool2dBackward(g, grad as FloatArray, out as FloatArray);
  },
  linear: "linear",
  vjp: (b, _args, _out, ct, _needs, attrs) => [b.op("avg_pool2d", [ct], samePool(attrs))],
});
