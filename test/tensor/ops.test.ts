import { describe, expect, it } from "vitest";
import { rng } from "../core/helpers.js";
import { caseGraph, evaluate, fdGradient, gradient, jvp, type OpCase, samplePoint } from "./harness.js";

const m = (shape: number[], range?: [number, number]) => ({ shape, range });

/** Every tensor op, on shapes that exercise broadcasting, every reduction axis, transposes and batching. */
const cases: [string, OpCase][] = [
  ["add broadcasting [3,1]+[1,4]", { op: "add", args: [m([3, 1]), m([1, 4])] }],
  ["mul broadcasting [2,3]·[3]", { op: "mul", args: [m([2, 3]), m([3])] }],
  ["div scalar/[2,2]", { op: "div", args: [m([]), m([2, 2], [0.5, 2])] }],
  ["pow [2,3]^[]", { op: "pow", args: [m([2, 3], [0.3, 2]), m([])] }],
  ["atan2 [4]·[2,1]", { op: "atan2", args: [m([4]), m([2, 1], [0.5, 2])] }],
  ["max broadcasting", { op: "max", args: [m([3, 2]), m([2])] }],
  ["select broadcasting", { op: "select", args: [m([2, 3]), m([3]), m([2, 1])] }],
  ["reshape", { op: "reshape", args: [m([2, 6])], attrs: { shape: [3, -1] } }],
  ["broadcast_to", { op: "broadcast_to", args: [m([3, 1])], attrs: { shape: [2, 3, 4] } }],
  ["transpose default", { op: "transpose", args: [m([2, 3, 4])] }],
  ["transpose perm", { op: "transpose", args: [m([2, 3, 4])], attrs: { perm: [1, 2, 0] } }],
  ["slice with steps and negatives", { op: "slice", args: [m([5, 6])], attrs: { begin: [1, -5], end: [null, -1], step: [2, 3] } }],
  ["pad with interior", { op: "pad", args: [m([2, 3])], attrs: { before: [1, 0], after: [0, 2], interior: [1, 2], value: 0.5 } }],
  ["concat axis 1", { op: "concat", args: [m([2, 3]), m([2, 1]), m([2, 2])], attrs: { axis: 1 } }],
  ["stack axis -1", { op: "stack", args: [m([2, 3]), m([2, 3])], attrs: { axis: -1 } }],
  ["squeeze", { op: "squeeze", args: [m([3, 1, 2])] }],
  ["expand_dims", { op: "expand_dims", args: [m([3, 2])], attrs: { axis: 1 } }],
  ["flatten", { op: "flatten", args: [m([2, 3, 2])] }],
  ["sum all", { op: "sum", args: [m([3, 4])] }],
  ["sum axis 0", { op: "sum", args: [m([3, 4])], attrs: { axis: 0 } }],
  ["sum axis -1 keepdims", { op: "sum", args: [m([3, 4])], attrs: { axis: -1, keepdims: true } }],
  ["sum axes [0,2]", { op: "sum", args: [m([2, 3, 4])], attrs: { axes: [0, 2] } }],
  ["mean axis 1", { op: "mean", args: [m([3, 4])], attrs: { axis: 1 } }],
  ["amax axis 0", { op: "amax", args: [m([4, 3])], attrs: { axis: 0 } }],
  ["amin all", { op: "amin", args: [m([3, 3])] }],
  ["prod axis 1", { op: "prod", args: [m([3, 4], [0.5, 1.5])], attrs: { axis: 1 } }],
  ["logsumexp axis 1", { op: "logsumexp", args: [m([3, 4])], attrs: { axis: 1 } }],
  ["matmul", { op: "matmul", args: [m([3, 4]), m([4, 5])] }],
  ["matmul Aᵀ", { op: "matmul", args: [m([4, 3]), m([4, 5])], attrs: { transpose_a: true } }],
  ["matmul Bᵀ", { op: "matmul", args: [m([3, 4]), m([5, 4])], attrs: { transpose_b: true } }],
  ["matmul AᵀBᵀ", { op: "matmul", args: [m([4, 3]), m([5, 4])], attrs: { transpose_a: true, transpose_b: true } }],
  ["matmul batched", { op: "matmul", args: [m([2, 3, 4]), m([2, 4, 2])] }],
  ["matmul broadcast batch", { op: "matmul", args: [m([1, 3, 4]), m([2, 4, 2])] }],
  ["matmul batch × matrix", { op: "matmul", args: [m([2, 3, 4]), m([4, 2])] }],
  ["gather axis 0", { op: "gather", args: [m([4, 3]), { shape: [5], ints: [3, 0, 1, 3, -1] }], attrs: { axis: 0 } }],
  ["gather axis 1", { op: "gather", args: [m([2, 4]), { shape: [2, 2], ints: [1, 1, 0, 3] }], attrs: { axis: 1 } }],
  ["scatter_add", { op: "scatter_add", args: [m([2, 3]), { shape: [3], ints: [0, 2, 0] }], attrs: { axis: 1, shape: [2, 4] } }],
  ["softmax", { op: "softmax", args: [m([2, 5])] }],
  ["log_softmax axis 0", { op: "log_softmax", args: [m([3, 2])], attrs: { axis: 0 } }],
  ["softmax_cross_entropy integer labels", { op: "softmax_cross_entropy", args: [m([4, 3]), { shape: [4], ints: [2, 0, 1, 2] }] }],
  ["softmax_cross_entropy targets", { op: "softmax_cross_entropy", args: [m([2, 3]), m([2, 3], [0, 1])] }],
  ["binary_cross_entropy_with_logits", { op: "binary_cross_entropy_with_logits", args: [m([5]), m([5], [0, 1])] }],
  ["mse", { op: "mse", args: [m([2, 3]), m([2, 3])] }],
  ["layer_norm", { op: "layer_norm", args: [m([3, 4]), m([4]), m([4])] }],
  ["gelu", { op: "gelu", args: [m([2, 3])] }],
];

describe.each(cases)("tensor op: %s", (_name, c) => {
  it("reverse mode matches central differences on every element", () => {
    const { graph } = caseGraph(c);
    for (const seed of [1, 2]) {
      const x = samplePoint(c, seed);
      const ad = gradient(graph, x);
      const fd = fdGradient(graph, x);
      ad.forEach((g, k) => {
        g.forEach((v, i) => {
          expect(Math.abs(v - fd[k][i]), `∂/∂a${k}[${i}]: AD ${v}, FD ${fd[k][i]}`).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(fd[k][i])));
        });
      });
    }
  });

  it("forward and reverse agree: jvp(u) = ∇·u", () => {
    const { graph } = caseGraph(c);
    const x = samplePoint(c, 3);
    const next = rng(5);
    const u = x.map((xk) => Float64Array.from(xk, () => next() * 2 - 1));
    const g = gradient(graph, x);
    const dot = g.reduce((s, gk, k) => s + gk.reduce((t, v, i) => t + v * u[k][i], 0), 0);
    expect(Math.abs(jvp(graph, x, u) - dot)).toBeLessThanOrEqual(1e-11 * (1 + Math.abs(dot)));
  });

  it("float32 programs agree with float64 to single precision", () => {
    const { graph } = caseGraph(c);
    const x = samplePoint(c, 4);
    const f64 = evaluate(graph, x);
    expect(Math.abs(evaluate(graph, x, "float32") - f64)).toBeLessThanOrEqual(2e-5 * (1 + Math.abs(f64)));
  });
});

describe.each([
  [
    "conv2d",
    { op: "conv2d", args: [m([2, 2, 5, 6]), m([3, 2, 3, 2])], attrs: { stride: [2, 1], padding: [1, 0, 2, 1], dilation: [1, 2] } },
  ],
  ["conv2d 1×1", { op: "conv2d", args: [m([1, 3, 4, 4]), m([2, 3, 1, 1])] }],
  [
    "conv2d_input_grad",
    {
      op: "conv2d_input_grad",
      args: [m([2, 3, 3, 6]), m([3, 2, 3, 2])],
      attrs: { stride: [2, 1], padding: 1, dilation: [1, 2], input_size: [5, 6] },
    },
  ],
  [
    "conv2d_filter_grad",
    { op: "conv2d_filter_grad", args: [m([2, 2, 5, 6]), m([2, 3, 5, 6])], attrs: { padding: 1, kernel_size: [3, 3] } },
  ],
  ["max_pool2d", { op: "max_pool2d", args: [m([2, 2, 5, 5])], attrs: { kernel: 2, stride: [2, 1], padding: [1, 0, 0, 1] } }],
  ["avg_pool2d", { op: "avg_pool2d", args: [m([1, 2, 5, 4])], attrs: { kernel: [3, 2], stride: 1, padding: 1 } }],
  ["avg_pool2d_grad", { op: "avg_pool2d_grad", args: [m([1, 2, 2, 2])], attrs: { kernel: 2, input_size: [4, 4] } }],
] as [string, OpCase][])("convolution and pooling: %s", (_name, c) => {
  it("reverse mode matches central differences on every element", () => {
    const { graph } = caseGraph(c);
    const x = samplePoint(c, 11);
    const ad = gradient(graph, x);
    const fd = fdGradient(graph, x);
    ad.forEach((g, k) => {
      g.forEach((v, i) => {
        expect(Math.abs(v - fd[k][i]), `∂/∂a${k}[${i}]: AD ${v}, FD ${fd[k][i]}`).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(fd[k][i])));
      });
    });
  });
  it("forward and reverse agree", () => {
    const { graph } = caseGraph(c);
    const x = samplePoint(c, 12);
    const next = rng(13);
    const u = x.map((xk) => Float64Array.from(xk, () => next() * 2 - 1));
    const dot = gradient(graph, x).reduce((s, gk, k) => s + gk.reduce((t, v, i) => t + v * u[k][i], 0), 0);
    expect(Math.abs(jvp(graph, x, u) - dot)).toBeLessThanOrEqual(1e-11 * (1 + Math.abs(dot)));
  });
});

describe("matmul with partly broadcast batch axes", () => {
  it("matches differences", () => {
    const c: OpCase = { op: "matmul", args: [m([2, 1, 3, 4]), m([1, 3, 4, 2])] };
    const { graph } = caseGraph(c);
    const x = samplePoint(c, 21);
    const ad = gradient(graph, x);
    const fd = fdGradient(graph, x);
    ad.forEach((g, k) => {
      g.forEach((v, i) => {
        expect(Math.abs(v - fd[k][i])).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(fd[k][i])));
      });
    });
  });
});
