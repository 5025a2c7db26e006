import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { parseExpression } from "../../src/ir/expression.js";
import { readJsonGraph } from "../../src/ir/json-graph.js";

// f = 2e^(−2.125), ∂f/∂x1 = (1 − x1²)e^(−2.125) = −3e^(−2.125), ∂f/∂x2 = −x1·x2·e^(−2.125) = −e^(−2.125).
const E = Math.exp(-2.125);
const expected = { f: 2 * E, x1: -3 * E, x2: -E };

/** Distance in units in the last place. */
function ulps(a: number, b: number): number {
  const buf = new DataView(new ArrayBuffer(16));
  buf.setFloat64(0, a);
  buf.setFloat64(8, b);
  return Number(buf.getBigInt64(0) - buf.getBigInt64(8));
}

const sources = {
  expression: () => parseExpression("x1*exp(-0.5*(x1^2+x2^2))"),
  graph: () => readJsonGraph(JSON.parse(readFileSync(new URL("../../examples/worked-example.graph.json", import.meta.url), "utf8"))),
};

describe.each(Object.entries(sources))("the worked example from the %s", (_name, make) => {
  it.each(["reverse", "forward"] as const)("%s mode gives f and ∇f within a few ulps", (mode) => {
    const fn = new CompiledFunction(make());
    const r = fn.evaluate({ x1: 2, x2: 0.5 }, { mode });
    expect(Math.abs(ulps(r.outputs.f as number, expected.f))).toBeLessThanOrEqual(4);
    expect(Math.abs(ulps((r.gradient?.x1 as number) ?? Number.NaN, expected.x1))).toBeLessThanOrEqual(4);
    expect(Math.abs(ulps((r.gradient?.x2 as number) ?? Number.NaN, expected.x2))).toBeLessThanOrEqual(4);
    expect(r.outputs.f).toBeCloseTo(0.23886593653343924, 15);
    expect(r.gradient?.x1).toBeCloseTo(-0.35829890480015886, 15);
    expect(r.gradient?.x2).toBeCloseTo(-0.11943296826671962, 15);
  });
});
