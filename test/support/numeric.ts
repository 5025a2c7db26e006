import { reverse } from "../../src/ad/reverse.js";
import { ScalarProgram } from "../../src/compile/scalar-program.js";
import type { Graph } from "../../src/ir/graph.js";

/** A small deterministic generator (mulberry32), so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Evaluates a graph's first output at a point given in input order. */
export function evaluator(graph: Graph, output = 0): (x: readonly number[]) => number {
  const p = new ScalarProgram(graph, [graph.outputs[output].node]);
  return (x) => {
    p.setInputs(x);
    p.run();
    return p.output(0);
  };
}

/** Central differences with a step scaled to each coordinate; O(h²) error. */
export function centralGradient(f: (x: readonly number[]) => number, x: readonly number[], rel = 1e-5): number[] {
  return x.map((xi, i) => {
    const h = rel * Math.max(1, Math.abs(xi));
    const up = [...x];
    const down = [...x];
    up[i] = xi + h;
    down[i] = xi - h;
    return (f(up) - f(down)) / (2 * h);
  });
}

/** Reverse-mode gradient of the graph's single output, in input order. */
export function reverseGradient(graph: Graph): (x: readonly number[]) => number[] {
  const r = reverse(graph, { cotangent: "seed" });
  const p = new ScalarProgram(r.graph, r.gradients);
  return (x) => {
    p.setInputs(x);
    p.run();
    return r.gradients.map((_, k) => p.output(k));
  };
}

export function expectClose(actual: number, expected: number, rel: number, abs = rel): boolean {
  return Math.abs(actual - expected) <= abs + rel * Math.abs(expected);
}
