import { describe, expect, it } from "vitest";
import { W2_REFERENCE, W2_SIZES, w2Point, w2Value, w2ValueAndGradient } from "../bench/workloads/w2.js";
import {
  generateW3,
  W3_REFERENCE_LOSS,
  type W3Params,
  w3Loss,
  w3LossAndGradient,
  w3Workspace,
  w3ZeroParams,
} from "../bench/workloads/w3.js";
import { generateW4, W4_INPUTS, W4_NODES, W4_REFERENCE_OUTPUT, w4JsonGraph } from "../bench/workloads/w4.js";
import { w4Graph } from "../bench/workloads/w4-graph.js";
import { liveValues, w4Interpreter, w4StraightLine, w4Values } from "../bench/workloads/w4-reference.js";
import { reverse } from "../src/ad/reverse.js";
import { ScalarProgram } from "../src/compile/scalar-program.js";
import { readJsonGraph } from "../src/ir/json-graph.js";

// The benchmark's generators reproduce the published reference values (../shared/workloads.md), and our
// engine agrees with the hand-written references on W4. No timings here: `npm run bench` does those.

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);
const maxRel = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return err / scale;
};

describe("W2, extended Rosenbrock", () => {
  it.each(W2_SIZES)("f at n = %i is the published value", (n) => {
    const x = w2Point(n);
    const g = new Float64Array(n);
    expect(rel(w2Value(x), W2_REFERENCE[n])).toBeLessThan(1e-13);
    expect(w2ValueAndGradient(x, g)).toBe(w2Value(x));
  });

  it("the fused gradient matches central differences", () => {
    const x = w2Point(1000);
    const g = new Float64Array(1000);
    w2ValueAndGradient(x, g);
    for (const i of [0, 1, 57, 998, 999]) {
      const h = 1e-6;
      const xp = x.slice();
      const xm = x.slice();
      xp[i] += h;
      xm[i] -= h;
      expect(Math.abs((w2Value(xp) - w2Value(xm)) / (2 * h) - g[i])).toBeLessThan(1e-5 * Math.max(1, Math.abs(g[i])));
    }
  });
});

describe("W3, one training step", () => {
  const data = generateW3();
  const ws = w3Workspace();

  it("the loss is the published value (float64)", () => {
    expect(rel(w3Loss(data.X, data.labels, data, ws), W3_REFERENCE_LOSS)).toBeLessThan(1e-13);
  });

  it("the hand-written backward pass matches central differences", () => {
    const grad = w3ZeroParams();
    const loss = w3LossAndGradient(data.X, data.labels, data, grad, ws);
    expect(loss).toBe(w3Loss(data.X, data.labels, data, ws));
    const probes: [keyof W3Params, number][] = [
      ["W1", 1000],
      ["b1", 3],
      ["W2", 77],
      ["b2", 4],
    ];
    for (const [name, i] of probes) {
      const h = 1e-5;
      const at = (delta: number) => {
        const p = { ...data, [name]: data[name].slice() };
        p[name][i] += delta;
        return w3Loss(data.X, data.labels, p, ws);
      };
      const numeric = (at(h) - at(-h)) / (2 * h);
      expect(Math.abs(numeric - grad[name][i])).toBeLessThan(1e-8);
    }
  });
});

describe("W4, a 10,000-node scalar DAG", () => {
  const dag = generateW4();
  const out = () => {
    const v = w4Values(dag);
    const g = new Float64Array(v.length);
    return { v, g };
  };
  // The hand-written straight-line reverse sweep, in chunks of 500 nodes: the reference gradient.
  const chunked = w4StraightLine(dag, { chunk: 500 });
  const ref = out();
  const refValue = chunked.valueAndGradient(ref.v, ref.g);
  const refGradient = ref.g.slice(0, W4_INPUTS);

  it("the generator reproduces the published output 42.0463391605263", () => {
    expect(dag.op.length).toBe(W4_NODES);
    expect(rel(dag.output, W4_REFERENCE_OUTPUT)).toBeLessThan(1e-13);
    let inRange = true;
    for (const x of dag.values) inRange &&= Math.abs(x) <= 4;
    expect(inRange).toBe(true);
    expect(refValue).toBe(dag.output);
  });

  it("every hand-written reference computes the same value and gradient", () => {
    const kernels = [
      w4Interpreter(dag),
      w4Interpreter(dag, { live: true }),
      w4StraightLine(dag),
      w4StraightLine(dag, { live: true }),
      w4StraightLine(dag, { chunk: 500, live: true }),
    ];
    for (const k of kernels) {
      const { v, g } = out();
      expect(k.value(w4Values(dag)), k.name).toBe(dag.output);
      expect(k.valueAndGradient(v, g), k.name).toBe(dag.output);
      expect(maxRel(g.subarray(0, W4_INPUTS), refGradient), k.name).toBeLessThan(1e-14);
    }
    expect(chunked.source.functions).toBe(41);
  });

  const graph = w4Graph(dag);
  const r = reverse(graph, { cotangent: "seed" });
  const f = graph.outputs[0].node;

  it.each(["interpreter", "codegen"] as const)("our engine (%s) gives the generator's value and the reference gradient", (tier) => {
    const value = new ScalarProgram(graph, [f], { tier });
    value.setInputs(dag.inputs);
    value.run();
    expect(rel(value.output(0), dag.output)).toBeLessThan(1e-14);

    const gradient = new ScalarProgram(r.graph, [f, ...r.gradients], { tier });
    gradient.setInputs(dag.inputs);
    gradient.run();
    expect(rel(gradient.output(0), dag.output)).toBeLessThan(1e-14);
    const ours = Float64Array.from({ length: W4_INPUTS }, (_, k) => gradient.output(1 + k));
    expect(maxRel(ours, refGradient)).toBeLessThan(1e-12);
    // Inputs the output does not depend on get exactly zero.
    const live = liveValues(dag);
    for (let k = 0; k < W4_INPUTS; k++) if (!live[k]) expect(ours[k]).toBe(0);
  });

  it("the JSON graph (for the HTTP API and load tests) is the same function", () => {
    const fromJson = readJsonGraph(JSON.parse(JSON.stringify(w4JsonGraph(dag))));
    const program = new ScalarProgram(fromJson, [fromJson.outputs[0].node], { tier: "interpreter" });
    program.setInputs(dag.inputs);
    program.run();
    expect(rel(program.output(0), dag.output)).toBeLessThan(1e-14);
  });
});
