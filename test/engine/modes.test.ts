import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { forward } from "../../src/ad/forward.js";
import { reverse } from "../../src/ad/reverse.js";
import { ScalarProgram } from "../../src/compile/scalar-program.js";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import { parseExpression, parseExpressions } from "../../src/ir/expression.js";
import type { Graph } from "../../src/ir/graph.js";
import { centralGradient, evaluator, reverseGradient } from "../support/numeric.js";

/** Ops that are smooth on all of ℝ (or made so), for random graphs that stay finite. */
const UNARY = ["sin", "cos", "tanh", "sigmoid", "softplus", "atan", "square", "erf", "asinh"] as const;
const BINARY = ["add", "sub", "mul", "hypot", "atan2"] as const;

interface Step {
  readonly unary: boolean;
  readonly op: number;
  readonly a: number;
  readonly b: number;
}

const stepArb = fc.record({ unary: fc.boolean(), op: fc.nat(), a: fc.nat(), b: fc.nat() });

/** A random DAG over `inputs` scalars: each step applies an op to earlier nodes; the output sums the last three. */
function randomGraph(inputs: number, steps: readonly Step[], outputs = 1): Graph {
  const b = new GraphBuilder();
  const nodes = Array.from({ length: inputs }, (_, i) => b.input(`x${i}`));
  for (const s of steps) {
    const pick = (k: number) => nodes[k % nodes.length];
    if (s.unary) nodes.push(b.op(UNARY[s.op % UNARY.length], [pick(s.a)]));
    else {
      const op = BINARY[s.op % BINARY.length];
      // atan2(y, x) and hypot need a point off the origin: shift the second operand.
      const rhs = op === "atan2" || op === "hypot" ? b.add(b.op("square", [pick(s.b)]), b.constant(0.5)) : pick(s.b);
      nodes.push(b.op(op, [pick(s.a), rhs]));
    }
  }
  const outs = Array.from({ length: outputs }, (_, k) => {
    const tail = nodes.slice(-3 - k);
    return { name: `y${k}`, node: tail.reduce((acc, n) => b.add(acc, n)) };
  });
  return b.build(outs);
}

const pointArb = (n: number) => fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: n, maxLength: n });

describe("forward and reverse mode on random graphs", () => {
  it("agree: vᵀ(J u) = (vᵀJ) u for random graphs, points, tangents and cotangents", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 25 }), pointArb(3), pointArb(3), pointArb(2), (steps, x, u, v) => {
        const g = randomGraph(3, steps, 2);
        const fwd = forward(g);
        const jvp = new ScalarProgram(fwd.graph, fwd.outputTangents);
        jvp.setInputs([...x, ...u]);
        jvp.run();
        const rev = reverse(g, { cotangent: "input" });
        const vjp = new ScalarProgram(rev.graph, rev.gradients);
        vjp.setInputs([...x, ...v]);
        vjp.run();
        const left = v[0] * jvp.output(0) + v[1] * jvp.output(1);
        const right = u.reduce((s, uk, k) => s + uk * vjp.output(k), 0);
        expect(Math.abs(left - right)).toBeLessThanOrEqual(1e-10 * (1 + Math.abs(left)));
      }),
      { numRuns: 150, seed: 20261126 },
    );
  });

  it("match central differences on random graphs", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 20 }), pointArb(3), (steps, x) => {
        const g = randomGraph(3, steps);
        const ad = reverseGradient(g)(x);
        const fd = centralGradient(evaluator(g), x);
        ad.forEach((d, k) => {
          expect(Math.abs(d - fd[k])).toBeLessThanOrEqual(1e-5 * (1 + Math.abs(fd[k])));
        });
      }),
      { numRuns: 100, seed: 7 },
    );
  });

  it("give the same gradient through the engine in reverse mode and by forward sweeps", () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 20 }), pointArb(3), (steps, x) => {
        const fn = new CompiledFunction(randomGraph(3, steps));
        const point = { x0: x[0], x1: x[1], x2: x[2] };
        const r = fn.evaluate(point, { mode: "reverse" });
        const f = fn.evaluate(point, { mode: "forward" });
        for (const k of ["x0", "x1", "x2"]) {
          const a = r.gradient?.[k] as number;
          expect(Math.abs(a - (f.gradient?.[k] as number))).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(a)));
        }
      }),
      { numRuns: 60, seed: 11 },
    );
  });
});

describe("modes of the engine", () => {
  const fn = new CompiledFunction(parseExpression("x1*exp(-0.5*(x1^2+x2^2))"));
  const E = Math.exp(-2.125);

  it("value mode gives the value only", () => {
    const r = fn.evaluate({ x1: 2, x2: 0.5 }, { mode: "value" });
    expect(r.outputs.f).toBe(0.23886593653343924);
    expect(r.gradient).toBeUndefined();
  });

  it("reverse mode differentiates with respect to a chosen subset", () => {
    const r = fn.evaluate({ x1: 2, x2: 0.5 }, { mode: "reverse", wrt: ["x2"] });
    expect(Object.keys(r.gradient ?? {})).toEqual(["x2"]);
    expect(r.gradient?.x2).toBeCloseTo(-E, 15);
  });

  it("forward mode gives a Jacobian-vector product along a tangent", () => {
    const r = fn.evaluate({ x1: 2, x2: 0.5 }, { mode: "forward", tangent: { x1: 3, x2: -2 } });
    expect(r.jvp?.f).toBeCloseTo(3 * -3 * E - 2 * -E, 15);
  });

  it("reverse mode with a cotangent gives a vector-Jacobian product for several outputs", () => {
    const g = new CompiledFunction(
      parseExpressions({
        outputs: [
          { name: "p", text: "x*y" },
          { name: "s", text: "sin(x)" },
        ],
      }),
    );
    const r = g.evaluate({ x: 0.3, y: 2 }, { mode: "reverse", cotangent: { p: 2, s: -1 } });
    // vᵀJ = 2·(y, x) − (cos x, 0)
    expect(r.vjp?.x).toBeCloseTo(2 * 2 - Math.cos(0.3), 15);
    expect(r.vjp?.y).toBeCloseTo(2 * 0.3, 15);
  });

  it("float32 precision rounds every step", () => {
    const r = fn.evaluate({ x1: 2, x2: 0.5 }, { mode: "reverse", precision: "float32" });
    expect(r.outputs.f).toBe(Math.fround(r.outputs.f as number));
    expect(r.outputs.f).toBeCloseTo(2 * E, 6);
    expect(r.gradient?.x1).toBeCloseTo(-3 * E, 6);
  });

  it("rejects missing, unknown and non-finite inputs, naming them", () => {
    expect(() => fn.evaluate({ x1: 2 }, { mode: "reverse" })).toThrow(/point\.x2 is missing/);
    expect(() => fn.evaluate({ x1: 2, x2: 1, x3: 0 }, { mode: "reverse" })).toThrow(/no input is named x3/);
    expect(() => fn.evaluate({ x1: 2, x2: Number.NaN }, { mode: "reverse" })).toThrow(/point\.x2 is NaN/);
    expect(() => fn.evaluate({ x1: 2, x2: 0.5 }, { mode: "reverse", wrt: ["y"] })).toThrow(/wrt names y, which is not an input/);
    expect(fn.evaluate({ x1: 2, x2: Number.POSITIVE_INFINITY }, { mode: "value", allowNonFinite: true }).outputs.f).toBe(0);
  });

  it("refuses a gradient of a function with several outputs, and says what to do instead", () => {
    const b = new GraphBuilder();
    const x = b.input("x");
    const g = new CompiledFunction(
      b.build([
        { name: "a", node: b.op("sin", [x]) },
        { name: "b", node: b.op("cos", [x]) },
      ]),
    );
    expect(() => g.evaluate({ x: 1 }, { mode: "reverse" })).toThrow(/2 outputs \(a, b\).*cotangent/);
  });
});
