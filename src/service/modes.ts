import type { CompiledFunction, EvaluateRequest, Mode } from "../engine/compiled-function.js";
import { MODE_NAMES } from "../engine/modes/index.js";
import { invalid } from "../errors.js";
import type { Budget } from "../ir/budget.js";
import type { LruMap } from "../runtime/lru.js";
import { COST } from "../runtime/scheduler.js";
import { type BaseRequest, checkFields, MODE_PLANS, type ModePlan, type PlanLimits, planWithLimits, type SpecPlan } from "./mode-plans.js";
import type { DifferentiateInput } from "./types.js";

export { MAX_FIELDS, MODE_PLANS, type ModePlan, type PlanLimits } from "./mode-plans.js";

/**
 * Derived graphs may have this many times their function's nodes (a Hessian's graph is about 12 times
 * its function's), at least ADJOINT_MAX_NODES and at most DERIVED_NODES_CAP times it. The floor lets
 * small functions have high-order derivatives; the proportion keeps a 12-op expression from building a
 * million nodes (6 s and 600 MB of a worker) before it is refused.
 */
export const DERIVED_NODES_PER_NODE = 16;
export const DERIVED_NODES_CAP = 10;

/** The budgets of a function's requests planned under `limits`: the full one (pool) and the event loop's. */
export function budgetsFor(limits: PlanLimits, functionNodes = 0): { pool: Budget; inline: Budget } {
  const pool: Budget = {
    maxNodes: Math.min(DERIVED_NODES_CAP * limits.maxNodes, Math.max(limits.maxNodes, DERIVED_NODES_PER_NODE * functionNodes)),
    maxElements: 2 * limits.maxTensorElements,
    nodesName: `${DERIVED_NODES_PER_NODE} × the function's nodes, at least ADJOINT_MAX_NODES and at most ${DERIVED_NODES_CAP} × ADJOINT_MAX_NODES`,
    elementsName: "2 × ADJOINT_MAX_TENSOR_ELEMENTS",
  };
  const inline: Budget = { ...pool, maxNodes: Math.min(pool.maxNodes, COST.inlineMaxNodes), inline: true };
  return { pool, inline };
}

export { MODE_NAMES };
export const DEFAULT_MODE = "reverse";

export interface PlannedMode {
  readonly mode: string;
  readonly plan: ModePlan;
}

/**
 * The plan for a request's mode (reverse by default): the one place that dispatches on the mode.
 * Plans without a tangent or cotangent depend only on the settings, so they are kept per function.
 */
export function planMode(
  fn: CompiledFunction,
  input: DifferentiateInput,
  cache?: LruMap<string, unknown>,
  defaultWrt?: readonly string[],
  limits?: PlanLimits,
): PlannedMode {
  if (cache === undefined || input.tangent !== undefined || input.cotangent !== undefined) return makePlan(fn, input, defaultWrt, limits);
  const key = plainRequest(input) ? PLAIN_KEY : planKey(input);
  let planned = cache.get(key) as PlannedMode | undefined;
  if (planned === undefined) {
    planned = makePlan(fn, input, defaultWrt, limits);
    cache.set(key, planned);
  }
  return planned;
}

/** The settings that shape a plan, as a cache key. */
function planKey(input: DifferentiateInput): string {
  return `${input.mode}|${input.wrt?.join(",")}|${input.trace}|${input.allowNonFinite}|${input.precision}|${input.order}|${input.method}|${input.sparse}`;
}

/** The key of a request that sets none of them (the worked example, most optimiser calls), written once. */
const PLAIN_KEY = planKey({} as DifferentiateInput);

/** No setting that shapes the plan is given: its key need not be written out for every request. */
function plainRequest(input: DifferentiateInput): boolean {
  return (
    input.mode === undefined &&
    input.wrt === undefined &&
    input.trace === undefined &&
    input.allowNonFinite === undefined &&
    input.precision === undefined &&
    input.order === undefined &&
    input.method === undefined &&
    input.sparse === undefined
  );
}

function makePlan(fn: CompiledFunction, input: DifferentiateInput, defaultWrt?: readonly string[], limits?: PlanLimits): PlannedMode {
  const mode = input.mode ?? DEFAULT_MODE;
  const spec = Object.hasOwn(MODE_PLANS, mode) ? MODE_PLANS[mode as Mode] : undefined;
  if (spec === undefined) {
    throw invalid(`mode: unknown mode ${JSON.stringify(mode)}; the modes are ${MODE_NAMES.join(", ")}`, { field: "mode" });
  }
  if (input.tangent !== undefined && mode !== "forward" && mode !== "hvp") {
    throw invalid("tangent: only the forward and hvp modes take a tangent", { field: "tangent" });
  }
  if (input.trace && mode !== "value" && mode !== "reverse" && mode !== "forward") {
    throw invalid("trace: only the value, reverse and forward modes record a trace", { field: "trace" });
  }
  if (input.order !== undefined && mode !== "derivative")
    throw invalid("order: only the derivative mode takes an order", { field: "order" });
  if (input.method !== undefined && mode !== "jacobian")
    throw invalid("method: only the jacobian mode takes a method", { field: "method" });
  if (input.sparse && mode !== "jacobian" && mode !== "hessian")
    throw invalid("sparse: only the jacobian and hessian modes answer in sparse form", { field: "sparse" });
  if (input.cotangent !== undefined && mode !== "reverse") {
    throw invalid("cotangent: only reverse mode takes a cotangent", { field: "cotangent" });
  }
  const base: BaseRequest = {
    wrt: input.wrt ?? defaultWrt,
    trace: input.trace ?? false,
    precision: input.precision,
    allowNonFinite: input.allowNonFinite ?? false,
  };
  const made: SpecPlan = planWithLimits(spec, fn, input, base, limits);
  const { growth = spec.growth, ...plan } = made;
  checkFields(
    plan.fields.length,
    plan.fields.reduce((n, f) => n + f.size, 0),
    limits,
  );
  // The service's decoder enforces the non-finite policy on every input, tangent and cotangent, once;
  // the engine need not scan the same values again. (Results are checked by the service as well.)
  const budgets = limits === undefined ? undefined : budgetsFor(limits, fn.graph.size);
  const request: EvaluateRequest = { ...plan.request, allowNonFinite: true, budget: budgets?.pool };
  const inlineRequest: EvaluateRequest = budgets === undefined ? request : { ...request, budget: budgets.inline };
  return { mode, plan: { ...plan, request, inlineRequest, derivedNodes: Math.min(fn.graph.size * growth, Number.MAX_SAFE_INTEGER) } };
}
