import { describe, expect, it } from "vitest";
import { reverse } from "../../src/ad/reverse.js";
import { compileProgram } from "../../src/compile/program.js";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { type Budget, BudgetExceeded, MAX_DIMENSION } from "../../src/ir/budget.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import { parseExpression } from "../../src/ir/expression.js";
import { compileModel } from "../../src/ir/model.js";
import { graphWork } from "../../src/runtime/scheduler.js";
import { budgetsFor } from "../../src/service/modes.js";

const budget = (maxNodes: number, maxElements = Number.POSITIVE_INFINITY, inline = false): Budget => ({
  maxNodes,
  maxElements,
  nodesName: "TEST_NODES",
  elementsName: "TEST_ELEMENTS",
  inline,
});

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("expected a throw");
}

describe("the builder's node budget", () => {
  it("refuses the node past the limit, naming it, and builds anything up to it", () => {
    const b = new GraphBuilder(budget(4));
    const x = b.input("x");
    const y = b.op("sin", [x]);
    b.op("cos", [y]);
    b.op("exp", [y]);
    expect(b.nodes.length).toBe(4);
    // Hash-consing finds an existing node without growing.
    expect(b.op("sin", [x])).toBe(y);
    const e = thrown(() => b.op("tanh", [y]));
    expect(e).toBeInstanceOf(BudgetExceeded);
    expect(e).toMatchObject({ kind: "resource_exhausted", inline: false });
    expect((e as Error).message).toMatch(/past 4 nodes; the limit is 4 \(TEST_NODES\)/);
  });

  it("bounds derivations: reverse mode stops at the budget, and succeeds with room", () => {
    const g = parseExpression("sin(x)*exp(x)/(1+x^2)");
    const full = reverse(g, { cotangent: "seed" });
    expect(() => reverse(g, { cotangent: "seed", budget: budget(full.graph.nodes.length) })).not.toThrow();
    const e = thrown(() => reverse(g, { cotangent: "seed", budget: budget(full.graph.nodes.length - 1) }));
    expect(e).toBeInstanceOf(BudgetExceeded);
  });

  it("refuses an axis beyond 2³¹−1 wherever a shape enters, even one holding no elements", () => {
    const b = new GraphBuilder();
    expect(thrown(() => b.input("x", [0, 5e10]))).toMatchObject({ kind: "resource_exhausted" });
    const x = b.input("y");
    const e = thrown(() => b.op("broadcast_to", [x], { shape: [MAX_DIMENSION + 1] }, "big"));
    expect(e).toMatchObject({ kind: "resource_exhausted", location: { node: "big" } });
  });

  it("the expression parser counts nodes as it builds", () => {
    const text = new Array(200).fill("x").join("+");
    expect(parseExpression(text, undefined, 200).size).toBe(200);
    const e = thrown(() => parseExpression(text, undefined, 199));
    expect(e).toBeInstanceOf(BudgetExceeded);
    expect((e as Error).message).toMatch(/the function has 200 nodes; the limit is 199 \(ADJOINT_MAX_NODES\)/);
  });

  it("stops a derivative whose growth projects past the budget before building it", () => {
    const fn = new CompiledFunction(parseExpression("exp(sin(x)*cos(x))/(1+x^2)*tanh(x)*log(2+x)"));
    const { pool } = budgetsFor({ maxNodes: 100_000, maxTensorElements: 10_000_000 }, fn.graph.size);
    // A small function's derived graphs get ADJOINT_MAX_NODES, a large one's 16 times its size, up to a cap.
    expect(pool.maxNodes).toBe(100_000);
    expect(budgetsFor({ maxNodes: 100_000, maxTensorElements: 1e7 }, 20_000).pool.maxNodes).toBe(320_000);
    expect(budgetsFor({ maxNodes: 100_000, maxTensorElements: 1e7 }, 100_000).pool.maxNodes).toBe(1_000_000);
    const e = thrown(() => fn.evaluate({ x: 0.3 }, { mode: "derivative", order: 16, budget: pool }));
    expect(e).toBeInstanceOf(BudgetExceeded);
    expect((e as Error).message).toMatch(/at least ADJOINT_MAX_NODES/);
    // The same request within the event loop's budget is marked for the pool, not refused.
    const inline = thrown(() =>
      fn.evaluate({ x: 0.3 }, { mode: "derivative", order: 8, budget: budgetsFor({ maxNodes: 100_000, maxTensorElements: 1e7 }).inline }),
    );
    expect(inline).toMatchObject({ inline: true });
    // Low orders are exact: d²/dx² of x³ at 2 is 12.
    const cube = new CompiledFunction(parseExpression("x^3"));
    expect(cube.evaluate({ x: 2 }, { mode: "derivative", order: 2, budget: pool }).derivative).toBe(12);
  });
});

describe("the compile-time element budget", () => {
  const broadcastSum = (n: number) =>
    parseExpression(`sum(broadcast_to(x, shape=[${n}, ${n}]) * y)`, [{ name: "x" }, { name: "y", shape: [n] }]);

  it("refuses a program whose tensors exceed it, before allocating, and compiles the same program with room", () => {
    const g = broadcastSum(100);
    const e = thrown(() => compileProgram(g, [g.outputs[0].node], { budget: budget(1e9, 5000) }));
    expect(e).toBeInstanceOf(BudgetExceeded);
    expect((e as Error).message).toMatch(/elements.*the limit is 5000 \(TEST_ELEMENTS\)/);
    const p = compileProgram(g, [g.outputs[0].node], { budget: budget(1e9, 20_000) });
    p.setInput(0, 2);
    p.setInput(1, new Float64Array(100).fill(3));
    p.run();
    expect(p.read(g.outputs[0].node)).toEqual(new Float64Array([100 * 100 * 6]));
  });

  it("counts every axis of a loop as at least 1, so an empty axis does not hide a long one", () => {
    const b = new GraphBuilder();
    const x = b.input("x", [0, 1_000_000]);
    const s = b.op("sum", [b.op("exp", [x])]);
    const g = b.build([{ name: "f", node: s }]);
    const e = thrown(() => compileProgram(g, [g.outputs[0].node], { budget: budget(1e9, 100_000) }));
    expect((e as Error).message).toMatch(/\[0, 1000000\] iterates 1000000 elements.*limit is 100000/);
    expect(graphWork(g)).toBe(1_000_001);
  });
});

describe("a model's graph is built under ADJOINT_MAX_NODES", () => {
  it("stops a model of too many layers as it builds, and builds one within the limit", () => {
    const layers = Array.from({ length: 400 }, (_, i) => ({ type: i % 2 ? "relu" : "dense", units: 2 }));
    const model = { input: [2], layers, loss: "mse" } as never;
    const e = thrown(() => compileModel(model, 1, 500));
    expect(e).toBeInstanceOf(BudgetExceeded);
    expect((e as Error).message).toMatch(/the function has 501 nodes; the limit is 500 \(ADJOINT_MAX_NODES\)/);
    expect(compileModel(model, 1, 10_000).graph.size).toBeLessThanOrEqual(10_000);
  });
});
