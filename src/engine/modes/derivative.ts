import { reverse } from "../../ad/reverse.js";
import { invalid } from "../../errors.js";
import { type Budget, BudgetExceeded } from "../../ir/budget.js";
import { Graph } from "../../ir/graph.js";
import { selectInputs } from "../../ir/select.js";
import type { CompiledGraph } from "../compiled-graph.js";
import { run } from "../run.js";
import { element, readSingle } from "./shared.js";
import type { ModeDefinition, ModeOptions } from "./types.js";

/**
 * A higher-order partial derivative ∂ⁿf/∂w₁…∂wₙ of the scalar output, by differentiating the
 * derivative graph once per name in the sequence (reverse mode each time). `order` alone repeats the
 * single input (or the single name of `wrt`).
 */
export const derivative: ModeDefinition = {
  evaluate(fn, inputs, options) {
    const single = fn.singleOutput();
    const sequence = partialSequence(fn, options);
    const make = () => {
      let graph = new Graph(fn.graph.nodes, fn.graph.inputs, [single]);
      let node = single.node;
      let growth = Number.POSITIVE_INFINITY;
      for (let k = 0; k < sequence.length; k++) {
        const before = graph.nodes.length;
        const r = reverse(graph, { wrt: [sequence[k]], cotangent: "seed", budget: options.budget });
        node = r.gradients[0];
        graph = new Graph(r.graph.nodes, r.graph.inputs, [{ name: "d", node }]);
        const ratio = graph.nodes.length / Math.max(1, before);
        if (options.budget) checkGrowth(options.budget, graph.nodes.length, Math.min(ratio, growth), sequence.length - k - 1);
        growth = ratio;
      }
      return { graph, results: [single.node, node], extraInputs: [], pass: "reverse" as const };
    };
    const p = fn.prepare(`derivative|${sequence.join(",")}`, options.precision ?? "float64", make, options.budget);
    run(p.program, inputs);
    return { outputs: readSingle(fn, p), derivative: element(p.program.read(p.results[1]), 0), partials: sequence };
  },
};

/**
 * Each order of a derivative multiplies the graph by about the same factor, so the last orders cost
 * almost everything: the size the remaining orders would reach, at the growth just seen, is refused
 * now (with room to spare for growth that slows down) rather than after seconds of building.
 */
function checkGrowth(budget: Budget, after: number, ratio: number, remaining: number): void {
  // Small graphs prove nothing yet (early orders grow fast, then hash-consing catches up), and are cheap.
  if (remaining === 0 || ratio <= 1.5 || after < Math.min(budget.maxNodes / 4, 10_000)) return;
  const projected = after * ratio ** remaining;
  if (projected > 2 * budget.maxNodes) {
    throw new BudgetExceeded(
      budget.inline
        ? `a derivative graph of about ${Math.round(projected)} nodes is too large for the event loop`
        : `the derivative would need about ${projected.toPrecision(2)} nodes (the graph grows ${ratio.toFixed(1)}-fold per order, ${remaining} orders to go); the limit is ${budget.maxNodes} (${budget.nodesName}): ask for a lower order`,
      budget.inline === true,
      { field: "order" },
    );
  }
}

/**
 * Highest order of a partial derivative, however it is asked for (`order`, or the names in `wrt`,
 * repeated or not): each order differentiates the whole derivative graph built so far again.
 */
export const MAX_ORDER = 16;

/** The inputs a `derivative` request differentiates with respect to, in order: `wrt`, or `order` times one input. */
export function partialSequence(fn: CompiledGraph, options: Pick<ModeOptions, "wrt" | "order">): string[] {
  if (options.wrt !== undefined && Array.isArray(options.wrt) && options.wrt.length > MAX_ORDER) {
    throw invalid(`wrt: a partial derivative of order ${options.wrt.length} was asked for; the highest order is ${MAX_ORDER}`, {
      field: "wrt",
    });
  }
  let sequence = options.wrt ? [...options.wrt] : [];
  if (options.order !== undefined) {
    if (!Number.isInteger(options.order) || options.order < 0 || options.order > MAX_ORDER) {
      throw invalid(`order must be an integer from 0 to ${MAX_ORDER}`, { field: "order" });
    }
    if (sequence.length > 1) {
      throw invalid("give either order (with at most one wrt name) or the sequence of names in wrt, not both", { field: "order" });
    }
    const name = sequence[0] ?? (fn.graph.inputs.length === 1 ? fn.graph.inputs[0].name : undefined);
    if (name === undefined) {
      throw invalid("order needs the input to differentiate: name it in wrt, since the function has several inputs", { field: "wrt" });
    }
    sequence = new Array(options.order).fill(name);
  } else if (sequence.length === 0) {
    throw invalid('mode derivative needs order (for one input) or wrt, the sequence of inputs, e.g. ["x", "y", "y"] for ∂³f/∂x∂y²', {
      field: "wrt",
    });
  }
  for (const name of sequence) {
    const input = selectInputs(fn.graph, [name])[0];
    if (fn.graph.nodes[input.node].shape.length !== 0) {
      throw invalid(`wrt: ${name} is a tensor; higher-order partials take scalar inputs`, { field: "wrt", input: name });
    }
  }
  return sequence;
}
