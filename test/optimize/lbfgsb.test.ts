import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { lbfgsb } from "../../src/optimize/index.js";
import { maxDistance, quadratic, rosen, rosenStart } from "./functions.js";

describe("lbfgsb", () => {
  it("solves Rosenbrock n = 2 from (−1.2, 1) in scipy's 36 iterations and 44 evaluations", () => {
    const r = lbfgsb(rosen, rosenStart(2));
    expect(r.status).toBe("converged");
    expect(maxDistance(r.x, 1)).toBeLessThan(1e-4);
    // scipy 1.10.1 minimize(rosen, jac=rosen_der, method="L-BFGS-B"): nit 36, nfev 44.
    expect(r.iterations).toBe(36);
    expect(r.evaluations).toBe(44);
  });

  it("solves the extended Rosenbrock n = 100 within 1.25× scipy's evaluations", () => {
    const r = lbfgsb(rosen, rosenStart(100));
    expect(r.status).toBe("converged");
    expect(maxDistance(r.x, 1)).toBeLessThan(1e-4);
    // scipy 1.10.1 with memory 10: nit 515, nfev 619; this code measured 516 iterations, 610 evaluations.
    expect(r.evaluations).toBeLessThanOrEqual(Math.ceil(1.25 * 619));
    expect(r.iterations).toBeGreaterThan(400);
  });

  it("stops at an upper bound with a zero projected gradient", () => {
    const f = (x: Float64Array, g: Float64Array) => {
      let s = 0;
      for (let i = 0; i < x.length; i++) {
        s += (x[i] - 3) ** 2;
        g[i] = 2 * (x[i] - 3);
      }
      return s;
    };
    const r = lbfgsb(f, new Float64Array([0, -1, 5]), { upper: new Float64Array(3).fill(2) });
    expect(r.status).toBe("converged");
    expect(Array.from(r.x)).toEqual([2, 2, 2]);
    expect(r.gradientNorm).toBe(0);
    expect(r.value).toBe(3);
  });

  it("finds scipy's minimum of Rosenbrock with x₂ ≥ 1.5", () => {
    const r = lbfgsb(rosen, new Float64Array([-1.2, 1]), { lower: new Float64Array([Number.NEGATIVE_INFINITY, 1.5]) });
    // scipy 1.10.1, bounds [(None, None), (1.5, None)]: x = (−1.22102624, 1.5), fun 4.941229317989187, nit 4, nfev 6.
    // x₁ is the local minimiser near −1.22 of 100(1.5 − x₁²)² + (1 − x₁)², i.e. a root of −400x₁(1.5 − x₁²) − 2(1 − x₁).
    expect(r.status).toBe("converged");
    expect(r.x[1]).toBe(1.5);
    expect(r.x[0]).toBeCloseTo(-1.22102624, 7);
    expect(r.value).toBeCloseTo(4.941229317989187, 9);
    expect(Math.abs(-400 * r.x[0] * (1.5 - r.x[0] ** 2) - 2 * (1 - r.x[0]))).toBeLessThan(1e-5);
  });

  it("finds the corner of Rosenbrock in the box [−2, 0.8]²", () => {
    const box = { lower: new Float64Array([-2, -2]), upper: new Float64Array([0.8, 0.8]) };
    const r = lbfgsb(rosen, new Float64Array([-1.2, 1]), box);
    // scipy 1.10.1: x = (0.8, 0.64), fun 0.04, nit 3, nfev 4.
    expect(r.status).toBe("converged");
    expect(r.x[0]).toBe(0.8);
    expect(r.x[1]).toBeCloseTo(0.64, 6);
    expect(r.value).toBeCloseTo(0.04, 10);
  });

  it("meets the KKT conditions on random convex quadratics in random boxes", () => {
    const arb = fc.integer({ min: 1, max: 8 }).chain((n) =>
      fc.record({
        n: fc.constant(n),
        m: fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: n * n, maxLength: n * n }),
        b: fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: n, maxLength: n }),
        lo: fc.array(fc.double({ min: -3, max: 1, noNaN: true }), { minLength: n, maxLength: n }),
        width: fc.array(fc.double({ min: 0, max: 4, noNaN: true }), { minLength: n, maxLength: n }),
        start: fc.array(fc.double({ min: -5, max: 5, noNaN: true }), { minLength: n, maxLength: n }),
      }),
    );
    fc.assert(
      fc.property(arb, ({ n, m, b, lo, width, start }) => {
        // A = MᵀM + I is symmetric positive definite, with a condition number the tolerance can meet.
        const a = new Float64Array(n * n);
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            let s = i === j ? 1 : 0;
            for (let k = 0; k < n; k++) s += m[k * n + i] * m[k * n + j];
            a[i * n + j] = s;
          }
        }
        const lower = Float64Array.from(lo);
        const upper = lower.map((l, i) => l + width[i]);
        const q = quadratic(a, Float64Array.from(b));
        const r = lbfgsb(q.value, Float64Array.from(start), { lower, upper, gtol: 1e-9, ftol: 0 });
        const g = new Float64Array(n);
        q.value(r.x, g);
        for (let i = 0; i < n; i++) {
          expect(r.x[i]).toBeGreaterThanOrEqual(lower[i]);
          expect(r.x[i]).toBeLessThanOrEqual(upper[i]);
          // Projected gradient: zero where free, pointing out of the box where at a bound.
          const pg = Math.min(upper[i], Math.max(lower[i], r.x[i] - g[i])) - r.x[i];
          expect(Math.abs(pg)).toBeLessThan(1e-6);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("refuses bounds that are not intervals", () => {
    expect(() => lbfgsb(rosen, new Float64Array(2), { lower: new Float64Array([1, 0]), upper: new Float64Array([0, 0]) })).toThrow(
      /not an interval/,
    );
  });
});
