import { describe, expect, it } from "vitest";
import { newtonCg } from "../../src/optimize/index.js";
import { maxDistance, quadratic, rosen, rosenHvp, rosenStart } from "./functions.js";

describe("newtonCg", () => {
  it("solves Rosenbrock n = 2 and n = 100 to all ones", () => {
    for (const n of [2, 100]) {
      const r = newtonCg(rosen, rosenHvp, rosenStart(n));
      expect(r.status).toBe("converged");
      expect(maxDistance(r.x, 1)).toBeLessThan(1e-4);
      expect(r.hvps).toBeGreaterThan(0);
      expect(r.gradientNorm).toBeLessThanOrEqual(1e-5);
    }
  });

  // Not in 1–2 iterations: the forcing term min(0.5, √‖g‖₁)·‖g‖₁ deliberately truncates CG while ‖g‖ is
  // large, so a quadratic takes a few Newton steps. scipy 1.10.1 (same rule) needs 6 iterations here.
  it("solves an SPD quadratic to A⁻¹b in no more iterations than scipy's 6", () => {
    // A = [[4, 1, 0], [1, 3, 1], [0, 1, 2]], b = (1, 2, 3); A⁻¹b = (4, 2, 26)/18 by Cramer's rule (det A = 18).
    const a = new Float64Array([4, 1, 0, 1, 3, 1, 0, 1, 2]);
    const q = quadratic(a, new Float64Array([1, 2, 3]));
    const r = newtonCg(q.value, q.hvp, new Float64Array(3), { gtol: 1e-9 });
    expect(r.status).toBe("converged");
    expect(r.iterations).toBeLessThanOrEqual(6);
    expect(maxDistance(r.x, [4 / 18, 2 / 18, 26 / 18])).toBeLessThan(1e-8);
  });

  it("reports a non-finite start", () => {
    const r = newtonCg(() => Number.NaN, rosenHvp, new Float64Array(2));
    expect(r.status).toBe("non_finite");
    expect(r.evaluations).toBe(1);
  });
});
