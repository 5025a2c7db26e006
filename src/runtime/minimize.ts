import type { MessagePort } from "node:worker_threads";
import type { Program } from "../compile/program.js";
import type { CompiledFunction, EvaluateRequest } from "../engine/compiled-function.js";
import { prepareGradient } from "../engine/modes/reverse.js";
import type { Value } from "../engine/values.js";
import { record } from "../names.js";
import type { TensorData } from "../ops/types.js";
import {
  adam,
  type HessianVectorProduct,
  lbfgsb,
  type MinimizeOptions,
  type MinimizeResult,
  newtonCg,
  type Objective,
  type Progress,
  warmOptimisers,
} from "../optimize/index.js";
import { type BatchLayout, readValue, type Slot } from "./batch.js";

export type MinimizeMethod = "lbfgs" | "newton-cg" | "adam";

/** A variable of the optimisation: an input's slot in the point and where its elements sit in x. */
export interface Variable extends Slot {
  /** First element of this variable in the flat vector x. */
  readonly at: number;
}

/** The numeric settings of a run, as the optimisers take them (no callbacks: they do not cross threads). */
export type RunSettings = Omit<MinimizeOptions, "onProgress" | "shouldStop" | "now">;

/**
 * A whole minimisation as one pool task: the worker runs the optimiser's loop next to the compiled
 * function, so each iteration costs an evaluation, not a round trip. The start point is shared memory
 * (one point's batch layout); progress goes back through `port`, and the main thread asks the run to
 * stop by setting `stop[0]`, which the optimiser polls once per iteration.
 */
export interface MinimizeTask {
  readonly kind: "minimize";
  readonly hash: string;
  readonly definition: SharedArrayBuffer;
  readonly layout: BatchLayout;
  readonly inputs: Float64Array;
  readonly variables: readonly Variable[];
  readonly method: MinimizeMethod;
  /** Reverse mode (value and gradient) over the variables, with the pool's budget. */
  readonly gradient: EvaluateRequest;
  /** newton-cg: the hvp mode over the variables (its tangent is replaced at every product). */
  readonly hvp?: EvaluateRequest;
  readonly settings: RunSettings;
  readonly stop: Int32Array;
  /** Where progress goes; absent when nobody listens (progress is then only kept in the history). */
  readonly port?: MessagePort;
  /** Progress records carry the point too (gRPC: a deadline must leave the client the best point so far). */
  readonly progressPoints: boolean;
  /** Fewest ms between two progress messages (the "at most 20 per second"). */
  readonly progressIntervalMs: number;
  readonly postedAt: number;
}

/** A progress message from the worker. */
export interface ProgressMessage extends Progress {
  readonly x?: Float64Array;
}

/** What the task answers: the optimiser's result (x copied out of the worker). */
export type MinimizeOutcome = MinimizeResult;

/** Optimises the optimisers' code in a fresh worker, off the request path (see optimize/warm.ts). */
export function warmMinimize(): void {
  warmOptimisers();
}

/** Runs the task's optimisation on a compiled function; the worker's entry point for kind "minimize". */
export function runMinimize(fn: CompiledFunction, task: MinimizeTask): MinimizeOutcome {
  const memory = Float64Array.from(task.inputs);
  const point = record<Value>();
  for (const slot of task.layout.inputs) point[slot.name] = readValue(memory, slot, 0);
  const n = task.variables.reduce((k, v) => k + v.size, 0);
  const x0 = new Float64Array(n);
  for (const v of task.variables) x0.set(memory.subarray(v.offset, v.offset + v.size), v.at);
  // A scalar input is a number in the point, not a view of memory, so it is written there as well.
  const place = (x: Float64Array) => {
    for (const v of task.variables) {
      if (v.shape.length === 0) point[v.name] = x[v.at];
      memory.set(x.subarray(v.at, v.at + v.size), v.offset);
    }
  };
  const readInto = (section: Record<string, Value> | undefined, out: Float64Array) => {
    for (const v of task.variables) {
      const value = section ? (Object.hasOwn(section, v.name) ? section[v.name] : undefined) : undefined;
      if (typeof value === "number") out[v.at] = value;
      else if (value !== undefined) out.set(value.data, v.at);
      else out.fill(Number.NaN, v.at, v.at + v.size);
    }
  };
  const objective: Objective =
    programObjective(fn, task, point, memory) ??
    ((x, gradient) => {
      place(x);
      const evaluation = fn.evaluate(point, task.gradient);
      readInto(evaluation.gradient, gradient);
      return scalarOutput(evaluation.outputs);
    });
  const options: MinimizeOptions = {
    ...task.settings,
    shouldStop: () => Atomics.load(task.stop, 0) !== 0,
    onProgress: progressPoster(task, () => (task.progressPoints ? currentPoint(task, memory, n) : undefined)),
  };
  try {
    if (task.method === "adam") return adam(objective, x0, options);
    if (task.method === "newton-cg") return newtonCg(objective, hessianProduct(fn, task, point, place, readInto, n), x0, options);
    return lbfgsb(objective, x0, options);
  } finally {
    task.port?.close();
  }
}

/**
 * The gradient program driven directly: what fn.evaluate does per call (checking the point by name,
 * rebinding every input, reading results into fresh records, a diagnostic rerun on non-finite results
 * the optimiser ignores anyway) cost more than Rosenbrock's gradient itself, hundreds of times a run.
 * Here the fixed inputs are set once, each call copies the variables into the program's input buffers
 * and the value and gradient out of its result buffers, by index, allocating nothing. Undefined when
 * the request is not a plain gradient (the general path then serves it).
 */
function programObjective(
  fn: CompiledFunction,
  task: MinimizeTask,
  point: Record<string, Value>,
  memory: Float64Array,
): Objective | undefined {
  const request = task.gradient;
  if (request.mode !== "reverse" || request.cotangent !== undefined || request.trace) return undefined;
  const wrt = fn.wrtOf(request.wrt);
  const { program, results } = prepareGradient(fn, wrt, request.precision ?? "float64", request.budget);
  const inputs = fn.pointValues(point, true);
  for (let k = 0; k < inputs.length; k++) program.useInput(k, inputs[k]);
  const inputIndex = (name: string) => fn.graph.inputs.findIndex((i) => i.name === name);
  const slots = task.variables.map((v) => ({
    at: v.at,
    size: v.size,
    scalar: v.shape.length === 0,
    input: inputIndex(v.name),
    data: memory.subarray(v.offset, v.offset + v.size),
    gradient: results[fn.graph.outputs.length + wrt.findIndex((w) => w.name === v.name)],
  }));
  if (slots.some((v) => v.input < 0 || v.gradient === undefined)) return undefined;
  // setInput copies into the program's own buffer (unbinding it first), so that the result views
  // taken next stay valid for the whole run: nothing is rebound afterwards.
  for (const v of slots) program.setInput(v.input, v.scalar ? v.data[0] : v.data);
  const value = resultReader(program, results[0]);
  const gradients = slots.map((v) => resultReader(program, v.gradient));
  return (x, gradient) => {
    for (let j = 0; j < slots.length; j++) {
      // Into memory first (progress reads the point there), element by element: a subarray of x
      // would be an allocation per call.
      const { at, size, data } = slots[j];
      for (let i = 0; i < size; i++) data[i] = x[at + i];
      program.setInput(slots[j].input, slots[j].scalar ? data[0] : data);
    }
    program.run();
    for (let j = 0; j < slots.length; j++) {
      const r = gradients[j]();
      if (typeof r === "number") gradient[slots[j].at] = r;
      else gradient.set(r, slots[j].at);
    }
    const f = value();
    return typeof f === "number" ? f : f.length === 1 ? f[0] : Number.NaN;
  };
}

/**
 * Reads a result: a tensor kept contiguously is a view of the program's buffer, the same at every run,
 * so it is taken once; a scalar is a number read afresh; anything else (a copy per read) reads afresh.
 */
function resultReader(program: Program, node: number): () => number | TensorData {
  const a = program.read(node);
  const b = program.read(node);
  if (typeof a !== "number" && typeof b !== "number" && a.buffer === b.buffer && a.byteOffset === b.byteOffset) return () => a;
  return () => program.read(node);
}

/**
 * The point last evaluated, as x. Progress is recorded after an iteration's accepted step, which is the
 * last point its line search evaluated: the point reached so far.
 */
function currentPoint(task: MinimizeTask, memory: Float64Array, n: number): Float64Array {
  const x = new Float64Array(n);
  for (const v of task.variables) x.set(memory.subarray(v.offset, v.offset + v.size), v.at);
  return x;
}

/** H·v by the engine's hvp mode (forward over reverse), the tangent being v split by variable. */
function hessianProduct(
  fn: CompiledFunction,
  task: MinimizeTask,
  point: Record<string, Value>,
  place: (x: Float64Array) => void,
  readInto: (section: Record<string, Value> | undefined, out: Float64Array) => void,
  n: number,
): HessianVectorProduct {
  const v = new Float64Array(n);
  const tangent = record<Value>();
  for (const variable of task.variables) {
    const view = v.subarray(variable.at, variable.at + variable.size);
    tangent[variable.name] = variable.shape.length === 0 ? 0 : { shape: variable.shape, data: view };
  }
  const request = task.hvp as EvaluateRequest;
  return (x, direction, out) => {
    place(x);
    v.set(direction);
    // Scalars are numbers in a point, so they are refreshed; tensor tangents view `v` already.
    for (const variable of task.variables) if (variable.shape.length === 0) tangent[variable.name] = v[variable.at];
    const evaluation = fn.evaluate(point, { ...request, tangent });
    readInto(evaluation.hvp, out);
  };
}

/**
 * Posts progress records to the main thread, at most one per `progressIntervalMs` (the start always):
 * the optimiser already keeps to `progressEvery`; this keeps a fast run from flooding the stream.
 */
function progressPoster(task: MinimizeTask, point: () => Float64Array | undefined): ((p: Progress) => void) | undefined {
  const port = task.port;
  if (!port) return undefined;
  let last = Number.NEGATIVE_INFINITY;
  return (p) => {
    if (p.elapsedMs - last < task.progressIntervalMs) return;
    last = p.elapsedMs;
    const x = point();
    const message: ProgressMessage = x ? { ...p, x } : { ...p };
    port.postMessage(message, x ? [x.buffer as ArrayBuffer] : []);
  };
}

function scalarOutput(outputs: Record<string, Value>): number {
  for (const name in outputs) {
    const v = outputs[name];
    return typeof v === "number" ? v : v.data.length === 1 ? v.data[0] : Number.NaN;
  }
  return Number.NaN;
}
