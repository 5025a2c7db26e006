import { forward } from "../ad/forward.js";
import { reverse } from "../ad/reverse.js";
import type { Precision } from "../compile/scalar-program.js";
import { invalid } from "../errors.js";
import { type Budget, BudgetExceeded } from "../ir/budget.js";
import { Graph, type NamedNode } from "../ir/graph.js";
import { selectInputs } from "../ir/select.js";
import { record, recordOf } from "../names.js";
import type { TensorData } from "../ops/types.js";
import { sizeOf } from "../tensor/shape.js";
import type { CompiledFunction, EvaluateRequest, Prepared } from "./compiled-function.js";
import type { NonFiniteReport } from "./provenance.js";
import { type InputData, run } from "./run.js";
import type { Value } from "./values.js";

/**
 * Derivatives beyond the gradient, all built from the same two transforms: Jacobians by forward or
 * reverse sweeps, Hessians and Hessian-vector products by forward-over-reverse, n-th and mixed
 * partials by differentiating derivative graphs again, divergence and Laplacian by one sweep per
 * input without storing the Jacobian or Hessian, and a finite-difference check of the gradient.
 */

type Flat = number | TensorData;

function element(v: Flat, i: number): number {
  return typeof v === "number" ? v : v[i];
}

function asValue(shape: readonly number[], data: Float64Array): Value {
  return shape.length === 0 ? data[0] : { shape: [...shape], data };
}

/** Shapes and sizes of the differentiated inputs, and unit tangents along one element of one of them. */
class Directions {
  readonly shapes: (readonly number[])[];
  readonly sizes: number[];
  readonly total: number;
  private readonly scratch: Float64Array[];

  constructor(
    fn: CompiledFunction,
    readonly wrt: readonly NamedNode[],
  ) {
    this.shapes = wrt.map((w) => fn.graph.nodes[w.node].shape);
    this.sizes = this.shapes.map((s) => sizeOf(s));
    this.total = this.sizes.reduce((a, b) => a + b, 0);
    this.scratch = this.sizes.map((n) => new Float64Array(n));
  }

  /** Tangents that are zero except element `e` of input `k` (all zero when k < 0), as program inputs. */
  unit(k: number, e: number): InputData[] {
    return this.shapes.map((shape, j) => {
      if (shape.length === 0) return j === k ? 1 : 0;
      this.scratch[j].fill(0);
      if (j === k) this.scratch[j][e] = 1;
      return this.scratch[j];
    });
  }

  /** Every (input, element) pair in order: the flat index space of the inputs. */
  *each(): Generator<{ k: number; e: number; flat: number }> {
    let flat = 0;
    for (let k = 0; k < this.sizes.length; k++) for (let e = 0; e < this.sizes[k]; e++) yield { k, e, flat: flat++ };
  }
}

export interface JacobianResult {
  readonly outputs: Record<string, Value>;
  /** jacobian[output][input]: a tensor of shape output.shape ++ input.shape (a number for scalars). */
  readonly jacobian: Record<string, Record<string, Value>>;
  /** forward: one sweep per input element; reverse: one sweep per output element. */
  readonly method: "forward" | "reverse";
}

/** Forward sweeps when the inputs have no more elements than the outputs, reverse sweeps otherwise. */
export function jacobianMethod(fn: CompiledFunction, request: Pick<EvaluateRequest, "wrt" | "method">): "forward" | "reverse" {
  if (request.method) return request.method;
  const inputs = selectInputs(fn.graph, request.wrt).reduce((n, w) => n + sizeOf(fn.graph.nodes[w.node].shape), 0);
  const outputs = fn.graph.outputs.reduce((n, o) => n + sizeOf(fn.graph.nodes[o.node].shape), 0);
  return inputs <= outputs ? "forward" : "reverse";
}

/** The full Jacobian, by forward sweeps when inputs are fewer than outputs, by reverse sweeps otherwise. */
export function jacobian(fn: CompiledFunction, inputs: InputData[], request: EvaluateRequest): JacobianResult {
  const precision = request.precision ?? "float64";
  const wrt = selectInputs(fn.graph, request.wrt);
  const dirs = new Directions(fn, wrt);
  const outs = fn.graph.outputs;
  const outShapes = outs.map((o) => fn.graph.nodes[o.node].shape);
  const outSizes = outShapes.map((s) => sizeOf(s));
  const outTotal = outSizes.reduce((a, b) => a + b, 0);
  const method = jacobianMethod(fn, request);
  const blocks = outs.map((_, o) => wrt.map((_, k) => new Float64Array(outSizes[o] * dirs.sizes[k])));
  let values = record<Value>();
  if (method === "forward") {
    const p = fn.prepareJvp(wrt, precision, request.budget);
    for (const { k, e } of dirs.each()) {
      run(p.program, [...inputs, ...dirs.unit(k, e)]);
      outs.forEach((_, o) => {
        const t = p.program.read(p.results[outs.length + o]);
        for (let a = 0; a < outSizes[o]; a++) blocks[o][k][a * dirs.sizes[k] + e] = element(t, a);
      });
    }
    if (dirs.total === 0) run(p.program, inputs);
    values = readOutputs(fn, p);
  } else {
    const p = fn.prepareVjp(wrt, precision, request.budget);
    const cot = outShapes.map((s) => new Float64Array(sizeOf(s)));
    const cotArgs = () => cot.map((c, o) => (outShapes[o].length ? c : c[0]));
    outs.forEach((_, o) => {
      for (let a = 0; a < outSizes[o]; a++) {
        cot[o][a] = 1;
        run(p.program, [...inputs, ...cotArgs()]);
        cot[o][a] = 0;
        wrt.forEach((_, k) => {
          const g = p.program.read(p.results[outs.length + k]);
          for (let e = 0; e < dirs.sizes[k]; e++) blocks[o][k][a * dirs.sizes[k] + e] = element(g, e);
        });
      }
    });
    if (outTotal === 0) run(p.program, [...inputs, ...cotArgs()]);
    values = readOutputs(fn, p);
  }
  const result = record<Record<string, Value>>();
  outs.forEach((o, i) => {
    result[o.name] = recordOf(wrt.map((w, k) => [w.name, asValue([...outShapes[i], ...dirs.shapes[k]], blocks[i][k])]));
  });
  return { outputs: values, jacobian: result, method };
}

/** Forward-over-reverse: the tangent of the gradient along v is H·v, with no Hessian built. */
function prepareHvp(fn: CompiledFunction, wrt: readonly NamedNode[], precision: Precision, budget: Budget | undefined): Prepared {
  const names = wrt.map((w) => w.name);
  const make = () => {
    const single = fn.singleOutput();
    const r = reverse(fn.graph, { outputs: [single.name], wrt: names, cotangent: "seed", budget });
    const f = forward(r.graph, { wrt: names, outputs: names.map((n) => `gradient:${n}`), budget });
    // Attribute the nodes of both passes to the primal node whose rule made them.
    const origin = Int32Array.from(f.origin, (o, id) =>
      id < r.graph.nodes.length ? r.origin[id] : o >= fn.graph.nodes.length ? r.origin[o] : o,
    );
    return {
      graph: f.graph,
      results: [single.node, ...r.gradients, ...f.outputTangents],
      extraInputs: f.tangentInputs,
      derivatives: f.tangents.slice(0, fn.graph.nodes.length),
      origin,
      pass: "tangent" as const,
    };
  };
  return fn.prepare(`hvp|${names.join(",")}`, precision, make, budget);
}

function readOutputs(fn: CompiledFunction, p: Prepared): Record<string, Value> {
  return recordOf(fn.graph.outputs.map((o, k) => [o.name, toValue(p, k)]));
}

function toValue(p: Prepared, k: number): Value {
  const node = p.results[k];
  const v = p.program.read(node);
  const shape = p.graph.nodes[node].shape;
  return shape.length === 0 ? element(v, 0) : { shape: [...shape], data: Float64Array.from(v as TensorData) };
}

export interface HessianResult {
  readonly outputs: Record<string, Value>;
  readonly gradient: Record<string, Value>;
  /** hessian[a][b] = ∂²f/∂a∂b: a tensor of shape a.shape ++ b.shape (a number for scalars). */
  readonly hessian: Record<string, Record<string, Value>>;
}

/** The exact Hessian of the scalar output: one forward-over-reverse sweep per input element. */
export function hessian(fn: CompiledFunction, inputs: InputData[], request: EvaluateRequest): HessianResult {
  const wrt = selectInputs(fn.graph, request.wrt);
  const dirs = new Directions(fn, wrt);
  const p = prepareHvp(fn, wrt, request.precision ?? "float64", request.budget);
  const blocks = wrt.map((_, a) => wrt.map((_, b) => new Float64Array(dirs.sizes[a] * dirs.sizes[b])));
  for (const { k, e } of dirs.each()) {
    run(p.program, [...inputs, ...dirs.unit(k, e)]);
    // Column (k, e) of H: the tangent of every gradient.
    wrt.forEach((_, a) => {
      const col = p.program.read(p.results[1 + wrt.length + a]);
      for (let i = 0; i < dirs.sizes[a]; i++) blocks[a][k][i * dirs.sizes[k] + e] = element(col, i);
    });
  }
  if (dirs.total === 0) run(p.program, [...inputs, ...dirs.unit(-1, 0)]);
  const gradient = recordOf(wrt.map((w, k) => [w.name, toValue(p, 1 + k)]));
  const result = recordOf(
    wrt.map((a, i) => [a.name, recordOf(wrt.map((b, j) => [b.name, asValue([...dirs.shapes[i], ...dirs.shapes[j]], blocks[i][j])]))]),
  );
  return { outputs: recordOf([[fn.singleOutput().name, toValue(p, 0)]]), gradient, hessian: result };
}

/** H·v along the request's tangent, by one forward-over-reverse sweep. */
export function hvp(
  fn: CompiledFunction,
  inputs: InputData[],
  request: EvaluateRequest,
): { outputs: Record<string, Value>; gradient: Record<string, Value>; hvp: Record<string, Value> } {
  const wrt = selectInputs(fn.graph, request.wrt);
  if (!request.tangent) throw invalid("mode hvp needs a tangent: the vector v of H·v, by input name", { field: "tangent" });
  const p = prepareHvp(fn, wrt, request.precision ?? "float64", request.budget);
  const tangent = fn.decode(
    request.tangent,
    wrt.map((w, k) => ({ name: w.name, node: p.extraInputs[k].node })),
    "tangent",
    "input",
    request.allowNonFinite ?? false,
    p.graph,
  );
  run(p.program, [...inputs, ...tangent]);
  return {
    outputs: recordOf([[fn.singleOutput().name, toValue(p, 0)]]),
    gradient: recordOf(wrt.map((w, k) => [w.name, toValue(p, 1 + k)])),
    hvp: recordOf(wrt.map((w, k) => [w.name, toValue(p, 1 + wrt.length + k)])),
  };
}

/**
 * A higher-order partial derivative ∂ⁿf/∂w₁…∂wₙ of the scalar output, by differentiating the
 * derivative graph once per name in the sequence (reverse mode each time). `order` alone repeats the
 * single input (or the single name of `wrt`).
 */
export function derivative(
  fn: CompiledFunction,
  inputs: InputData[],
  request: EvaluateRequest,
): { outputs: Record<string, Value>; derivative: number; partials: string[] } {
  const single = fn.singleOutput();
  const sequence = partialSequence(fn, request);
  const make = () => {
    let graph = new Graph(fn.graph.nodes, fn.graph.inputs, [single]);
    let node = single.node;
    let growth = Number.POSITIVE_INFINITY;
    for (let k = 0; k < sequence.length; k++) {
      const before = graph.nodes.length;
      const r = reverse(graph, { wrt: [sequence[k]], cotangent: "seed", budget: request.budget });
      node = r.gradients[0];
      graph = new Graph(r.graph.nodes, r.graph.inputs, [{ name: "d", node }]);
      const ratio = graph.nodes.length / Math.max(1, before);
      if (request.budget) checkGrowth(request.budget, graph.nodes.length, Math.min(ratio, growth), sequence.length - k - 1);
      growth = ratio;
    }
    return { graph, results: [single.node, node], extraInputs: [], pass: "reverse" as const };
  };
  const p = fn.prepare(`derivative|${sequence.join(",")}`, request.precision ?? "float64", make, request.budget);
  run(p.program, inputs);
  return { outputs: recordOf([[single.name, toValue(p, 0)]]), derivative: element(p.program.read(p.results[1]), 0), partials: sequence };
}

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
export function partialSequence(fn: CompiledFunction, request: Pick<EvaluateRequest, "wrt" | "order">): string[] {
  if (request.wrt !== undefined && Array.isArray(request.wrt) && request.wrt.length > MAX_ORDER) {
    throw invalid(`wrt: a partial derivative of order ${request.wrt.length} was asked for; the highest order is ${MAX_ORDER}`, {
      field: "wrt",
    });
  }
  let sequence = request.wrt ? [...request.wrt] : [];
  if (request.order !== undefined) {
    if (!Number.isInteger(request.order) || request.order < 0 || request.order > MAX_ORDER) {
      throw invalid(`order must be an integer from 0 to ${MAX_ORDER}`, { field: "order" });
    }
    if (sequence.length > 1) {
      throw invalid("give either order (with at most one wrt name) or the sequence of names in wrt, not both", { field: "order" });
    }
    const name = sequence[0] ?? (fn.graph.inputs.length === 1 ? fn.graph.inputs[0].name : undefined);
    if (name === undefined) {
      throw invalid("order needs the input to differentiate: name it in wrt, since the function has several inputs", { field: "wrt" });
    }
    sequence = new Array(request.order).fill(name);
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

/**
 * ∇·F = Σᵢ ∂Fᵢ/∂xᵢ for a vector field: the outputs' elements, in order, pair with the inputs'
 * elements. One forward sweep per input element; only the diagonal entry of each is kept.
 */
export function divergence(
  fn: CompiledFunction,
  inputs: InputData[],
  request: EvaluateRequest,
): { outputs: Record<string, Value>; divergence: number } {
  const wrt = selectInputs(fn.graph, request.wrt);
  const dirs = new Directions(fn, wrt);
  const outs = fn.graph.outputs;
  const outSizes = outs.map((o) => sizeOf(fn.graph.nodes[o.node].shape));
  const outTotal = outSizes.reduce((a, b) => a + b, 0);
  if (outTotal !== dirs.total) {
    throw invalid(
      `divergence needs as many output elements as input elements: the outputs have ${outTotal}, the inputs (wrt) ${dirs.total}`,
      { field: "mode" },
    );
  }
  const p = fn.prepareJvp(wrt, request.precision ?? "float64", request.budget);
  // Output element `flat` lives in output o at position a.
  const locate = (flat: number): [number, number] => {
    let o = 0;
    while (flat >= outSizes[o]) flat -= outSizes[o++];
    return [o, flat];
  };
  let sum = 0;
  for (const { k, e, flat } of dirs.each()) {
    run(p.program, [...inputs, ...dirs.unit(k, e)]);
    const [o, a] = locate(flat);
    sum += element(p.program.read(p.results[outs.length + o]), a);
  }
  if (dirs.total === 0) run(p.program, inputs);
  return { outputs: readOutputs(fn, p), divergence: sum };
}

/** Δf = Σᵢ ∂²f/∂xᵢ²: one forward-over-reverse sweep per input element, keeping the diagonal only. */
export function laplacian(
  fn: CompiledFunction,
  inputs: InputData[],
  request: EvaluateRequest,
): { outputs: Record<string, Value>; laplacian: number } {
  const wrt = selectInputs(fn.graph, request.wrt);
  const dirs = new Directions(fn, wrt);
  const p = prepareHvp(fn, wrt, request.precision ?? "float64", request.budget);
  let sum = 0;
  for (const { k, e } of dirs.each()) {
    run(p.program, [...inputs, ...dirs.unit(k, e)]);
    sum += element(p.program.read(p.results[1 + wrt.length + k]), e);
  }
  if (dirs.total === 0) run(p.program, [...inputs, ...dirs.unit(-1, 0)]);
  return { outputs: recordOf([[fn.singleOutput().name, toValue(p, 0)]]), laplacian: sum };
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

export interface CheckResult {
  readonly outputs: Record<string, Value>;
  readonly gradient: Record<string, Value>;
  readonly check: { readonly passed: boolean; readonly inputs: Record<string, CheckEntry>; readonly rule: string };
  readonly nonFinite?: NonFiniteReport;
}

/** The documented pass rule of `check`. */
export const CHECK_RULE =
  "central differences with step h = ∛ε·max(1, |x|) (ε = 2⁻⁵²) per input element; passes when |AD − FD| ≤ 1e-6·max(1, |f|, |AD|, |FD|)";

/** Compares the reverse-mode gradient with central finite differences, element by element. */
export function check(fn: CompiledFunction, inputs: InputData[], request: EvaluateRequest): CheckResult {
  const single = fn.singleOutput();
  const grad = fn.evaluate(pointOf(fn, inputs), {
    mode: "reverse",
    wrt: request.wrt,
    precision: request.precision,
    allowNonFinite: request.allowNonFinite,
    budget: request.budget,
  });
  const valueProgram = fn.prepareValue(request.precision ?? "float64", request.budget);
  const outIndex = fn.graph.outputs.indexOf(single);
  const f = (args: InputData[]) => {
    run(valueProgram.program, args);
    return element(valueProgram.program.read(valueProgram.results[outIndex]), 0);
  };
  const f0 = element(grad.outputs[single.name] as number, 0);
  const wrt = selectInputs(fn.graph, request.wrt);
  const entries = record<CheckEntry>();
  let passed = true;
  for (const w of wrt) {
    const k = fn.graph.inputs.findIndex((i) => i.name === w.name);
    const base = inputs[k];
    const size = typeof base === "number" ? 1 : base.length;
    const g = grad.gradient?.[w.name] as Value;
    const adAt = (e: number) => (typeof g === "number" ? g : g.data[e]);
    let worst: CheckEntry | undefined;
    for (let e = 0; e < size; e++) {
      const x = typeof base === "number" ? base : base[e];
      const step = Math.cbrt(Number.EPSILON) * Math.max(1, Math.abs(x));
      const shifted = (delta: number): InputData[] =>
        inputs.map((v, j) => {
          if (j !== k) return v;
          if (typeof v === "number") return v + delta;
          const copy = Float64Array.from(v);
          copy[e] += delta;
          return copy;
        });
      // The step actually taken (x + h − x is not h exactly in floating point).
      const h = x + step - x;
      const fd = (f(shifted(h)) - f(shifted(-h))) / (2 * h);
      const ad = adAt(e);
      const absolute = Math.abs(ad - fd);
      const scale = Math.max(Math.abs(ad), Math.abs(fd));
      const tolerance = 1e-6 * Math.max(1, Math.abs(f0), scale);
      const entry: CheckEntry = {
        ad,
        fd,
        step: h,
        absolute,
        relative: scale === 0 ? 0 : absolute / scale,
        tolerance,
        passed: absolute <= tolerance,
      };
      if (!worst || !(entry.absolute - entry.tolerance <= worst.absolute - worst.tolerance))
        worst = size > 1 ? { ...entry, element: e, elements: size } : entry;
    }
    if (worst) {
      entries[w.name] = worst;
      passed &&= worst.passed;
    }
  }
  return {
    outputs: grad.outputs,
    gradient: grad.gradient ?? record(),
    check: { passed, inputs: entries, rule: CHECK_RULE },
    ...(grad.nonFinite ? { nonFinite: grad.nonFinite } : {}),
  };
}

function pointOf(fn: CompiledFunction, inputs: InputData[]): Record<string, Value> {
  return recordOf(
    fn.graph.inputs.map((input, k) => {
      const v = inputs[k];
      const shape = fn.graph.nodes[input.node].shape;
      return [input.name, typeof v === "number" ? v : { shape: [...shape], data: v }];
    }),
  );
}
