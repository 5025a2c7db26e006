import { describe, expect, it } from "vitest";
import { cauchyPoint } from "../../src/optimize/cauchy.js";
import { LbfgsMemory } from "../../src/optimize/memory.js";
import { subspaceMinimum } from "../../src/optimize/subspace.js";
import { UnboundedMemory } from "../../src/optimize/unbounded-memory.js";
import { Workspace } from "../../src/optimize/workspace.js";

/** A reproducible stream of numbers in [−1, 1). */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return (2 * state) / 2147483648 - 1;
  };
}

/** Both memories fed the same pairs (y = A s for a diagonal A > 0, so every sᵀy > 0), wrapping round. */
function memories(n: number, capacity: number, pairs: number, next: () => number) {
  const general = new LbfgsMemory(capacity, n);
  const unbounded = new UnboundedMemory(capacity, n);
  const a = Float64Array.from({ length: n }, () => 1.5 + next());
  for (let p = 0; p < pairs; p++) {
    const s = Float64Array.from({ length: n }, () => next());
    const y = s.map((v, i) => a[i] * v + 0.01 * next() * Math.abs(v));
    general.push(s, y);
    unbounded.push(s, y);
  }
  return { general, unbounded };
}

describe("UnboundedMemory.newtonStep", () => {
  it.each([
    [1, 5],
    [4, 5],
    [9, 5],
    [14, 10],
  ])("after %i pairs (memory %i): −B⁻¹g, the direction of the Cauchy point and subspace step with no bounds", (pairs, capacity) => {
    const n = 30;
    const next = random(pairs * 7 + capacity);
    const { general, unbounded } = memories(n, capacity, pairs, next);
    const x = Float64Array.from({ length: n }, () => next());
    const g = Float64Array.from({ length: n }, () => next());
    const box = { lower: new Float64Array(n).fill(-Infinity), upper: new Float64Array(n).fill(Infinity) };

    const ws = new Workspace(n, capacity);
    cauchyPoint(x, g, box, general, ws);
    subspaceMinimum(x, g, box, general, ws);
    const viaSubspace = ws.xbar.map((v, i) => v - x[i]);

    const d = new Float64Array(n);
    unbounded.newtonStep(g, d, new Float64Array(2 * capacity), new Float64Array(2 * capacity));
    expect(unbounded.theta).toBe(general.theta);
    const scale = Math.max(...viaSubspace.map(Math.abs));
    for (let i = 0; i < n; i++) expect(Math.abs(d[i] - viaSubspace[i])).toBeLessThan(1e-10 * scale);

    // And B d = −g, with B = θI − W M Wᵀ applied through the general memory.
    const w = new Float64Array(2 * capacity);
    const mw = new Float64Array(2 * capacity);
    general.wtv(d, w);
    general.mv(w, mw);
    const bd = d.map((v) => general.theta * v);
    general.addWv(mw, -1, bd);
    for (let i = 0; i < n; i++) expect(bd[i]).toBeCloseTo(-g[i], 9);
  });
});
