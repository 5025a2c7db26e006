import { describe, expect, it } from "vitest";
import { allOps } from "../../src/ops/registry.js";
import { rng } from "../support/numeric.js";
import { caseGraph, evaluate, fdGradient, gradient, jvp, type OpCase, samplePoint } from "./tensor-harness.js";

/**
 * Every op's tensor cases, read from the op table: an op's shapes for testing sit in its definition,
 * so adding an op adds its tests. Each runs finite differences on every element, forward/reverse
 * agreement and float32 against float64.
 */
const cases: [string, OpCase][] = allOps().flatMap((def) =>
  (def.tensorCases ?? []).map((c): [string, OpCase] => [`${def.name}: ${c.name}`, { op: def.name, args: c.args, attrs: c.attrs }]),
);

it("every tensor op with derivative rules has tensor cases (the max-pool rules are tested through max_pool2d)", () => {
  const uncovered = allOps()
    .filter((def) => def.kind !== "elementwise" && (def.vjp !== undefined || def.expand !== undefined) && !def.tensorCases?.length)
    .map((def) => def.name);
  expect(uncovered).toEqual(["max_pool2d_grad", "max_pool2d_pick"]);
});

describe.each(cases)("tensor op %s", (_name, c) => {
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
