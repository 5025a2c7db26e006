import type { Precision } from "../../compile/scalar-program.js";
import type { Budget } from "../../ir/budget.js";
import type { CompiledGraph, Prepared } from "../compiled-graph.js";
import type { NonFiniteReport } from "../provenance.js";
import type { InputData } from "../run.js";
import type { SectionValues } from "../sections.js";
import type { Trace } from "../trace.js";
import type { NamedValues, Value } from "../values.js";

/** What a request asks of a mode, besides naming it. */
export interface ModeOptions {
  /** Inputs to differentiate with respect to (default: every float input). */
  readonly wrt?: readonly string[];
  /** forward: the direction of the Jacobian-vector product, by input name (without it: a gradient by one sweep per input element). */
  readonly tangent?: NamedValues;
  /** reverse: the weights of the vector-Jacobian product, by output name (without it: the gradient of the single output). */
  readonly cotangent?: NamedValues;
  readonly trace?: boolean;
  readonly precision?: Precision;
  /** Accept NaN and ±Infinity among the inputs. */
  readonly allowNonFinite?: boolean;
  /** jacobian: force forward or reverse sweeps (default: whichever needs fewer). */
  readonly method?: "forward" | "reverse";
  /** derivative: the order of the derivative along one input. */
  readonly order?: number;
  /** jacobian, hessian: the CSR data of each block by compressed sweeps (one per colour), not the dense blocks. */
  readonly sparse?: boolean;
  /**
   * What building this request's programs may cost (derived nodes, tensor elements); unbounded
   * without one. Programs already built are reused whatever the budget.
   */
  readonly budget?: Budget;
}

/** What `check` reports for one input element (tensors: the worst element). */
export interface CheckEntry {
  readonly ad: number;
  readonly fd: number;
  readonly step: number;
  readonly absolute: number;
  readonly relative: number;
  readonly tolerance: number;
  readonly passed: boolean;
  /** Tensor inputs: the element with the largest discrepancy, and how many elements were checked. */
  readonly element?: number;
  readonly elements?: number;
}

export interface CheckReport {
  readonly passed: boolean;
  readonly inputs: Record<string, CheckEntry>;
  readonly rule: string;
}

/** An answer: the numeric sections (engine/sections.ts) a mode fills, and what it says besides. */
export interface Evaluation extends SectionValues {
  readonly outputs: Record<string, Value>;
  readonly trace?: Trace;
  readonly nonFinite?: NonFiniteReport;
  /** jacobian: forward (one sweep per input element) or reverse (one per output element). */
  readonly method?: "forward" | "reverse";
  /** derivative: the inputs differentiated with respect to, in order. */
  readonly partials?: string[];
  readonly check?: CheckReport;
  /** Sparse jacobian and hessian: how many colours (compressed sweeps) the answer took. */
  readonly colors?: number;
  /** Sparse jacobian, hessian: each block's CSR structure (its section holds the data). */
  readonly csr?: Record<string, Record<string, PatternCsr>>;
  /** sparsity: the patterns. */
  readonly sparsity?: SparsityReport;
}

/** Which block of the answer a result fills: the same sections as a single point's answer. */
export interface BatchField {
  readonly section: "outputs" | "gradient" | "jvp" | "vjp";
  readonly name: string;
}

export interface BatchPlan {
  readonly prepared: Prepared;
  /** Result k of the prepared program fills field k. */
  readonly fields: readonly BatchField[];
  /** Per program input: the name of the point's input, or of the tangent/cotangent it takes. */
  readonly inputs: readonly { readonly name: string; readonly kind: "point" | "tangent" | "cotangent" }[];
}

/** One mode: its evaluation at a decoded point, and for modes whose batches vectorise, their plan. */
export interface ModeDefinition {
  evaluate(fn: CompiledGraph, inputs: InputData[], options: ModeOptions): Evaluation;
  /** The one derived program a batch runs vectorised, or undefined when this request cannot. */
  batch?(fn: CompiledGraph, options: ModeOptions): BatchPlan | undefined;
}

/** One block's pattern: a CSR matrix without its data. */
export interface PatternCsr {
  readonly format: "csr";
  readonly shape: [number, number];
  readonly indptr: Int32Array;
  readonly indices: Int32Array;
}

/** The sparsity of a function: its Jacobian's pattern and, for a single scalar output, its Hessian's, with their colour counts. */
export interface SparsityReport {
  readonly jacobian: Record<string, Record<string, PatternCsr>>;
  readonly hessian?: Record<string, Record<string, PatternCsr>>;
  readonly colors: { readonly jacobian: number; readonly method: "forward" | "reverse"; readonly hessian?: number };
}
