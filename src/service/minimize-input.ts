import { invalid } from "../errors.js";
import { own } from "../names.js";
import type { Progress } from "../optimize/index.js";
import type { MinimizeMethod, RunSettings, Variable } from "../runtime/minimize.js";
import { formatShape, sameShape } from "../tensor/shape.js";
import { type DecodeContext, decodeTensor } from "./tensor.js";
import type { FunctionSpec, NamedValues, TensorValue, ValueMap } from "./types.js";

/** The numeric options of a run (docs/service.md, "Minimisation"); every one is optional. */
export interface MinimizeRequestOptions {
  readonly maxIterations?: number;
  readonly gtol?: number;
  readonly ftol?: number;
  readonly memory?: number;
  readonly learningRate?: number;
  readonly beta1?: number;
  readonly beta2?: number;
  readonly epsilon?: number;
  readonly timeLimitMs?: number;
}

export interface BoundSpec {
  readonly lower?: TensorValue;
  readonly upper?: TensorValue;
}

/** The transport-neutral minimise request: the REST body exactly, and what the gRPC adapter builds. */
export interface MinimizeInput {
  readonly function?: FunctionSpec;
  /** The variables' starting values and the fixed inputs (a model's data). */
  readonly start?: NamedValues;
  /** The variables (default: a model's parameters, else every float input). */
  readonly wrt?: readonly string[];
  readonly method?: string;
  readonly bounds?: Readonly<Record<string, BoundSpec>>;
  readonly options?: MinimizeRequestOptions;
  readonly initialize?: { readonly seed: number };
  /** Iterations between progress records (default DEFAULT_PROGRESS_EVERY). */
  readonly progressEvery?: number;
  readonly encoding?: "json" | "base64";
}

export interface MinimizeOutput {
  readonly id: string;
  readonly method: MinimizeMethod;
  /** The variables at the end. */
  readonly point: ValueMap;
  readonly value: number;
  readonly gradientNorm: number;
  readonly iterations: number;
  readonly evaluations: number;
  readonly hvps: number;
  readonly status: string;
  readonly message: string;
  readonly history: readonly Progress[];
}

/** One progress record as the transports send it; `point` only where the caller asked for it (gRPC). */
export interface MinimizeProgress extends Progress {
  readonly point?: ValueMap;
}

export const METHODS: readonly MinimizeMethod[] = ["lbfgs", "newton-cg", "adam"];
/** A record every 10 iterations keeps the history short on long runs and still shows the trend. */
export const DEFAULT_PROGRESS_EVERY = 10;
const OPTION_NAMES = ["maxIterations", "gtol", "ftol", "memory", "learningRate", "beta1", "beta2", "epsilon", "timeLimitMs"] as const;

export function methodOf(input: MinimizeInput): MinimizeMethod {
  const method = input.method ?? "lbfgs";
  if (!(METHODS as readonly string[]).includes(method)) {
    throw invalid(`method: unknown method ${JSON.stringify(method)}; the methods are ${METHODS.join(", ")}`, { field: "method" });
  }
  return method as MinimizeMethod;
}

/**
 * The run's settings from the request's options. Types are checked here so that errors name the field;
 * ranges are the optimisers' to check (they name the option). `timeLimitMs` is the caller's to cap.
 */
export function settingsOf(input: MinimizeInput): RunSettings {
  const options = input.options ?? {};
  if (typeof options !== "object" || options === null || Array.isArray(options))
    throw invalid("options must be an object", { field: "options" });
  const settings: Record<string, number> = {};
  for (const name of Object.keys(options)) {
    if (!(OPTION_NAMES as readonly string[]).includes(name)) {
      throw invalid(`options.${name}: unknown option; the options are ${OPTION_NAMES.join(", ")}`, { field: `options.${name}` });
    }
    const value = (options as Record<string, unknown>)[name];
    if (value === undefined) continue;
    if (typeof value !== "number" || Number.isNaN(value)) throw invalid(`options.${name} must be a number`, { field: `options.${name}` });
    settings[name] = value;
  }
  const every = input.progressEvery ?? DEFAULT_PROGRESS_EVERY;
  if (!Number.isInteger(every) || every < 1) throw invalid("progressEvery must be a positive integer", { field: "progressEvery" });
  return { ...settings, progressEvery: every };
}

/**
 * Per-variable bounds as the flat lower and upper vectors L-BFGS-B takes (±∞ where a side is open):
 * a number bounds every element, a tensor each element. Names are the client's, read as own keys only.
 */
export function boundsOf(
  input: MinimizeInput,
  method: MinimizeMethod,
  variables: readonly Variable[],
  length: number,
  decode: DecodeContext,
): { lower: Float64Array; upper: Float64Array } | undefined {
  const bounds = input.bounds;
  if (bounds === undefined) return undefined;
  if (method !== "lbfgs")
    throw invalid(`bounds: only method lbfgs honours bounds; method ${method} does not take them`, { field: "bounds" });
  if (typeof bounds !== "object" || bounds === null || Array.isArray(bounds)) {
    throw invalid('bounds must map variable names to {"lower": …, "upper": …}', { field: "bounds" });
  }
  const lower = new Float64Array(length).fill(Number.NEGATIVE_INFINITY);
  const upper = new Float64Array(length).fill(Number.POSITIVE_INFINITY);
  for (const name of Object.keys(bounds)) {
    const variable = variables.find((v) => v.name === name);
    const field = `bounds.${name}`;
    if (variable === undefined) {
      throw invalid(`${field}: ${name} is not a variable; the variables are ${variables.map((v) => v.name).join(", ")}`, { field });
    }
    const spec = own(bounds, name) as BoundSpec;
    if (typeof spec !== "object" || spec === null) throw invalid(`${field} must be {"lower": …, "upper": …}`, { field });
    fillSide(spec.lower, lower, variable, `${field}.lower`, decode);
    fillSide(spec.upper, upper, variable, `${field}.upper`, decode);
    for (let i = variable.at; i < variable.at + variable.size; i++) {
      if (!(lower[i] <= upper[i])) throw invalid(`${field}: lower exceeds upper at element ${i - variable.at}`, { field });
    }
  }
  return { lower, upper };
}

function fillSide(value: TensorValue | undefined, out: Float64Array, variable: Variable, field: string, decode: DecodeContext): void {
  if (value === undefined || value === null) return;
  if (typeof value === "number") {
    if (Number.isNaN(value)) throw invalid(`${field} must be a number`, { field });
    out.fill(value, variable.at, variable.at + variable.size);
    return;
  }
  const t = decodeTensor(value, field, decode, variable.name);
  if (t.data.length === 1 && t.shape.length === 0) {
    out.fill(t.data[0], variable.at, variable.at + variable.size);
    return;
  }
  if (!sameShape(t.shape, variable.shape)) {
    throw invalid(`${field} has shape ${formatShape(t.shape)}; ${variable.name} has shape ${formatShape(variable.shape)}`, { field });
  }
  out.set(t.data, variable.at);
}
