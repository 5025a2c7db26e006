import { selectInputs } from "../ad/reverse.js";
import type { CompiledFunction, EvaluateRequest } from "../engine/compiled-function.js";
import { invalid } from "../errors.js";
import type { NamedNode } from "../ir/graph.js";
import type { Field } from "../runtime/batch.js";
import type { LruMap } from "../runtime/lru.js";
import { sizeOf } from "../tensor/shape.js";
import { DecodeContext, decodeValues } from "./tensor.js";
import type { DifferentiateInput, NamedValues } from "./types.js";

/**
 * Every mode, in one table: what the engine is asked, which result fields a point gets (the blocks
 * of a batch), and the cost in sweeps per point for the scheduler. A new mode (jacobian, hessian, hvp,
 * ...) is one more entry here, plus its name in openapi.yaml's Mode enum and in the proto's Mode enum
 * (a test checks the three agree).
 */
export interface ModePlan {
  readonly request: EvaluateRequest;
  readonly fields: readonly Omit<Field, "offset">[];
  /** Sweeps over the function per point (the forward pass counts as one). */
  readonly sweeps: number;
}

interface ModeSpec {
  readonly summary: string;
  /** Highest order of derivative the mode computes. */
  readonly order: number;
  plan(fn: CompiledFunction, input: DifferentiateInput, base: BaseRequest): ModePlan;
}

type BaseRequest = Pick<EvaluateRequest, "wrt" | "trace" | "precision" | "allowNonFinite">;

function fieldsOf(fn: CompiledFunction, section: Field["section"], nodes: readonly NamedNode[]): Omit<Field, "offset">[] {
  return nodes.map((n) => {
    const shape = fn.graph.nodes[n.node].shape;
    return { section, name: n.name, shape, size: sizeOf(shape) };
  });
}

/** A tangent or cotangent, decoded like a point. */
const decodeDirection = (values: NamedValues, field: string, base: BaseRequest) =>
  decodeValues(values, field, new DecodeContext(base.allowNonFinite ?? false, Number.POSITIVE_INFINITY));

const outputs = (fn: CompiledFunction) => fieldsOf(fn, "outputs", fn.graph.outputs);
const wrtOf = (fn: CompiledFunction, base: BaseRequest) => selectInputs(fn.graph, base.wrt);

export const MODES: Readonly<Record<string, ModeSpec>> = {
  value: {
    summary: "the outputs only",
    order: 0,
    plan: (fn, _input, base) => ({ request: { ...base, mode: "value" }, fields: outputs(fn), sweeps: 1 }),
  },
  reverse: {
    summary: "reverse mode: the gradient of the single output, or with a cotangent the vector-Jacobian product",
    order: 1,
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
};

export const MODE_NAMES = Object.keys(MODES);
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
): PlannedMode {
  if (cache === undefined || input.tangent !== undefined || input.cotangent !== undefined) return makePlan(fn, input, defaultWrt);
  const key = `${input.mode}|${input.wrt?.join(",")}|${input.trace}|${input.allowNonFinite}|${input.precision}`;
  let planned = cache.get(key) as PlannedMode | undefined;
  if (planned === undefined) {
    planned = makePlan(fn, input, defaultWrt);
    cache.set(key, planned);
  }
  return planned;
}

function makePlan(fn: CompiledFunction, input: DifferentiateInput, defaultWrt?: readonly string[]): PlannedMode {
  const mode = input.mode ?? DEFAULT_MODE;
  const spec = Object.hasOwn(MODES, mode) ? MODES[mode] : undefined;
  if (spec === undefined) {
    throw invalid(`mode: unknown mode ${JSON.stringify(mode)}; the modes are ${MODE_NAMES.join(", ")}`, { field: "mode" });
  }
  if (input.tangent !== undefined && mode !== "forward") throw invalid("tangent: only forward mode takes a tangent", { field: "tangent" });
  if (input.cotangent !== undefined && mode !== "reverse") {
    throw invalid("cotangent: only reverse mode takes a cotangent", { field: "cotangent" });
  }
  const base: BaseRequest = {
    wrt: input.wrt ?? defaultWrt,
    trace: input.trace ?? false,
    precision: input.precision,
    allowNonFinite: input.allowNonFinite ?? false,
  };
  return { mode, plan: spec.plan(fn, input, base) };
}
