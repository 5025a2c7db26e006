import { AdjointError } from "../errors.js";
import { extentOf, formatShape, type Shape } from "../tensor/shape.js";

/**
 * What one request may build: nodes of the graphs derived from its function, and elements of the
 * programs compiled from them. A plain object, so that it travels to workers inside the request.
 */
export interface Budget {
  /** Most nodes a derived graph may reach (the function's own nodes included). */
  readonly maxNodes: number;
  /** Most elements a compiled program may hold at once, and the most one node's loop may iterate. */
  readonly maxElements: number;
  /** What grows, in messages (default: the graphs derived for the request). */
  readonly subject?: string;
  /** How the node limit is named in messages (its setting). */
  readonly nodesName: string;
  /** How the element limit is named in messages. */
  readonly elementsName: string;
  /**
   * Set on the small budget of work tried on the event loop: going past it does not refuse the
   * request, it sends it to the pool (BudgetExceeded.inline).
   */
  readonly inline?: boolean;
}

/**
 * A budget ran out. Outside the event loop's small budget this is the client's answer
 * (resource_exhausted); with `inline` set, the service retries the request on the pool instead.
 */
export class BudgetExceeded extends AdjointError {
  readonly inline: boolean;
  constructor(message: string, inline: boolean, location: AdjointError["location"] = {}) {
    super("resource_exhausted", message, location);
    this.name = "BudgetExceeded";
    this.inline = inline;
  }
}

/**
 * The largest extent any axis may have: beyond it lengths and offsets stop being exact small
 * integers in the kernels, and no tensor that large fits in memory anyway.
 */
export const MAX_DIMENSION = 2 ** 31 - 1;

/** Loop iterations over a shape (every axis at least once); defined with the shapes, in tensor/. */
export { extentOf };

export function nodeBudgetError(budget: Budget): BudgetExceeded {
  return new BudgetExceeded(
    budget.inline
      ? `the derived graph grew past ${budget.maxNodes} nodes, the most built on the event loop`
      : budget.subject !== undefined
        ? `${budget.subject} has ${budget.maxNodes + 1} nodes; the limit is ${budget.maxNodes} (${budget.nodesName}); building stopped there`
        : `the graphs derived for this request grew past ${budget.maxNodes} nodes; the limit is ${budget.maxNodes} (${budget.nodesName}): ask for a lower order, fewer inputs in wrt, or a smaller function`,
    budget.inline === true,
  );
}

/** A shape whose loop would iterate more than the budget allows, found before anything is allocated. */
export function extentError(budget: Budget, shape: Shape, where: string, node?: string): BudgetExceeded {
  return new BudgetExceeded(
    `${where}: shape ${formatShape(shape)} iterates ${extentOf(shape)} elements (every axis counted as at least 1); the limit is ${budget.maxElements} (${budget.elementsName})`,
    budget.inline === true,
    node === undefined ? {} : { node },
  );
}

/**
 * The budget a function's own graph is built under while it is read (parsed, or compiled from a
 * model): ADJOINT_MAX_NODES, enforced as it grows rather than after. None without a limit.
 */
export function functionBudget(maxNodes: number | undefined): Budget | undefined {
  if (maxNodes === undefined) return undefined;
  return {
    maxNodes,
    maxElements: Number.POSITIVE_INFINITY,
    subject: "the function",
    nodesName: "ADJOINT_MAX_NODES",
    elementsName: "ADJOINT_MAX_TENSOR_ELEMENTS",
  };
}
