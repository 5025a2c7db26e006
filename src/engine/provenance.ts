import type { Graph } from "../ir/graph.js";
import { traceLabels } from "./trace.js";
import { firstNonFinite } from "./values.js";

/** Where a NaN or ±Infinity first appeared. */
export interface NonFiniteReport {
  /** forward: computing values; reverse: propagating adjoints; tangent: propagating tangents. */
  readonly pass: "forward" | "reverse" | "tangent";
  /** The node of the client's function at fault (for a derivative pass, the node whose rule produced it). */
  readonly node: string;
  readonly op: string;
  /** "NaN", "Infinity" or "-Infinity". */
  readonly value: string;
  readonly message: string;
}

export function nonFiniteName(x: number): string {
  return Number.isNaN(x) ? "NaN" : x > 0 ? "Infinity" : "-Infinity";
}

/**
 * Finds the first non-finite value, in evaluation order, among the nodes that lead to a non-finite
 * result. Restricting the search to those ancestors skips NaNs that a `select` discarded. Since the
 * derivative nodes follow the primal ones, "first" also says which pass produced it.
 */
export function findNonFinite(
  derived: Graph,
  primal: Graph,
  origin: Int32Array | undefined,
  derivativePass: "reverse" | "tangent",
  read: (node: number) => number | ArrayLike<number>,
  results: readonly number[],
): NonFiniteReport | undefined {
  const badAt = (node: number) => firstNonFinite(read(node));
  const value = (node: number): number => {
    const v = read(node);
    if (typeof v === "number") return v;
    const i = firstNonFinite(v);
    return i >= 0 ? v[i] : v[0];
  };
  const bad = results.filter((r) => badAt(r) >= 0);
  if (bad.length === 0) return undefined;
  const ancestor = new Uint8Array(derived.nodes.length);
  for (const r of bad) ancestor[r] = 1;
  for (let id = derived.nodes.length - 1; id >= 0; id--) {
    if (ancestor[id]) for (const a of derived.nodes[id].args) ancestor[a] = 1;
  }
  const labels = traceLabels(primal);
  const describe = (id: number) => {
    const node = primal.nodes[id];
    if (node.op === "input") return `input ${node.name}`;
    const operands = node.args
      .filter((a) => primal.nodes[a].shape.length === 0 && primal.nodes[a].op !== "const")
      .map((a) => `${labels[a]} = ${value(a)}`)
      .join(", ");
    return `node ${labels[id]} = ${node.op}(${node.args.map((a) => labels[a] ?? primal.nodes[a].value).join(", ")})${operands ? ` with ${operands}` : ""}`;
  };
  for (let id = 0; id < derived.nodes.length; id++) {
    if (!ancestor[id]) continue;
    const at = badAt(id);
    if (at < 0) continue;
    const v = value(id);
    const name = nonFiniteName(v);
    if (id < primal.nodes.length) {
      const node = primal.nodes[id];
      return {
        pass: "forward",
        node: labels[id] ?? String(node.value),
        op: node.op,
        value: name,
        message: `${name} first appears in the forward pass at ${describe(id)}`,
      };
    }
    const owner = origin?.[id] ?? -1;
    const pass = derivativePass;
    if (owner < 0) return { pass, node: "seed", op: "input", value: name, message: `${name} first appears in the ${pass} seed` };
    const node = primal.nodes[owner];
    return {
      pass,
      node: labels[owner],
      op: node.op,
      value: name,
      message: `${name} first appears in the ${pass} pass, in the derivative rule of ${describe(owner)}`,
    };
  }
  return undefined;
}
