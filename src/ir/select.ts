import { invalid } from "../errors.js";
import type { Graph, NamedNode } from "./graph.js";

// Graph queries shared by the transforms (ad/), the engine and the service: none of them is about
// differentiation, so they live with the IR and the service need not import a transform for them.

export function selectOutputs(graph: Graph, names: readonly string[] | undefined): readonly NamedNode[] {
  if (!names) return graph.outputs;
  return names.map((name) => {
    const out = graph.outputs.find((o) => o.name === name);
    if (!out)
      throw invalid(`unknown output ${name}; the function's outputs are ${graph.outputs.map((o) => o.name).join(", ")}`, {
        field: "outputs",
      });
    return out;
  });
}

export function selectInputs(graph: Graph, names: readonly string[] | undefined): readonly NamedNode[] {
  if (!names) return graph.inputs.filter((i) => graph.nodes[i.node].dtype === "float");
  const seen = new Set<string>();
  return names.map((name) => {
    const input = graph.inputNamed(name);
    if (!input)
      throw invalid(`wrt names ${name}, which is not an input; the inputs are ${graph.inputs.map((i) => i.name).join(", ")}`, {
        field: "wrt",
        input: name,
      });
    if (graph.nodes[input.node].dtype !== "float")
      throw invalid(`wrt names ${name}, an integer input: it has no derivative`, { field: "wrt", input: name });
    if (seen.has(name)) throw invalid(`wrt names ${name} twice`, { field: "wrt", input: name });
    seen.add(name);
    return input;
  });
}

/** Nodes that depend on at least one of the given sources (in reverse mode, the ones that carry derivatives). */
export function activeNodes(graph: Graph, sources: readonly number[]): Uint8Array {
  const active = new Uint8Array(graph.nodes.length);
  for (const s of sources) active[s] = 1;
  graph.nodes.forEach((node, id) => {
    if (active[id] || node.args.length === 0) return;
    for (const a of node.args) {
      if (active[a]) {
        active[id] = 1;
        return;
      }
    }
  });
  return active;
}

/** Expands [first new node, primal node] marks, in creation order, into a per-node table. */
export function originTable(primalSize: number, size: number, marks: readonly (readonly [number, number])[]): Int32Array {
  const origin = new Int32Array(size).fill(-1);
  marks.forEach(([start, primal], k) => {
    const end = k + 1 < marks.length ? marks[k + 1][0] : size;
    origin.fill(primal, Math.max(start, primalSize), end);
  });
  return origin;
}
