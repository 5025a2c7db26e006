import { describe, expect, it } from "vitest";
import { adam } from "../../src/optimize/index.js";
import { maxDistance, quadratic } from "./functions.js";

describe("adam", () => {
  it("reaches the minimum of a convex quadratic to 1e-3", () => {
    // A = diag(1, 4), b = (1, −2): the minimum is A⁻¹b = (1, −0.5).
    const q = quadratic(new Float64Array([1, 0, 0, 4]), new Float64Array([1, -2]));
    const r = adam(q.value, new Float64Array([3, 3]), { learningRate: 0.05, maxIterations: 5000, gtol: 1e-6 });
    expect(r.status).toBe("converged");
    expect(maxDistance(r.x, [1, -0.5])).toBeLessThan(1e-3);
    expect(r.evaluations).toBe(r.iterations + 1);
  });

  it("takes exactly the steps of a hand-written Adam", () => {
    const f = (x: Float64Array, g: Float64Array) => {
      g[0] = 2 * x[0];
      return x[0] * x[0];
    };
    const r = adam(f, new Float64Array([1]), { maxIterations: 3, learningRate: 0.1 });
    let x = 1;
    let m = 0;
    let v = 0;
    for (let t = 1; t <= 3; t++) {
      const g = 2 * x;
      m = 0.9 * m + (1 - 0.9) * g;
      v = 0.999 * v + (1 - 0.999) * g * g;
      x -= (0.1 * (m / (1 - 0.9 ** t))) / (Math.sqrt(v / (1 - 0.999 ** t)) + 1e-8);
    }
    expect(r.status).toBe("max_iterations");
    expect(r.x[0]).toBe(x);
    expect(r.value).toBe(x * x);
  });
});
