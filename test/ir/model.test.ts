import { describe, expect, it } from "vitest";
import { generateW3, W3_REFERENCE_LOSS, w3LossAndGradient, w3Workspace, w3ZeroParams } from "../../bench/workloads/w3.js";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import type { Tensor } from "../../src/engine/values.js";
import { compileModel, initializeParameters, type ModelDefinition } from "../../src/ir/model.js";
import { rng } from "../support/numeric.js";

const mlp: ModelDefinition = {
  input: [784],
  layers: [{ type: "dense", units: 256, name: "fc1" }, { type: "relu" }, { type: "dense", units: 10, name: "fc2" }],
  loss: "softmax_cross_entropy",
};

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++)
    worst = Math.max(worst, Math.abs(a[i] - b[i]) / (1e-12 + Math.max(Math.abs(a[i]), Math.abs(b[i]), 1e-3)));
  return worst;
}

describe("a two-layer network (the W3 training step)", () => {
  const d = generateW3();
  const model = compileModel(mlp, 128);
  const fn = new CompiledFunction(model.graph);
  const point = {
    x: { shape: [128, 784], data: d.X },
    y: { shape: [128], data: d.labels },
    "fc1.weight": { shape: [784, 256], data: d.W1 },
    "fc1.bias": { shape: [256], data: d.b1 },
    "fc2.weight": { shape: [256, 10], data: d.W2 },
    "fc2.bias": { shape: [10], data: d.b2 },
  };

  it("names its parameters and their shapes", () => {
    expect(model.parameters.map((p) => [p.name, p.shape])).toEqual([
      ["fc1.weight", [784, 256]],
      ["fc1.bias", [256]],
      ["fc2.weight", [256, 10]],
      ["fc2.bias", [10]],
    ]);
  });

  it("reproduces the reference loss", () => {
    const r = fn.evaluate(point, { mode: "value" });
    expect(Math.abs((r.outputs.loss as number) - W3_REFERENCE_LOSS)).toBeLessThan(1e-12);
  });

  it("gives every parameter's gradient as hand-derived backpropagation does", () => {
    const grad = w3ZeroParams();
    const loss = w3LossAndGradient(d.X, d.labels, d, grad, w3Workspace());
    const r = fn.evaluate(point, { mode: "reverse", wrt: model.parameters.map((p) => p.name) });
    expect(r.outputs.loss).toBeCloseTo(loss, 13);
    const g = r.gradient as Record<string, Tensor>;
    expect(maxRelDiff(g["fc1.weight"].data, grad.W1)).toBeLessThan(1e-10);
    expect(maxRelDiff(g["fc1.bias"].data, grad.b1)).toBeLessThan(1e-10);
    expect(maxRelDiff(g["fc2.weight"].data, grad.W2)).toBeLessThan(1e-10);
    expect(maxRelDiff(g["fc2.bias"].data, grad.b2)).toBeLessThan(1e-10);
    expect(g["fc2.weight"].shape).toEqual([256, 10]);
  });

  it("computes in float32 close to float64", () => {
    const r = fn.evaluate(point, { mode: "value", precision: "float32" });
    expect(Math.abs((r.outputs.loss as number) - W3_REFERENCE_LOSS)).toBeLessThan(1e-5);
  });
});

describe("training a small model by gradient descent", () => {
  it("lowers the loss step after step", () => {
    const model: ModelDefinition = {
      input: [4],
      layers: [{ type: "dense", units: 8 }, { type: "tanh" }, { type: "layer_norm" }, { type: "dense", units: 3 }],
      loss: "softmax_cross_entropy",
    };
    const batch = 32;
    const compiled = compileModel(model, batch);
    const fn = new CompiledFunction(compiled.graph);
    const next = rng(99);
    // Three separable classes: the label is the index of the largest of the first three features.
    const x = Float64Array.from({ length: batch * 4 }, () => next() * 2 - 1);
    const y = Int32Array.from({ length: batch }, (_, i) => {
      const row = x.subarray(i * 4, i * 4 + 3);
      return row.indexOf(Math.max(...row));
    });
    const params = initializeParameters(compiled.parameters, 42);
    const wrt = compiled.parameters.map((p) => p.name);
    const losses: number[] = [];
    for (let step = 0; step < 40; step++) {
      const r = fn.evaluate({ x: { shape: [batch, 4], data: x }, y: { shape: [batch], data: y }, ...params }, { mode: "reverse", wrt });
      losses.push(r.outputs.loss as number);
      for (const name of wrt) {
        const g = (r.gradient as Record<string, Tensor>)[name].data;
        const p = params[name].data;
        for (let i = 0; i < p.length; i++) p[i] -= 0.5 * g[i];
      }
    }
    expect(losses[0]).toBeGreaterThan(0.8);
    for (let k = 5; k < losses.length; k += 5) expect(losses[k]).toBeLessThan(losses[k - 5]);
    expect(losses.at(-1)).toBeLessThan(0.5 * losses[0]);
  });
});

describe("model errors", () => {
  it("name the layer and the shapes", () => {
    expect(() => compileModel({ input: [2, 3], layers: [{ type: "dense", units: 4 }], loss: "mse" }, 8)).toThrow(
      /model\.layers\[0\] \(dense_0\): dense needs \[batch, features\], got \[8, 2, 3\]; add a flatten layer first/,
    );
    expect(() => compileModel({ input: [3], layers: [{ type: "dense", units: 0 }], loss: "mse" }, 8)).toThrow(
      /model\.layers\[0\]\.units must be a positive integer/,
    );
    expect(() => compileModel({ input: [3], layers: [{ type: "pool" } as never], loss: "mse" }, 8)).toThrow(/unknown layer type pool/);
    expect(() => compileModel({ input: [3], layers: [], loss: "hinge" as never }, 8)).toThrow(/model\.loss must be one of/);
  });

  it("reject data of the wrong shape or type, naming the input", () => {
    const compiled = compileModel({ input: [3], layers: [{ type: "dense", units: 2 }], loss: "softmax_cross_entropy" }, 4);
    const fn = new CompiledFunction(compiled.graph);
    const params = initializeParameters(compiled.parameters, 1);
    const x = { shape: [4, 3], data: new Float64Array(12) };
    expect(() =>
      fn.evaluate({ x: { shape: [4, 2], data: new Float64Array(8) }, y: { shape: [4], data: [0, 1, 0, 1] }, ...params }, { mode: "value" }),
    ).toThrow(/point\.x has shape \[4, 2\], but the function declares \[4, 3\]/);
    expect(() => fn.evaluate({ x, y: { shape: [4], data: [0, 1.5, 0, 1] }, ...params }, { mode: "value" })).toThrow(
      /point\.y: element 1 is 1\.5, but this input holds integers/,
    );
    expect(() => fn.evaluate({ x, y: { shape: [4], data: [0, 1, 7, 1] }, ...params }, { mode: "value" })).toThrow(
      /label 7 \(element 2\) is out of range for 2 classes/,
    );
  });
});

describe("a small convolutional network", () => {
  it("has gradients that pass the finite-difference check, parameters included", async () => {
    const { readFileSync } = await import("node:fs");
    const model = JSON.parse(readFileSync(new URL("../../examples/cnn.model.json", import.meta.url), "utf8")) as ModelDefinition;
    const compiled = compileModel(model, 2);
    expect(compiled.parameters.map((p) => p.name)).toEqual([
      "conv1.weight",
      "conv1.bias",
      "norm.gamma",
      "norm.beta",
      "head.weight",
      "head.bias",
    ]);
    const fn = new CompiledFunction(compiled.graph);
    const next = rng(5);
    const params = initializeParameters(compiled.parameters, 7);
    const point = {
      x: { shape: [2, 1, 8, 8], data: Float64Array.from({ length: 128 }, () => next()) },
      y: { shape: [2], data: [0, 2] },
      ...params,
    };
    const r = fn.evaluate(point, { mode: "check", wrt: compiled.parameters.map((p) => p.name) });
    expect(r.check?.passed, JSON.stringify(r.check?.inputs)).toBe(true);
    expect(r.check?.inputs["conv1.weight"].elements).toBe(36);
  });
});
