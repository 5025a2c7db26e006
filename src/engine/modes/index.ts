import { check } from "./check.js";
import { derivative } from "./derivative.js";
import { divergence } from "./divergence.js";
import { forward } from "./forward.js";
import { hessian, hvp, laplacian } from "./hessian.js";
import { jacobian } from "./jacobian.js";
import { reverse } from "./reverse.js";
import { sparsity } from "./sparsity.js";
import type { ModeDefinition } from "./types.js";
import { value } from "./value.js";

/**
 * Every mode of the engine, the one list of them: a new mode is one file here and one entry below
 * (and its plan in service/mode-plans.ts, which the type checker asks for). The order is the one that
 * manifests and error messages show.
 */
export const MODE_TABLE = {
  value,
  reverse,
  forward,
  jacobian,
  hessian,
  hvp,
  derivative,
  divergence,
  laplacian,
  check,
  sparsity,
} as const satisfies Record<string, ModeDefinition>;

export type Mode = keyof typeof MODE_TABLE;

export const MODE_NAMES = Object.keys(MODE_TABLE) as readonly Mode[];

/** The mode named `name`, or undefined when there is none (a name never reads what the table inherits). */
export function modeOf(name: string): ModeDefinition | undefined {
  return Object.hasOwn(MODE_TABLE, name) ? MODE_TABLE[name as Mode] : undefined;
}

export { CHECK_RULE } from "./check.js";
export { MAX_ORDER, partialSequence } from "./derivative.js";
export { jacobianMethod } from "./jacobian.js";
export { type SparseBlock, type SparsePlan, sparsePlan } from "./sparse-plan.js";
export { nestedBlocks, type PatternCsr, type SparsityReport, sparsityReport } from "./sparsity.js";
export type { BatchField, BatchPlan, CheckEntry, CheckReport, Evaluation, ModeDefinition, ModeOptions } from "./types.js";
