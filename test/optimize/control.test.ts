import { describe, expect, it } from "vitest";
import { adam, lbfgsb, type MinimizeOptions, type MinimizeResult, newtonCg, type Objective } from "../../src/optimize/index.js";
import { rosen, rosenHvp, rosenStart } from "./functions.js";

const methods: [string, (f: Objective, x0: Float64Array, o: MinimizeOptions) => MinimizeResult][] = [
  ["lbfgsb", lbfgsb],
  ["newtonCg", (f, x0, o) => newtonCg(f, rosenHvp, x0, o)],
  ["adam", adam],
];

describe.each(methods)("%s run control", (_name, minimize) => {
  it("stops when shouldStop turns true, after 3 iterations, at the point reached", () => {
    let polls = 0;
    const r = minimize(rosen, rosenStart(4), { shouldStop: () => ++polls > 3 });
    expect(r.status).toBe("cancelled");
    expect(r.iterations).toBe(3);
    const g = new Float64Array(4);
    expect(rosen(r.x, g)).toBe(r.value);
    expect(r.history.at(-1)?.iteration).toBe(3);
  });

  it("stops at the time limit on the given clock", () => {
    let clock = 0;
    const r = minimize(rosen, rosenStart(4), { timeLimitMs: 50, now: () => (clock += 10) });
    expect(r.status).toBe("time_limit");
    expect(r.iterations).toBeGreaterThan(0);
    expect(r.iterations).toBeLessThan(10);
  });

  it("reports a non-finite start without iterating", () => {
    const r = minimize(
      (x, g) => {
        g.fill(Number.NaN);
        return x[0];
      },
      rosenStart(2),
      {},
    );
    expect(r.status).toBe("non_finite");
    expect(r.iterations).toBe(0);
    expect(r.message).toMatch(/starting point/);
  });

  it("stops at maxIterations and records progress every progressEvery iterations and at the end", () => {
    const seen: number[] = [];
    const r = minimize(rosen, rosenStart(4), { maxIterations: 7, progressEvery: 3, onProgress: (p) => seen.push(p.iteration) });
    expect(r.status).toBe("max_iterations");
    expect(r.iterations).toBe(7);
    expect(r.history.map((p) => p.iteration)).toEqual([0, 3, 6, 7]);
    expect(seen).toEqual([0, 3, 6, 7]);
    expect(r.history.at(-1)?.value).toBe(r.value);
  });
});

describe("line search recovery", () => {
  it("backtracks from a non-finite region", () => {
    // log barrier: undefined for x ≤ 0; the first steepest-descent step overshoots into it.
    const f: Objective = (x, g) => {
      g[0] = 1 - 1 / x[0];
      return x[0] - Math.log(x[0]);
    };
    const r = lbfgsb(f, new Float64Array([0.05]), {});
    expect(r.status).toBe("converged");
    expect(r.x[0]).toBeCloseTo(1, 4);
  });
});
