import { OpRuleError } from "../../errors.js";
import { formatShape, sameShape } from "../../tensor/shape.js";
import { defineOp } from "../define.js";
import type { Attrs, RuleBuilder } from "../types.js";
import { axisAttr, onlyAttrs } from "./attrs.js";

/**
 * Neural-network ops, all composites: each expands into primitives when built, so their derivatives
 * (of any order) come from the primitives' rules, and the stable forms are written once, here.
 */

const axisOnly = (attrs: Attrs | undefined, shape: readonly number[]) => {
  if (shape.length === 0) throw new OpRuleError("needs a tensor of rank ≥ 1");
  return { axis: axisAttr(onlyAttrs(attrs, ["axis"]).axis, shape.length, shape.length - 1) };
};

/** x − max(x) along the axis, the max held constant: exact, since these functions are shift invariant. */
function shifted(b: RuleBuilder, x: number, axis: number): number {
  return b.sub(x, b.op("stop_gradient", [b.op("amax", [x], { axes: [axis], keepdims: true })]));
}

function logSoftmaxOf(b: RuleBuilder, x: number, axis: number): number {
  const z = shifted(b, x, axis);
  return b.sub(z, b.op("log", [b.op("sum", [b.op("exp", [z])], { axes: [axis], keepdims: true })]));
}

export const softmax = defineOp<{ axis: number }>({
  name: "softmax",
  tensorCases: [{ name: "last axis", args: [{ shape: [2, 5] }] }],
  kind: "composite",
  arity: 1,
  summary: "exp(x) / Σ exp(x) along an axis (default last), stable for large inputs",
  attrNames: ["axis"],
  normalizeAttrs: (attrs, [shape]) => axisOnly(attrs, shape),
  expand: (b, [x], { axis }) => {
    const e = b.op("exp", [shifted(b, x, axis)]);
    return b.div(e, b.op("sum", [e], { axes: [axis], keepdims: true }));
  },
});

export const logSoftmax = defineOp<{ axis: number }>({
  name: "log_softmax",
  tensorCases: [{ name: "axis 0", args: [{ shape: [3, 2] }], attrs: { axis: 0 } }],
  kind: "composite",
  arity: 1,
  summary: "x − logsumexp(x) along an axis (default last), stable",
  attrNames: ["axis"],
  normalizeAttrs: (attrs, [shape]) => axisOnly(attrs, shape),
  expand: (b, [x], { axis }) => logSoftmaxOf(b, x, axis),
});

function meanAll(b: RuleBuilder, x: number): number {
  return b.op("mean", [x], {});
}

export const softmaxCrossEntropy = defineOp({
  name: "softmax_cross_entropy",
  operands: "logits [N, C], labels: integer [N] or target distributions [N, C]",
  tensorCases: [
    { name: "integer labels", args: [{ shape: [4, 3] }, { shape: [4], ints: [2, 0, 1, 2] }] },
    { name: "targets", args: [{ shape: [2, 3] }, { shape: [2, 3], range: [0, 1] }] },
  ],
  kind: "composite",
  arity: 2,
  summary: "mean cross-entropy of softmax(logits [N, C]) against integer labels [N] or target distributions [N, C]",
  aliases: ["cross_entropy"],
  differentiable: [true, true],
  expand: (b, [logits, labels]) => {
    const shape = b.shape(logits);
    const lShape = b.shape(labels);
    if (shape.length < 1) throw new OpRuleError("logits must have a class axis");
    const logp = logSoftmaxOf(b, logits, shape.length - 1);
    let targets: number;
    if (b.dtype(labels) === "int") {
      if (!sameShape(lShape, shape.slice(0, -1))) {
        throw new OpRuleError(
          `integer labels have shape ${formatShape(lShape)}, expected ${formatShape(shape.slice(0, -1))} for logits ${formatShape(shape)}`,
        );
      }
      targets = b.op("one_hot", [labels], { depth: shape[shape.length - 1] });
    } else {
      if (!sameShape(lShape, shape)) {
        throw new OpRuleError(
          `targets have shape ${formatShape(lShape)}, expected the logits' shape ${formatShape(shape)} (or integer labels)`,
        );
      }
      targets = labels;
    }
    const perExample = b.neg(b.op("sum", [b.mul(targets, logp)], { axes: [shape.length - 1], keepdims: false }));
    return meanAll(b, perExample);
  },
});

export const bceWithLogits = defineOp({
  name: "binary_cross_entropy_with_logits",
  operands: "z (logits), y (targets in [0, 1], z's shape)",
  tensorCases: [{ name: "vector", args: [{ shape: [5] }, { shape: [5], range: [0, 1] }] }],
  kind: "composite",
  arity: 2,
  summary: "mean of softplus(z) − z·y: binary cross-entropy of sigmoid(z) against targets y, stable for large |z|",
  aliases: ["bce_with_logits"],
  expand: (b, [z, y]) => {
    if (!sameShape(b.shape(z), b.shape(y)))
      throw new OpRuleError(`logits ${formatShape(b.shape(z))} and targets ${formatShape(b.shape(y))} differ in shape`);
    return meanAll(b, b.sub(b.op("softplus", [z]), b.mul(z, y)));
  },
});

export const mse = defineOp({
  name: "mse",
  operands: "prediction, target (the same shape)",
  tensorCases: [{ name: "matrix", args: [{ shape: [2, 3] }, { shape: [2, 3] }] }],
  kind: "composite",
  arity: 2,
  summary: "mean squared error: mean((prediction − target)²)",
  aliases: ["mean_squared_error"],
  expand: (b, [p, t]) => {
    if (!sameShape(b.shape(p), b.shape(t)))
      throw new OpRuleError(`prediction ${formatShape(b.shape(p))} and target ${formatShape(b.shape(t))} differ in shape`);
    return meanAll(b, b.op("square", [b.sub(p, t)]));
  },
});

export const layerNorm = defineOp<{ eps: number }>({
  name: "layer_norm",
  operands: "x, then optionally gamma (scale) and beta (shift), each [last axis of x]",
  tensorCases: [{ name: "with gain and bias", args: [{ shape: [3, 4] }, { shape: [4] }, { shape: [4] }] }],
  kind: "composite",
  arity: { min: 1, max: 3 },
  summary: "(x − mean) / √(var + eps) over the last axis, then · gamma + beta when given",
  attrNames: ["eps"],
  normalizeAttrs: (attrs, shapes) => {
    const a = onlyAttrs(attrs, ["eps"]);
    const eps = a.eps ?? 1e-5;
    if (typeof eps !== "number" || !(eps >= 0)) throw new OpRuleError("eps must be a non-negative number", "attrs.eps");
    const last = shapes[0][shapes[0].length - 1];
    shapes.slice(1).forEach((s, k) => {
      if (s.length !== 1 || s[0] !== last)
        throw new OpRuleError(`${k === 0 ? "gamma" : "beta"} has shape ${formatShape(s)}, expected [${last}]`);
    });
    if (shapes[0].length === 0) throw new OpRuleError("layer_norm needs a tensor of rank ≥ 1");
    return { eps };
  },
  expand: (b, [x, gamma, beta], attrs) => {
    const axis = b.shape(x).length - 1;
    const keep = { axes: [axis], keepdims: true };
    const centred = b.sub(x, b.op("mean", [x], keep));
    const variance = b.op("mean", [b.op("square", [centred])], keep);
    let y = b.div(centred, b.op("sqrt", [b.add(variance, b.constant(attrs.eps))]));
    if (gamma !== undefined) y = b.mul(y, gamma);
    if (beta !== undefined) y = b.add(y, beta);
    return y;
  },
});

export const gelu = defineOp({
  name: "gelu",
  tensorCases: [{ name: "matrix", args: [{ shape: [2, 3] }] }],
  kind: "composite",
  arity: 1,
  summary: "x·Φ(x) = ½x(1 + erf(x/√2)), the exact form",
  expand: (b, [x]) => b.mul(b.mul(b.constant(0.5), x), b.add(b.constant(1), b.op("erf", [b.mul(x, b.constant(Math.SQRT1_2))]))),
});
