import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import type { Tensor } from "../../src/engine/values.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import { parseExpression, parseExpressions } from "../../src/ir/expression.js";
import { elementwise } from "../../src/ops/elementwise/define.js";
import { registerOp } from "../../src/ops/registry.js";
import { rng } from "../support/numeric.js";

const n = 6;
const rosenbrock = () =>
  new CompiledFunction(parseExpression("sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)", [{ name: "x", shape: [n] }]));

/** The Rosenbrock Hessian in closed form: tridiagonal. */
function rosenbrockHessian(x: readonly number[]): number[][] {
  const h = x.map(() => x.map(() => 0));
  for (let i = 0; i < x.length - 1; i++) {
    h[i][i] += 1200 * x[i] ** 2 - 400 * x[i + 1] + 2;
    h[i + 1][i + 1] += 200;
    h[i][i + 1] += -400 * x[i];
    h[i + 1][i] += -400 * x[i];
  }
  return h;
}

const point = (x: number[]) => ({ x: { shape: [x.length], data: x } });
const data = (v: unknown) => Array.from((v as Tensor).data);

describe("Hessians", () => {
  const x = [0.3, -0.7, 1.2, 0.9, -0.1, 0.5];
  it("of the n-dimensional Rosenbrock function match the closed form, symmetric to rounding", () => {
    const r = rosenbrock().evaluate(point(x), { mode: "hessian" });
    const h = r.hessian?.x.x as Tensor;
    expect(h.shape).toEqual([n, n]);
    const expected = rosenbrockHessian(x);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        expect(h.data[i * n + j]).toBeCloseTo(expected[i][j], 9);
        expect(Math.abs(h.data[i * n + j] - h.data[j * n + i])).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(expected[i][j])));
      }
    }
  });

  it("of scalar inputs are keyed by both names", () => {
    const r = new CompiledFunction(parseExpression("x^2*y^3 + sin(x*y)")).evaluate({ x: 0.4, y: -1.3 }, { mode: "hessian" });
    const [x0, y0] = [0.4, -1.3];
    expect(r.hessian?.x.x).toBeCloseTo(2 * y0 ** 3 - y0 ** 2 * Math.sin(x0 * y0), 12);
    expect(r.hessian?.x.y).toBeCloseTo(6 * x0 * y0 ** 2 + Math.cos(x0 * y0) - x0 * y0 * Math.sin(x0 * y0), 12);
    expect(r.hessian?.y.x).toBeCloseTo(r.hessian?.x.y as number, 12);
    expect(r.hessian?.y.y).toBeCloseTo(6 * x0 ** 2 * y0 - x0 ** 2 * Math.sin(x0 * y0), 12);
  });

  it("times a vector equals the Hessian-vector product by forward-over-reverse", () => {
    const fn = rosenbrock();
    const v = [1, -2, 0.5, 3, 0, -1];
    const h = fn.evaluate(point(x), { mode: "hessian" }).hessian?.x.x as Tensor;
    const hv = data(fn.evaluate(point(x), { mode: "hvp", tangent: { x: { shape: [n], data: v } } }).hvp?.x);
    for (let i = 0; i < n; i++) {
      const expected = v.reduce((s, vj, j) => s + h.data[i * n + j] * vj, 0);
      expect(hv[i]).toBeCloseTo(expected, 9);
    }
  });
});

describe("Jacobians", () => {
  it("by forward and by reverse sweeps agree on random graphs, and match differences", () => {
    const UNARY = ["sin", "tanh", "exp", "atan", "square"];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat(), fc.boolean()), { minLength: 2, maxLength: 15 }),
        fc.integer({ min: 1, max: 1000 }),
        (steps, seed) => {
          const b = new GraphBuilder();
          const nodes = [b.input("a"), b.input("b"), b.input("c")];
          for (const [op, i, j, unary] of steps) {
            const x = nodes[i % nodes.length];
            const y = nodes[j % nodes.length];
            nodes.push(unary ? b.op(UNARY[op % UNARY.length], [b.mul(x, b.constant(0.3))]) : b.op(op % 2 ? "mul" : "add", [x, y]));
          }
          const fn = new CompiledFunction(
            b.build([
              { name: "u", node: nodes.at(-1) as number },
              { name: "v", node: nodes.at(-2) as number },
            ]),
          );
          const next = rng(seed);
          const p = { a: next() - 0.5, b: next() - 0.5, c: next() - 0.5 };
          const fwd = fn.evaluate(p, { mode: "jacobian", method: "forward" });
          const rev = fn.evaluate(p, { mode: "jacobian", method: "reverse" });
          expect(fwd.method).toBe("forward");
          expect(rev.method).toBe("reverse");
          for (const o of ["u", "v"]) {
            for (const i of ["a", "b", "c"] as const) {
              const f = fwd.jacobian?.[o][i] as number;
              expect(Math.abs(f - (rev.jacobian?.[o][i] as number))).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(f)));
              const h = 1e-6;
              const up = fn.evaluate({ ...p, [i]: p[i] + h }, { mode: "value" }).outputs[o] as number;
              const down = fn.evaluate({ ...p, [i]: p[i] - h }, { mode: "value" }).outputs[o] as number;
              expect(Math.abs(f - (up - down) / (2 * h))).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(f)));
            }
          }
        },
      ),
      { numRuns: 40, seed: 3 },
    );
  });

  it("choose forward sweeps for fewer inputs than outputs, reverse otherwise, and lay tensors out as output ⊗ input", () => {
    const wide = new CompiledFunction(
      parseExpression("x * w", [
        { name: "x", shape: [] },
        { name: "w", shape: [3] },
      ]),
    );
    const r = wide.evaluate({ x: 2, w: { shape: [3], data: [1, 2, 3] } }, { mode: "jacobian", wrt: ["x"] });
    expect(r.method).toBe("forward");
    expect(data(r.jacobian?.f.x)).toEqual([1, 2, 3]);
    const narrow = new CompiledFunction(parseExpression("sum(x * x)", [{ name: "x", shape: [2, 2] }]));
    const s = narrow.evaluate({ x: { shape: [2, 2], data: [1, 2, 3, 4] } }, { mode: "jacobian" });
    expect(s.method).toBe("reverse");
    expect((s.jacobian as Record<string, Record<string, Tensor>>).f.x.shape).toEqual([2, 2]);
    expect(data(s.jacobian?.f.x)).toEqual([2, 4, 6, 8]);
    const square = new CompiledFunction(
      parseExpression("x @ A", [
        { name: "x", shape: [1, 2] },
        { name: "A", shape: [2, 3] },
      ]),
    );
    const j = square.evaluate(
      { x: { shape: [1, 2], data: [1, 1] }, A: { shape: [2, 3], data: [1, 2, 3, 4, 5, 6] } },
      { mode: "jacobian", wrt: ["x"] },
    );
    expect((j.jacobian as Record<string, Record<string, Tensor>>).f.x.shape).toEqual([1, 3, 1, 2]);
    expect(data(j.jacobian?.f.x)).toEqual([1, 4, 2, 5, 3, 6]);
  });
});

describe("higher orders", () => {
  const nth = (text: string, order: number, x: number) =>
    new CompiledFunction(parseExpression(text)).evaluate({ x }, { mode: "derivative", order }).derivative as number;
  const x0 = 0.7;
  it("third and fourth derivatives of sin, exp and a rational function match closed forms", () => {
    expect(nth("sin(x)", 3, x0)).toBeCloseTo(-Math.cos(x0), 14);
    expect(nth("sin(x)", 4, x0)).toBeCloseTo(Math.sin(x0), 14);
    expect(nth("exp(2*x)", 3, x0)).toBeCloseTo(8 * Math.exp(2 * x0), 12);
    expect(nth("exp(2*x)", 4, x0)).toBeCloseTo(16 * Math.exp(2 * x0), 11);
    // r(x) = 1/(1+x): r⁽ⁿ⁾ = (−1)ⁿ n! / (1+x)ⁿ⁺¹
    expect(nth("1/(1+x)", 3, x0)).toBeCloseTo(-6 / (1 + x0) ** 4, 12);
    expect(nth("1/(1+x)", 4, x0)).toBeCloseTo(24 / (1 + x0) ** 5, 12);
    expect(nth("x^5 - 3*x^2", 4, x0)).toBeCloseTo(120 * x0, 11);
    expect(nth("x^5 - 3*x^2", 0, x0)).toBeCloseTo(x0 ** 5 - 3 * x0 ** 2, 14);
  });

  it("give any mixed partial from the sequence of inputs", () => {
    const fn = new CompiledFunction(parseExpression("x^2*y^3 + exp(x*y)"));
    const [x, y] = [0.5, -0.4];
    const r = fn.evaluate({ x, y }, { mode: "derivative", wrt: ["x", "y", "y"] });
    // ∂³/∂x∂y² of x²y³ = 12xy; of e^{xy} = e^{xy}(2x + x²y)
    expect(r.derivative).toBeCloseTo(12 * x * y + Math.exp(x * y) * (2 * x + x * x * y), 12);
    expect(r.partials).toEqual(["x", "y", "y"]);
    expect(fn.evaluate({ x, y }, { mode: "derivative", wrt: ["y", "y", "x"] }).derivative).toBeCloseTo(r.derivative as number, 12);
  });

  it("document what piecewise ops give at second order: relu'' = abs'' = 0", () => {
    expect(nth("relu(x)", 2, 0.5)).toBe(0);
    expect(nth("abs(x)", 2, -0.5)).toBe(0);
    expect(nth("max(x, 1 - x)", 2, 0.5)).toBe(0);
  });
});

describe("differential operators", () => {
  it("Laplacian of Σxᵢ² is 2n, of exp(x)·sin(y) is 0, without building the Hessian", () => {
    const sq = new CompiledFunction(parseExpression("sum(x*x)", [{ name: "x", shape: [5] }]));
    expect(sq.evaluate({ x: { shape: [5], data: [1, -2, 3, 0.5, 7] } }, { mode: "laplacian" }).laplacian).toBe(10);
    const harmonic = new CompiledFunction(parseExpression("exp(x)*sin(y)"));
    expect(Math.abs(harmonic.evaluate({ x: 0.3, y: 1.1 }, { mode: "laplacian" }).laplacian as number)).toBeLessThan(1e-15);
    const r = new CompiledFunction(parseExpression("x^3*y + y^4")).evaluate({ x: 2, y: -1 }, { mode: "laplacian" });
    expect(r.laplacian).toBe(6 * 2 * -1 + 12);
  });

  it("divergence of a vector field pairs output i with input i", () => {
    const field = new CompiledFunction(
      parseExpressions({
        outputs: [
          { name: "Fx", text: "x^2" },
          { name: "Fy", text: "x*y" },
          { name: "Fz", text: "sin(z)" },
        ],
        inputs: [{ name: "x" }, { name: "y" }, { name: "z" }],
      }),
    );
    expect(field.evaluate({ x: 1.5, y: 2, z: 0.25 }, { mode: "divergence" }).divergence).toBeCloseTo(2 * 1.5 + 1.5 + Math.cos(0.25), 14);
    const tensorField = new CompiledFunction(
      parseExpression("x * x * w", [
        { name: "x", shape: [3] },
        { name: "w", shape: [3] },
      ]),
    );
    const r = tensorField.evaluate(
      { x: { shape: [3], data: [1, 2, 3] }, w: { shape: [3], data: [1, 1, 2] } },
      { mode: "divergence", wrt: ["x"] },
    );
    expect(r.divergence).toBe(2 * 1 + 2 * 2 + 4 * 3);
    expect(() => field.evaluate({ x: 1, y: 2, z: 3 }, { mode: "divergence", wrt: ["x"] })).toThrow(
      /as many output elements as input elements: the outputs have 3, the inputs \(wrt\) 1/,
    );
  });
});

describe("gradient checking", () => {
  it("passes on correct functions, reporting the steps and discrepancies", () => {
    const r = new CompiledFunction(parseExpression("x1*exp(-0.5*(x1^2+x2^2))")).evaluate({ x1: 2, x2: 0.5 }, { mode: "check" });
    expect(r.check?.passed).toBe(true);
    expect(r.check?.inputs.x1.step).toBeCloseTo(2 * Math.cbrt(Number.EPSILON), 12);
    expect(r.check?.inputs.x1.absolute).toBeLessThan(1e-9);
    expect(r.check?.inputs.x2.fd).toBeCloseTo(-0.11943296826671962, 8);
    const t = rosenbrock().evaluate(point([0.3, -0.7, 1.2, 0.9, -0.1, 0.5]), { mode: "check" });
    expect(t.check?.passed).toBe(true);
    expect(t.check?.inputs.x.elements).toBe(n);
  });

  it("flags a deliberately wrong derivative rule", () => {
    registerOp(
      elementwise({
        name: "test_wrong_sin",
        arity: 1,
        summary: "sin with a wrong derivative (cos + 0.01), for this test only",
        js: ([a]) => `Math.sin(${a})`,
        partials: (b, [x]) => [b.add(b.op("cos", [x]), b.constant(0.01))],
        domain: [[-1, 1]],
      }),
    );
    const r = new CompiledFunction(parseExpression("test_wrong_sin(x) * y")).evaluate({ x: 0.4, y: 2 }, { mode: "check" });
    expect(r.check?.passed).toBe(false);
    expect(r.check?.inputs.x.passed).toBe(false);
    expect(r.check?.inputs.x.absolute).toBeCloseTo(0.02, 6);
    expect(r.check?.inputs.y.passed).toBe(true);
  });
});

describe("non-finite provenance over the wire modes", () => {
  it("names log of a negative input in the forward pass", () => {
    const r = new CompiledFunction(parseExpression("log(x) + y")).evaluate({ x: -2, y: 1 }, { mode: "reverse" });
    expect(r.nonFinite).toMatchObject({ pass: "forward", op: "log", node: "v1", value: "NaN" });
  });
  it("names the 0/0 of atan2's rule at the origin in the reverse pass, the value itself finite", () => {
    const r = new CompiledFunction(parseExpression("atan2(y, x) + x")).evaluate({ x: 0, y: 0 }, { mode: "reverse" });
    expect(r.outputs.f).toBe(0);
    expect(r.nonFinite).toMatchObject({ pass: "reverse", op: "atan2", node: "v1", value: "NaN" });
  });
});
