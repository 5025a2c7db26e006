import type { Graph } from "../ir/graph.js";

/** One row of the textbook evaluation trace: uᵢ = op(operands), with its adjoint ūᵢ or tangent u̇ᵢ. */
export interface TraceRow {
  /** The input's name, the client's node id, or vN numbering the intermediates in evaluation order. */
  readonly id: string;
  readonly op: string;
  /** Operands by id; constants appear as their numbers. */
  readonly args: readonly (string | number)[];
  readonly attrs?: Readonly<Record<string, unknown>>;
  readonly value: unknown;
  readonly adjoint?: unknown;
  readonly tangent?: unknown;
  /** Set on the rows that are outputs of the function. */
  readonly output?: string;
}

export interface Trace {
  readonly mode: "value" | "reverse" | "forward";
  /** Inputs first, then intermediates in evaluation order, the outputs last. */
  readonly rows: readonly TraceRow[];
  /** Reverse mode: where the sweep starts, ū_out = seed. */
  readonly seed?: { readonly id: string; readonly adjoint: unknown };
}

export type NodeReader = (node: number) => unknown;

/**
 * Trace row ids: input names, client labels, an output's name for an unlabelled output node, and
 * v1, v2, … for the remaining intermediates in evaluation order.
 */
export function traceLabels(graph: Graph): string[] {
  const labels = new Array<string>(graph.nodes.length);
  const used = new Set<string>();
  graph.nodes.forEach((node, id) => {
    if (node.op === "input") labels[id] = node.name as string;
    else if (node.label !== undefined) labels[id] = node.label;
    if (labels[id] !== undefined) used.add(labels[id]);
  });
  for (const out of graph.outputs) {
    if (labels[out.node] === undefined && graph.nodes[out.node].op !== "const" && !used.has(out.name)) {
      labels[out.node] = out.name;
      used.add(out.name);
    }
  }
  let k = 0;
  graph.nodes.forEach((node, id) => {
    if (labels[id] !== undefined || node.op === "const") return;
    let label: string;
    do label = `v${++k}`;
    while (used.has(label));
    labels[id] = label;
  });
  return labels;
}

/**
 * Rows for the primal graph's nodes (ids 0…primal−1 of the derived graph), each with its value and,
 * where a derivative pass ran, its adjoint or tangent as `derivative` reads it.
 */
export function buildTrace(primal: Graph, mode: Trace["mode"], read: NodeReader, derivative: NodeReader | undefined): Trace {
  const labels = traceLabels(primal);
  const outputOf = new Map<number, string>();
  for (const o of primal.outputs) if (!outputOf.has(o.node)) outputOf.set(o.node, o.name);
  const rows: TraceRow[] = [];
  primal.nodes.forEach((node, id) => {
    if (node.op === "const") return;
    const args = node.args.map((a) => {
      const arg = primal.nodes[a];
      return arg.op === "const" && arg.data === undefined ? (arg.value as number) : labels[a];
    });
    const row: Record<string, unknown> = { id: labels[id], op: node.op, args, value: read(id) };
    if (node.attrs) row.attrs = node.attrs;
    if (derivative) row[mode === "forward" ? "tangent" : "adjoint"] = derivative(id);
    const out = outputOf.get(id);
    if (out !== undefined) row.output = out;
    rows.push(row as unknown as TraceRow);
  });
  const trace: { mode: Trace["mode"]; rows: TraceRow[]; seed?: Trace["seed"] } = { mode, rows };
  if (mode === "reverse" && derivative && primal.outputs.length === 1) {
    const out = primal.outputs[0].node;
    trace.seed = { id: labels[out], adjoint: derivative(out) };
  }
  return trace;
}
