import type { CompiledFunction, EvaluateRequest, Mode } from "../engine/compiled-function.js";
import { jacobianMethod, nestedBlocks, partialSequence, sparsePlan, sparsityReport } from "../engine/modes/index.js";
import { exhausted, invalid } from "../errors.js";
import type { NamedNode } from "../ir/graph.js";
import { selectInputs } from "../ir/select.js";
import type { Field } from "../runtime/batch.js";
import { sizeOf } from "../tensor/shape.js";
import { DecodeContext, decodeValues } from "./tensor.js";
import type { DifferentiateInput, NamedValues, ResultRow } from "./types.js";

/**
 * The plan of every mode of the engine (engine/modes/), in one table: what the engine is asked, which
 * result fields a point gets (the blocks of a batch), and the cost in sweeps per point for the
 * scheduler. A new engine mode needs an entry here (the type checker says so), plus its name in
 * openapi.yaml's Mode enum and in the proto's Mode enum (a test checks the three agree).
 */
export interface ModePlan {
  /** What a worker is asked: carries the request's full budget. */
  readonly request: EvaluateRequest;
  /** The same, with the event loop's small budget: going past it sends the request to the pool. */
  readonly inlineRequest: EvaluateRequest;
  /** Estimated nodes of the graphs this mode derives from the function, before any is built. */
  readonly derivedNodes: number;
  /** Set once an inline build ran past the small budget: later requests go straight to the pool. */
  inlineRefused?: boolean;
  readonly fields: readonly Omit<Field, "offset">[];
  /** Sweeps over the function per point (the forward pass counts as one). */
  readonly sweeps: number;
  /** What every point's answer says besides its numbers (the Jacobian's method, the partials taken). */
  readonly annotations?: Pick<ResultRow, "method" | "partials" | "colors" | "csr" | "sparsity">;
}

export interface ModeSpec {
  readonly summary: string;
  /** Highest order of derivative the mode computes. */
  readonly order: number;
  /**
   * Nodes of the derived graphs per node of the function (reverse mode adds about three adjoint
   * nodes per primal one, forward-over-reverse about three per node of the reverse graph).
   */
  readonly growth: number;
  plan(fn: CompiledFunction, input: DifferentiateInput, base: BaseRequest): SpecPlan;
}

export type SpecPlan = Omit<ModePlan, "inlineRequest" | "derivedNodes" | "inlineRefused"> & {
  /** Overrides the mode's growth (a derivative's depends on its order). */
  readonly growth?: number;
};

/**
 * Most result fields of one point: a Hessian of n named inputs has n² of them, each an object in
 * the answer, so they are counted before any is made.
 */
export const MAX_FIELDS = 100_000;

/** The limits a plan is checked against (the service's settings). */
export interface PlanLimits {
  readonly maxNodes: number;
  readonly maxTensorElements: number;
}

/** Refuses an answer too big to lay out, before a single field of it is made. */
export function checkFields(count: number, elements: number, limits: PlanLimits | undefined): void {
  if (count > MAX_FIELDS) {
    throw exhausted(`the answer would have ${count} result fields per point; the limit is ${MAX_FIELDS}: ask for fewer inputs in wrt`, {
      field: "wrt",
    });
  }
  if (limits !== undefined && elements > 2 * limits.maxTensorElements) {
    throw exhausted(
      `the answer would have ${elements} elements per point; the limit is ${2 * limits.maxTensorElements} (2 × ADJOINT_MAX_TENSOR_ELEMENTS): ask for fewer inputs in wrt, or (jacobian, hessian) for sparse: true`,
      { field: "wrt" },
    );
  }
}

export type BaseRequest = Pick<EvaluateRequest, "wrt" | "trace" | "precision" | "allowNonFinite">;

function fieldsOf(fn: CompiledFunction, section: Field["section"], nodes: readonly NamedNode[]): Omit<Field, "offset">[] {
  return nodes.map((n) => {
    const shape = fn.graph.nodes[n.node].shape;
    return { section, name: n.name, shape, size: sizeOf(shape) };
  });
}

/** Fields keyed by two names (jacobian[output][input], hessian[a][b]), each shaped a ⊗ b. */
function pairFields(
  fn: CompiledFunction,
  section: Field["section"],
  rows: readonly NamedNode[],
  cols: readonly NamedNode[],
): Omit<Field, "offset">[] {
  checkFields(rows.length * cols.length, elementsOf(fn, rows) * elementsOf(fn, cols), activeLimits);
  return rows.flatMap((r) =>
    cols.map((c) => {
      const shape = [...fn.graph.nodes[r.node].shape, ...fn.graph.nodes[c.node].shape];
      return { section, name: r.name, key: c.name, shape, size: sizeOf(shape) };
    }),
  );
}

/** A field holding one number per point (derivative, divergence, laplacian). */
const scalarField = (section: Field["section"]): Omit<Field, "offset"> => ({ section, name: section, shape: [], size: 1 });

const elementsOf = (fn: CompiledFunction, nodes: readonly NamedNode[]) =>
  nodes.reduce((n, w) => n + sizeOf(fn.graph.nodes[w.node].shape), 0);

/** The single scalar output a mode needs, as a field list (the engine checks and explains). */
const singleOutput = (fn: CompiledFunction) => {
  fn.singleOutput();
  return outputs(fn);
};

/** A tangent or cotangent, decoded like a point. */
const decodeDirection = (values: NamedValues, field: string, base: BaseRequest) =>
  decodeValues(values, field, new DecodeContext(base.allowNonFinite ?? false, Number.POSITIVE_INFINITY));

const outputs = (fn: CompiledFunction) => fieldsOf(fn, "outputs", fn.graph.outputs);
const wrtOf = (fn: CompiledFunction, base: BaseRequest) => selectInputs(fn.graph, base.wrt);

/**
 * The limits of the plan being made, for the field checks deep inside the mode table (set only
 * for the duration of one synchronous planWithLimits).
 */
let activeLimits: PlanLimits | undefined;

/** Runs one mode's plan with `limits` visible to the field checks inside the table. */
export function planWithLimits(
  spec: ModeSpec,
  fn: CompiledFunction,
  input: DifferentiateInput,
  base: BaseRequest,
  limits?: PlanLimits,
): SpecPlan {
  activeLimits = limits;
  try {
    return spec.plan(fn, input, base);
  } finally {
    activeLimits = undefined;
  }
}

/**
 * A sparse Jacobian or Hessian: the pattern and colouring are planned here once per function (the
 * engine caches them), pattern detection bounded by the tensor element limit; each block is a field
 * of its nnz values, and its CSR structure goes beside the numbers as an annotation.
 */
function sparseFields(fn: CompiledFunction, section: "jacobian" | "hessian", base: BaseRequest, method?: "forward" | "reverse") {
  const plan = sparsePlan(fn, section, wrtOf(fn, base), sparseBudget(), method);
  const fields = plan.blocks.map((b) => ({ section, name: b.row, key: b.col, shape: [b.indices.length], size: b.indices.length }));
  const csr = nestedBlocks(plan.blocks, (b) => ({ format: "csr" as const, shape: b.shape, indptr: b.indptr, indices: b.indices }));
  return { plan, fields, annotations: { colors: plan.coloring.count, csr } };
}

const sparseBudget = () =>
  activeLimits && {
    maxNodes: activeLimits.maxNodes,
    maxElements: 2 * activeLimits.maxTensorElements,
    nodesName: "ADJOINT_MAX_NODES",
    elementsName: "2 × ADJOINT_MAX_TENSOR_ELEMENTS",
  };

export const MODE_PLANS: { readonly [M in Mode]: ModeSpec } = {
  value: {
    summary: "the outputs only",
    order: 0,
    growth: 1,
    plan: (fn, _input, base) => ({ request: { ...base, mode: "value" }, fields: outputs(fn), sweeps: 1 }),
  },
  reverse: {
    summary: "reverse mode: the gradient of the single output, or with a cotangent the vector-Jacobian product",
    order: 1,
    growth: 4,
    plan: (fn, input, base) => {
      const wrt = wrtOf(fn, base);
      if (input.cotangent === undefined) {
        return { request: { ...base, mode: "reverse" }, fields: [...outputs(fn), ...fieldsOf(fn, "gradient", wrt)], sweeps: 3 };
      }
      const cotangent = decodeValues(
        input.cotangent,
        "cotangent",
        new DecodeContext(base.allowNonFinite ?? false, Number.POSITIVE_INFINITY),
      );
      return { request: { ...base, mode: "reverse", cotangent }, fields: [...outputs(fn), ...fieldsOf(fn, "vjp", wrt)], sweeps: 3 };
    },
  },
  forward: {
    summary: "forward mode: with a tangent the Jacobian-vector product, without one the gradient by one sweep per input element",
    order: 1,
    growth: 3,
    plan: (fn, input, base) => {
      const wrt = wrtOf(fn, base);
      if (input.tangent === undefined) {
        const elements = wrt.reduce((n, w) => n + sizeOf(fn.graph.nodes[w.node].shape), 0);
        return {
          request: { ...base, mode: "forward" },
          fields: [...outputs(fn), ...fieldsOf(fn, "gradient", wrt)],
          sweeps: 2 * Math.max(1, elements),
        };
      }
      const tangent = decodeDirection(input.tangent, "tangent", base);
      return {
        request: { ...base, mode: "forward", tangent },
        fields: [...outputs(fn), ...fieldsOf(fn, "jvp", fn.graph.outputs)],
        sweeps: 2,
      };
    },
  },
  jacobian: {
    summary:
      "the full Jacobian of every output with respect to every input, by forward sweeps when inputs are fewer than outputs, else reverse sweeps",
    order: 1,
    growth: 4,
    plan: (fn, input, base) => {
      const wrt = wrtOf(fn, base);
      if (input.sparse) {
        const s = sparseFields(fn, "jacobian", base, input.method);
        const method = s.plan.method === "reverse" ? "reverse" : "forward";
        return {
          request: { ...base, mode: "jacobian", method, sparse: true },
          fields: [...outputs(fn), ...s.fields],
          sweeps: 2 * (1 + s.plan.coloring.count),
          annotations: { method, ...s.annotations },
        };
      }
      const method = jacobianMethod(fn, { wrt: base.wrt, method: input.method });
      const sweeps = 1 + (method === "forward" ? elementsOf(fn, wrt) : elementsOf(fn, fn.graph.outputs));
      return {
        request: { ...base, mode: "jacobian", method },
        fields: [...outputs(fn), ...pairFields(fn, "jacobian", fn.graph.outputs, wrt)],
        sweeps: 2 * sweeps,
        annotations: { method },
      };
    },
  },
  hessian: {
    summary: "the exact Hessian of the scalar output, by one forward-over-reverse sweep per input element",
    order: 2,
    growth: 12,
    plan: (fn, input, base) => {
      const wrt = wrtOf(fn, base);
      if (input.sparse) {
        singleOutput(fn);
        const s = sparseFields(fn, "hessian", base);
        return {
          request: { ...base, mode: "hessian", sparse: true },
          fields: [...singleOutput(fn), ...fieldsOf(fn, "gradient", wrt), ...s.fields],
          sweeps: 4 * (1 + s.plan.coloring.count),
          annotations: s.annotations,
        };
      }
      return {
        request: { ...base, mode: "hessian" },
        fields: [...singleOutput(fn), ...fieldsOf(fn, "gradient", wrt), ...pairFields(fn, "hessian", wrt, wrt)],
        sweeps: 4 * Math.max(1, elementsOf(fn, wrt)),
      };
    },
  },
  hvp: {
    summary: "the Hessian-vector product H·v along the tangent v, by forward-over-reverse, without building the Hessian",
    order: 2,
    growth: 12,
    plan: (fn, input, base) => {
      const wrt = wrtOf(fn, base);
      if (input.tangent === undefined) throw invalid("tangent: mode hvp needs the vector v of H·v, by input name", { field: "tangent" });
      const tangent = decodeDirection(input.tangent, "tangent", base);
      return {
        request: { ...base, mode: "hvp", tangent },
        fields: [...singleOutput(fn), ...fieldsOf(fn, "gradient", wrt), ...fieldsOf(fn, "hvp", wrt)],
        sweeps: 4,
      };
    },
  },
  derivative: {
    summary: "a higher-order derivative: the order-th along one input, or the mixed partial named by the sequence in wrt",
    order: 16,
    growth: 1,
    plan: (fn, input, base) => {
      const partials = partialSequence(fn, { wrt: input.wrt, order: input.order });
      return {
        request: { ...base, wrt: input.wrt, mode: "derivative", order: input.order },
        fields: [...singleOutput(fn), scalarField("derivative")],
        sweeps: 1 + 3 * partials.length,
        // Each order differentiates the whole graph built so far: up to about four times its size.
        growth: 4 ** partials.length,
        annotations: { partials },
      };
    },
  },
  divergence: {
    summary: "Σᵢ ∂Fᵢ/∂xᵢ of a vector field (output elements paired with input elements), one forward sweep per input",
    order: 1,
    growth: 3,
    plan: (fn, _input, base) => {
      const wrt = wrtOf(fn, base);
      return {
        request: { ...base, mode: "divergence" },
        fields: [...outputs(fn), scalarField("divergence")],
        sweeps: 2 * Math.max(1, elementsOf(fn, wrt)),
      };
    },
  },
  laplacian: {
    summary: "Σᵢ ∂²f/∂xᵢ² of the scalar output, one forward-over-reverse sweep per input, no Hessian built",
    order: 2,
    growth: 12,
    plan: (fn, _input, base) => {
      const wrt = wrtOf(fn, base);
      return {
        request: { ...base, mode: "laplacian" },
        fields: [...singleOutput(fn), scalarField("laplacian")],
        sweeps: 4 * Math.max(1, elementsOf(fn, wrt)),
      };
    },
  },
  check: {
    summary:
      "the reverse-mode gradient compared with central finite differences, per input element, with a pass/fail at a documented tolerance",
    order: 1,
    growth: 4,
    plan: (fn, _input, base) => {
      const wrt = wrtOf(fn, base);
      return {
        request: { ...base, mode: "check" },
        fields: [...singleOutput(fn), ...fieldsOf(fn, "gradient", wrt)],
        sweeps: 3 + 2 * elementsOf(fn, wrt),
      };
    },
  },
  sparsity: {
    summary:
      "the sparsity patterns alone (the Jacobian's, and the Hessian's for a single scalar output) with their colour counts; the point is checked and the outputs answered",
    // The Hessian's pattern is the Jacobian pattern of the gradient graph: first-order rules are needed.
    order: 1,
    growth: 1,
    plan: (fn, _input, base) => ({
      request: { ...base, mode: "sparsity" },
      fields: outputs(fn),
      sweeps: 1,
      annotations: { sparsity: sparsityReport(fn, wrtOf(fn, base), sparseBudget()) },
    }),
  },
};
