import { invalid } from "../errors.js";
import type { Budget } from "../ir/budget.js";
import { GraphBuilder } from "../ir/builder.js";
import type { Graph, IrNode, NamedNode } from "../ir/graph.js";
import { activeNodes, originTable, selectInputs, selectOutputs } from "../ir/select.js";
import { findOp } from "../ops/registry.js";
import { unbroadcast, zerosOf } from "../ops/rule-helpers.js";
import type { MaybeNode, OpDef, RuleBuilder } from "../ops/types.js";

export interface ReverseResult {
  /** The primal graph with the adjoint nodes appended; primal node ids are unchanged. */
  readonly graph: Graph;
  /** Adjoint node of each primal node, or null where it is identically zero. */
  readonly adjoints: readonly MaybeNode[];
  /** One node per `wrt` input: its gradient (a zero constant where no path leads to the outputs). */
  readonly gradients: readonly number[];
  /** The cotangent inputs added for a vector-Jacobian product, one per output. */
  readonly cotangents: readonly NamedNode[];
  /** For each node the transform added: the primal node whose rule built it (−1 for seeds). */
  readonly origin: Int32Array;
}

export interface ReverseOptions {
  /** Names of the outputs to differentiate (default: all). */
  readonly outputs?: readonly string[];
  /** Names of the inputs to differentiate with respect to (default: all float inputs). */
  readonly wrt?: readonly string[];
  /**
   * "seed": the scalar output's adjoint is the constant 1 (a gradient).
   * "input": each output's cotangent is a new input `cotangent:<name>` (a vector-Jacobian product).
   */
  readonly cotangent: "seed" | "input";
  /** Refuses to build past it (the request's budget); unbounded without one. */
  readonly budget?: Budget;
}

export const COTANGENT_PREFIX = "cotangent:";

/**
 * Reverse mode as a graph transform: sweep the nodes backwards from the outputs, asking each op's
 * rule for the cotangents of its operands and summing them where a node has several users. The
 * result is a graph, so it can be compiled like any other, and differentiated again.
 */
export function reverse(graph: Graph, options: ReverseOptions): ReverseResult {
  const b = GraphBuilder.extend(graph, options.budget);
  const n = graph.nodes.length;
  const outputs = selectOutputs(graph, options.outputs);
  const wrt = selectInputs(graph, options.wrt);

  const active = activeNodes(
    graph,
    wrt.map((w) => w.node),
  );
  const adjoints: MaybeNode[] = new Array(n).fill(null);
  const cotangents: NamedNode[] = [];
  for (const out of outputs) {
    const node = graph.nodes[out.node];
    let seed: number;
    if (options.cotangent === "seed") {
      if (node.shape.length !== 0) {
        throw invalid(
          `output ${out.name} has shape [${node.shape.join(", ")}]: a gradient needs a scalar output; ask for a vector-Jacobian product with a cotangent instead`,
        );
      }
      seed = b.constant(1);
    } else {
      const name = `${COTANGENT_PREFIX}${out.name}`;
      seed = b.input(name, node.shape);
      cotangents.push({ name, node: seed });
    }
    if (active[out.node]) adjoints[out.node] = accumulate(b, adjoints[out.node], seed);
  }

  const origins: [number, number][] = [];
  for (let id = n - 1; id >= 0; id--) {
    const ct = adjoints[id];
    const node = graph.nodes[id];
    if (ct === null || node.args.length === 0) continue;
    const def = findOp(node.op) as OpDef;
    const needs = node.args.map((a, k) => active[a] === 1 && def.differentiable?.[k] !== false);
    if (!needs.some(Boolean)) continue;
    const before = b.nodes.length;
    const contributions = operandCotangents(b, def, node, id, ct, needs);
    node.args.forEach((arg, k) => {
      const c = needs[k] ? contributions[k] : null;
      if (c !== null && c !== undefined) adjoints[arg] = accumulate(b, adjoints[arg], c);
    });
    origins.push([before, id]);
  }

  const gradients = wrt.map((w) => adjoints[w.node] ?? zerosOf(b, graph.nodes[w.node].shape));
  const resultOutputs = [...outputs, ...wrt.map((w, k) => ({ name: gradientOutput(w.name), node: gradients[k] }))];
  return { graph: b.snapshot(resultOutputs), adjoints, gradients, cotangents, origin: originTable(n, b.nodes.length, origins) };
}

/**
 * The name of the output holding the gradient with respect to `input` in the graph `reverse` returns:
 * a later transform (forward-over-reverse) selects the gradients by it.
 */
export function gradientOutput(input: string): string {
  return `gradient:${input}`;
}

function operandCotangents(b: RuleBuilder, def: OpDef, node: IrNode, id: number, ct: number, needs: readonly boolean[]): MaybeNode[] {
  if (def.vjp) {
    const raw = def.vjp(b, node.args, id, ct, needs, node.attrs);
    // Elementwise rules work at the output's shape; an operand that was broadcast sums back down.
    if (def.kind !== "elementwise") return raw;
    return raw.map((c, k) => (c === null || !needs[k] ? null : unbroadcast(b, c, b.shape(node.args[k]))));
  }
  if (!def.partials) throw new Error(`op ${def.name} has no reverse rule`);
  const partials = def.partials(b, node.args, id, needs);
  return partials.map((p, k) => (p === null || !needs[k] ? null : unbroadcast(b, b.mul(ct, p), b.shape(node.args[k]))));
}

function accumulate(b: RuleBuilder, sum: MaybeNode, term: number): number {
  return sum === null ? term : b.add(sum, term);
}
