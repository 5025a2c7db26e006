import { describe, expect, it } from "vitest";
import { reverse } from "../../src/ad/reverse.js";
import { TensorProgram } from "../../src/compile/tensor-program.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import { parseExpression } from "../../src/ir/expression.js";
import { rng } from "../support/numeric.js";

function program(text: string, n: number) {
  const graph = parseExpression(text, [{ name: "x", shape: [n] }]);
  const r = reverse(graph, { cotangent: "seed" });
  const f = graph.outputs[0].node;
  return { graph, f, g: r.gradients[0], p: new TensorProgram(r.graph, [f, r.gradients[0]]) };
}

/** The Rosenbrock program of n inputs, run once from its own arena, and the gradient that run gave. */
function rosenbrockRun(n: number) {
  const run = program("sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)", n);
  const x = Float64Array.from({ length: n }, (_, i) => 0.5 + 0.001 * i);
  run.p.setInput(0, x);
  run.p.run();
  return { ...run, x, copied: Float64Array.from(run.p.read(run.g)) };
}

describe("tensor programs", () => {
  it("compute the Rosenbrock value and gradient in one fused loop", () => {
    for (const n of [2, 3, 17, 1000]) {
      const { f, g, p } = program("sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)", n);
      const next = rng(n);
      const x = Float64Array.from({ length: n }, () => next() * 2 - 1);
      p.setInput(0, x);
      p.run();
      let value = 0;
      const grad = new Float64Array(n);
      for (let i = 0; i < n - 1; i++) {
        const d = x[i + 1] - x[i] * x[i];
        value += 100 * d * d + (1 - x[i]) ** 2;
        grad[i] += -400 * d * x[i] - 2 * (1 - x[i]);
        grad[i + 1] += 200 * d;
      }
      expect(p.read(f)[0]).toBeCloseTo(value, 10);
      const got = p.read(g);
      grad.forEach((v, i) => {
        expect(got[i]).toBeCloseTo(v, 10);
      });
      // Value, gradient and the shifted sums all in one pass over x.
      expect(p.steps).toHaveLength(1);
    }
  });

  it("scatter three shifted contributions of a second-difference stencil", () => {
    const n = 9;
    const { f, g, p } = program("sum((x[2:] - 2*x[1:-1] + x[:-2])^2)", n);
    const x = Float64Array.from({ length: n }, (_, i) => Math.sin(i * 1.3));
    p.setInput(0, x);
    p.run();
    const grad = new Float64Array(n);
    let value = 0;
    for (let i = 0; i < n - 2; i++) {
      const d = x[i + 2] - 2 * x[i + 1] + x[i];
      value += d * d;
      grad[i + 2] += 2 * d;
      grad[i + 1] += -4 * d;
      grad[i] += 2 * d;
    }
    expect(p.read(f)[0]).toBeCloseTo(value, 12);
    Array.from(p.read(g)).forEach((v, i) => {
      expect(v).toBeCloseTo(grad[i], 12);
    });
    expect(p.steps).toHaveLength(1);
  });

  it("add a term read twice through one element's padding twice, and set the rest of the sum, run after run", () => {
    // x + x read through a slice of one element: its gradient pads that element back, and the two
    // terms of the cotangents' sum are the same padded value. Found by the sparse modes' property test.
    const n = 3;
    for (const [text, want] of [
      ["sum((x + x)[1:2])", [0, 2, 0]],
      ["sum((x + x + x)[0:1])", [3, 0, 0]],
      ["sum(sin((x + x)[2:3]))", [0, 0, 2 * Math.cos(2 * 0.3)]],
    ] as const) {
      const { g, p } = program(text, n);
      for (const x of [Float64Array.of(0.1, 0.2, 0.3), Float64Array.of(5, 6, 0.3)]) {
        p.setInput(0, x);
        p.run();
        const got = Array.from(p.read(g));
        want.forEach((v, i) => {
          expect(got[i]).toBeCloseTo(v, 14);
        });
      }
    }
  });

  it("read bound inputs and write bound outputs in place, with the same results", () => {
    const n = 50;
    const { f, g, p, x, copied } = rosenbrockRun(n);
    const valueCopied = p.read(f)[0];
    const into = new Float64Array(n);
    p.bindInput(0, x);
    p.bindOutput(g, into);
    p.run();
    expect(Array.from(into)).toEqual(Array.from(copied));
    expect(p.read(f)[0]).toBe(valueCopied);
    x[3] += 0.25;
    p.run();
    expect(into[3]).not.toBe(copied[3]);
    expect(() => p.bindInput(0, new Float32Array(n))).toThrow(/needs a Float64Array of 50 elements/);
  });

  it("write results into caller memory only until released, and refuse results they cannot write in place", () => {
    const n = 50;
    const { f, g, p, x, copied } = rosenbrockRun(n);
    const into = new Float64Array(n).fill(-1);
    expect(p.tryBindOutput(g, new Float32Array(n))).toBe(false);
    expect(p.tryBindOutput(g, new Float64Array(n + 1))).toBe(false);
    expect(p.tryBindOutput(g, into)).toBe(true);
    // A second target for the same buffer: the caller copies that one out instead.
    expect(p.tryBindOutput(g, new Float64Array(n))).toBe(false);
    p.run();
    expect(Array.from(into)).toEqual(Array.from(copied));
    p.releaseOutputs();
    x[3] += 0.25;
    p.setInput(0, x);
    p.run();
    expect(Array.from(into)).toEqual(Array.from(copied));
    expect(p.read(g)[3]).not.toBe(copied[3]);
    expect(p.read(f)).toHaveLength(1);

    // An input passed through, and a constant written once when the program was built, are not results of a run.
    const b = new GraphBuilder();
    const graph = b.build([
      { name: "same", node: b.input("x", [4]) },
      { name: "constant", node: b.tensorConstant([4], Float64Array.of(1, 2, 3, 4)) },
    ]);
    const passed = new TensorProgram(
      graph,
      graph.outputs.map((o) => o.node),
    );
    const [same, constant] = graph.outputs.map((o) => o.node);
    expect(passed.tryBindOutput(same, new Float64Array(4))).toBe(false);
    expect(passed.tryBindOutput(constant, new Float64Array(4))).toBe(false);
    expect(() => passed.bindOutput(constant, new Float64Array(4))).toThrow(/not a result stored on its own/);
    passed.run();
    expect(Array.from(passed.read(constant))).toEqual([1, 2, 3, 4]);
  });

  it("reuse arena space between buffers whose lifetimes do not overlap", () => {
    // Ten products in a chain: without reuse every intermediate would need its own 32 KiB.
    const chain = `${Array.from({ length: 10 }, () => "tanh(").join("")}x${Array.from({ length: 10 }, () => " @ W)").join("")}`;
    const graph = parseExpression(`sum(${chain})`, [
      { name: "x", shape: [64, 64] },
      { name: "W", shape: [64, 64] },
    ]);
    const p = new TensorProgram(graph, [graph.outputs[0].node]);
    const matrix = 64 * 64 * 8;
    expect(p.arenaBytes).toBeLessThanOrEqual(5 * matrix);
    p.setInput(0, new Float64Array(64 * 64).fill(0.01));
    p.setInput(1, new Float64Array(64 * 64).fill(0.02));
    p.run();
    expect(Number.isFinite(p.read(graph.outputs[0].node)[0])).toBe(true);
  });
});
