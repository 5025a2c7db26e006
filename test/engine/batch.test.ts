import { describe, expect, it } from "vitest";
import { evaluateVectorized, firstNonFinitePoint, LANES, planBatch } from "../../src/engine/batch.js";
import { CompiledFunction, type EvaluateRequest } from "../../src/engine/compiled-function.js";
import { parseExpression, parseExpressions } from "../../src/ir/expression.js";
import { rng } from "../support/numeric.js";

const count = 2 * LANES + 37;
const next = rng(2026);
const x1 = Float64Array.from({ length: count }, () => next() * 4 - 2);
const x2 = Float64Array.from({ length: count }, () => next() * 4 - 2);
const t1 = Float64Array.from({ length: count }, () => next() - 0.5);

describe("vectorised batches", () => {
  const fn = new CompiledFunction(parseExpression("x1*exp(-0.5*(x1^2+x2^2))"));
  const requests: [string, EvaluateRequest, Record<string, Record<string, Float64Array>>][] = [
    ["value", { mode: "value" }, {}],
    ["reverse", { mode: "reverse" }, {}],
    ["reverse wrt x2", { mode: "reverse", wrt: ["x2"] }, {}],
    ["forward with per-point tangents", { mode: "forward", tangent: { x1: 0, x2: 1 } }, { tangent: { x1: t1 } }],
    ["reverse with a shared cotangent", { mode: "reverse", cotangent: { f: 2.5 } }, {}],
  ];
  it.each(requests)("%s: every point equals its single-point evaluation, bit for bit", (_name, request, extra) => {
    const plan = planBatch(fn, request);
    expect(plan).toBeDefined();
    const out = (plan?.fields ?? []).map(() => new Float64Array(count));
    expect(evaluateVectorized(fn, request, { point: { x1, x2 }, ...extra }, 0, count, out)).toBe(true);
    for (const i of [0, 1, LANES - 1, LANES, count - 1]) {
      const tangent = extra.tangent ? { x1: extra.tangent.x1[i], x2: 1 } : request.tangent;
      const single = fn.evaluate({ x1: x1[i], x2: x2[i] }, { ...request, tangent });
      plan?.fields.forEach((field, k) => {
        expect(out[k][i]).toBe((single[field.section] as Record<string, number>)[field.name]);
      });
    }
  });

  it("covers a sub-range, leaving the rest of the blocks untouched", () => {
    const out = [new Float64Array(count).fill(-7)];
    evaluateVectorized(fn, { mode: "value" }, { point: { x1, x2 } }, 10, 20, out);
    expect(out[0][9]).toBe(-7);
    expect(out[0][10]).toBe(fn.evaluate({ x1: x1[10], x2: x2[10] }, { mode: "value" }).outputs.f);
    expect(out[0][20]).toBe(-7);
  });

  it("handles several outputs and outputs that do not depend on the point", () => {
    const multi = new CompiledFunction(
      parseExpressions({
        outputs: [
          { name: "a", text: "x*y" },
          { name: "c", text: "2 + 3" },
        ],
      }),
    );
    const out = [new Float64Array(count), new Float64Array(count)];
    expect(evaluateVectorized(multi, { mode: "value" }, { point: { x: x1, y: x2 } }, 0, count, out)).toBe(true);
    expect(out[0][5]).toBe(x1[5] * x2[5]);
    expect(out[1].every((v) => v === 5)).toBe(true);
  });

  it("declines tensor functions and traces, and finds the first non-finite point", () => {
    const tensor = new CompiledFunction(parseExpression("sum(x)", [{ name: "x", shape: [3] }]));
    expect(evaluateVectorized(tensor, { mode: "value" }, { point: { x: new Float64Array(9) } }, 0, 3, [new Float64Array(3)])).toBe(false);
    expect(evaluateVectorized(fn, { mode: "value", trace: true }, { point: { x1, x2 } }, 0, count, [new Float64Array(count)])).toBe(false);
    const logs = new CompiledFunction(parseExpression("log(x)"));
    const out = [new Float64Array(4)];
    evaluateVectorized(logs, { mode: "value" }, { point: { x: Float64Array.of(1, 2, -1, 3) } }, 0, 4, out);
    expect(firstNonFinitePoint(out, 0, 4)).toBe(2);
  });
});
