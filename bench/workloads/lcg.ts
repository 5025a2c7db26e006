/**
 * The generator every workload in ../shared/workloads.md draws from: s ← 1664525·s + 1013904223 mod 2³²,
 * value (s >>> 8) / 2²⁴, uniform in [0, 1). The state advances before each draw (the first value comes
 * from the seed's successor).
 */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(1664525, s) + 1013904223) >>> 0;
    return (s >>> 8) / 16777216;
  };
}
