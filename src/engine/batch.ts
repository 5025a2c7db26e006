import { compileProgram, type Program } from "../compile/program.js";
import { invalid } from "../errors.js";
import type { Budget } from "../ir/budget.js";
import { vectorize } from "../ir/vectorize.js";
import { own } from "../names.js";
import { sizeOf } from "../tensor/shape.js";
import type { CompiledFunction, EvaluateRequest, Prepared } from "./compiled-function.js";
import { type BatchPlan, modeOf } from "./modes/index.js";
import { firstNonFinite, type NamedValues } from "./values.js";

/** Most points per pass of a vectorised program: long enough to amortise a call, short enough for cache. */
export const LANES = 512;

/** Lanes for a batch: a power of two from 8 up to LANES, so that a small batch does not compute 512. */
export function lanesFor(count: number): number {
  return Math.min(LANES, Math.max(8, 2 ** Math.ceil(Math.log2(Math.max(1, count)))));
}

export type { BatchField, BatchPlan } from "./modes/index.js";

/** The derived program a request needs, and how its inputs and results map to a batch's blocks (undefined: it does not vectorise). */
export function planBatch(fn: CompiledFunction, request: EvaluateRequest): BatchPlan | undefined {
  return modeOf(request.mode)?.batch?.(fn, request);
}

interface LanesProgram {
  readonly program: Program;
  /** Result k's node in the vectorised graph. */
  readonly results: readonly number[];
}

const vectorized = new WeakMap<Prepared, Map<number, LanesProgram | null>>();

/** The prepared program turned into one that evaluates `lanes` points per run, or null if it cannot be. */
function lanesProgram(p: Prepared, lanes: number, budget: Budget | undefined): LanesProgram | null {
  let byLanes = vectorized.get(p);
  if (!byLanes) {
    byLanes = new Map();
    vectorized.set(p, byLanes);
  }
  let entry = byLanes.get(lanes);
  if (entry === undefined) {
    const v = vectorize(p.graph, lanes, () => true);
    if (v) {
      const results = Array.from(p.results, (r) => v.nodeOf[r]);
      entry = { program: compileProgram(v.graph, results, { precision: p.program.precision, budget }), results };
    } else entry = null;
    byLanes.set(lanes, entry);
  }
  return entry;
}

/**
 * Whether batches of this function take the vectorised pass for this request: all-scalar elementwise
 * functions in value, reverse and forward-with-tangent modes, without a trace.
 */
export function canVectorize(fn: CompiledFunction, request: EvaluateRequest): boolean {
  if (request.trace || !fn.graph.isScalar) return false;
  const plan = planBatch(fn, request);
  return plan !== undefined && lanesProgram(plan.prepared, 8, request.budget) !== null;
}

/** Blocks of a batch: per name, every point's value one after another (scalars: one number each). */
export type Blocks = Readonly<Record<string, Float64Array>>;

/**
 * Evaluates points [start, end) of a batch of an all-scalar function in one vectorised pass per
 * up to LANES points (fewer for small batches): the points become vectors, and the compiled program runs every op once over all of
 * them in a fused loop. Tangents and cotangents are per point (blocks) or shared (the request's).
 * Writes field k of point i at `out[k][i]`. Returns false when the function or mode does not vectorise
 * (tensor functions, traces, Jacobians…): the caller then evaluates point by point.
 */
export function evaluateVectorized(
  fn: CompiledFunction,
  request: EvaluateRequest,
  blocks: { readonly point: Blocks; readonly tangent?: Blocks; readonly cotangent?: Blocks },
  start: number,
  end: number,
  out: readonly Float64Array[],
): boolean {
  if (request.trace || !fn.graph.isScalar) return false;
  const plan = planBatch(fn, request);
  if (!plan) return false;
  const width = lanesFor(end - start);
  const compiled = lanesProgram(plan.prepared, width, request.budget);
  if (!compiled) return false;
  const { program, results } = compiled;
  const lanes = new Float64Array(width);
  const sources = plan.inputs.map((input) => {
    const byName = input.kind === "point" ? blocks.point : blocks[input.kind];
    const perPoint = byName && own(byName, input.name);
    if (perPoint) return perPoint;
    const direction = input.kind === "tangent" ? request.tangent : input.kind === "cotangent" ? request.cotangent : undefined;
    const shared = direction && own(direction, input.name);
    if (typeof shared !== "number")
      throw invalid(`${input.kind === "point" ? "points" : input.kind}: no value for ${input.name}`, {
        field: input.kind,
        input: input.name,
      });
    return shared;
  });
  for (let from = start; from < end; from += width) {
    const count = Math.min(width, end - from);
    sources.forEach((src, k) => {
      if (typeof src === "number") lanes.fill(src);
      else {
        lanes.set(src.subarray(from, from + count));
        // Unused lanes repeat the last point, so they compute something finite and harmless.
        if (count < width) lanes.fill(src[from + count - 1], count);
      }
      program.setInput(k, lanes);
    });
    program.run();
    results.forEach((node, k) => {
      const v = program.read(node);
      const target = out[k];
      if (typeof v === "number" || v.length === 1) target.fill(typeof v === "number" ? v : v[0], from, from + count);
      else target.set(v.subarray(0, count), from);
    });
  }
  return true;
}

/**
 * Evaluates one point by the request's batch plan with every result written straight into its target
 * (result k of the plan into `out[k]`, of the result's size): the program's result buffers are bound
 * to the targets for the run, so that nothing the size of a result is allocated or copied, and the
 * targets are checked for non-finite values in place. Returns false when the point takes the general
 * path, `fn.evaluate`, which writes the same numbers: modes without a plan, traces, tangents and
 * cotangents (decoded per request there), a target of another size, and non-finite results (their
 * diagnosis is the general path's). The point's values are checked for names, shapes and integer
 * types, not for finiteness: a batch's inputs were checked against the request's policy when decoded.
 */
export function evaluatePointInto(
  fn: CompiledFunction,
  request: EvaluateRequest,
  point: NamedValues,
  out: readonly Float64Array[],
): boolean {
  if (request.trace) return false;
  const plan = planBatch(fn, request);
  if (plan === undefined || plan.inputs.some((input) => input.kind !== "point")) return false;
  const { program, results, graph } = plan.prepared;
  if (results.some((node, k) => out[k]?.length !== sizeOf(graph.nodes[node].shape))) return false;
  const inputs = fn.pointValues(point, true);
  try {
    for (let k = 0; k < inputs.length; k++) program.useInput(k, inputs[k]);
    // A result the program cannot write in place (a view, a constant, one stored with another) is copied out.
    const copied = results.flatMap((node, k) => (program.useOutput(node, out[k]) ? [] : [k]));
    program.run();
    for (const k of copied) {
      const v = program.read(results[k]);
      if (typeof v === "number") out[k][0] = v;
      else out[k].set(v);
    }
  } finally {
    program.releaseOutputs();
  }
  return out.every((target) => firstNonFinite(target) < 0);
}

/** Index of the first point whose results hold a non-finite value (it then deserves a diagnosis), or −1. */
export function firstNonFinitePoint(out: readonly Float64Array[], start: number, end: number): number {
  let worst = -1;
  for (const block of out) {
    const i = firstNonFinite(block.subarray(start, end));
    if (i >= 0 && (worst < 0 || start + i < worst)) worst = start + i;
  }
  return worst;
}
