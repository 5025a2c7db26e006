import { forward } from "../ad/forward.js";
import { reverse } from "../ad/reverse.js";
import { compileProgram, type Program } from "../compile/program.js";
import type { Precision } from "../compile/scalar-program.js";
import { invalid } from "../errors.js";
import type { Budget } from "../ir/budget.js";
import type { Graph, NamedNode } from "../ir/graph.js";
import { contentHash } from "../ir/hash.js";
import { selectInputs, selectOutputs } from "../ir/select.js";
import { own, record, recordOf } from "../names.js";
import type { MaybeNode } from "../ops/types.js";
import { sizeOf } from "../tensor/shape.js";
import { type CheckResult, check, derivative, divergence, hessian, hvp, jacobian, laplacian } from "./operators.js";
import { findNonFinite, type NonFiniteReport } from "./provenance.js";
import { type InputData, run } from "./run.js";
import { buildTrace, type Trace } from "./trace.js";
import { checkValue, firstNonFinite, type NamedValues, resultValue, type Value } from "./values.js";

export type Mode = "value" | "reverse" | "forward" | "jacobian" | "hessian" | "hvp" | "derivative" | "divergence" | "laplacian" | "check";

export interface EvaluateRequest {
  readonly mode: Mode;
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
  /**
   * What building this request's programs may cost (derived nodes, tensor elements); unbounded
   * without one. Programs already built are reused whatever the budget.
   */
  readonly budget?: Budget;
}

export interface Evaluation {
  readonly outputs: Record<string, Value>;
  readonly gradient?: Record<string, Value>;
  readonly jvp?: Record<string, Value>;
  readonly vjp?: Record<string, Value>;
  readonly trace?: Trace;
  readonly nonFinite?: NonFiniteReport;
  readonly jacobian?: Record<string, Record<string, Value>>;
  readonly method?: "forward" | "reverse";
  readonly hessian?: Record<string, Record<string, Value>>;
  readonly hvp?: Record<string, Value>;
  readonly derivative?: number;
  readonly partials?: string[];
  readonly divergence?: number;
  readonly laplacian?: number;
  readonly check?: CheckResult["check"];
}

export type { InputData } from "./run.js";

/** Every mode, for messages and manifests. */
export const MODES: readonly Mode[] = [
  "value",
  "reverse",
  "forward",
  "jacobian",
  "hessian",
  "hvp",
  "derivative",
  "divergence",
  "laplacian",
  "check",
];

/** A derived graph compiled for one kind of request, with what is needed to read its answers. */
export interface Prepared {
  readonly graph: Graph;
  readonly program: Program;
  /** Result nodes: the function's outputs, then the derivatives asked for. */
  readonly results: readonly number[];
  /** Inputs the transform added (tangents or cotangents), after the function's own. */
  readonly extraInputs: readonly NamedNode[];
  readonly derivatives?: readonly MaybeNode[];
  readonly origin?: Int32Array;
  readonly pass: "reverse" | "tangent";
}

/**
 * A function ready to evaluate: its graph, its content hash, and the programs compiled for it so far
 * (one per mode, wrt set and precision). Compiling is the expensive step; a caller keeps one of these
 * per function and evaluates it at many points.
 */
export class CompiledFunction {
  readonly hash: string;
  private readonly prepared = new Map<string, Prepared>();
  private readonly selections = new WeakMap<readonly string[], readonly NamedNode[]>();
  private defaultWrt: readonly NamedNode[] | undefined;
  private single: NamedNode | undefined;
  private readonly diagnostic = new Map<Prepared, Program>();

  constructor(
    readonly graph: Graph,
    hash?: string,
  ) {
    this.hash = hash ?? contentHash(graph);
  }

  get inputNames(): string[] {
    return this.graph.inputs.map((i) => i.name);
  }

  get outputNames(): string[] {
    return this.graph.outputs.map((o) => o.name);
  }

  evaluate(point: NamedValues, request: EvaluateRequest): Evaluation {
    const inputs = this.decode(point, this.graph.inputs, "point", "input", request.allowNonFinite ?? false);
    switch (request.mode) {
      case "value":
        return this.runValue(inputs, request);
      case "reverse":
        return request.cotangent ? this.runVjp(inputs, request) : this.runGradient(inputs, request);
      case "forward":
        return request.tangent ? this.runJvp(inputs, request) : this.runForwardGradient(inputs, request);
      case "jacobian":
        return jacobian(this, inputs, request);
      case "hessian":
        return hessian(this, inputs, request);
      case "hvp":
        return hvp(this, inputs, request);
      case "derivative":
        return derivative(this, inputs, request);
      case "divergence":
        return divergence(this, inputs, request);
      case "laplacian":
        return laplacian(this, inputs, request);
      case "check":
        return check(this, inputs, request);
      default:
        throw invalid(`unknown mode ${String(request.mode)}; use one of ${MODES.join(", ")}`, { field: "mode" });
    }
  }

  /** The point's values in input order, checked (names, shapes, types, finiteness). */
  pointValues(point: NamedValues, allowNonFinite: boolean, field = "point"): InputData[] {
    return this.decode(point, this.graph.inputs, field, "input", allowNonFinite);
  }

  /** Values by name, checked against the declared names, shapes and types, in the given order. */
  decode(
    values: NamedValues,
    names: readonly NamedNode[],
    field: string,
    what: string,
    allowNonFinite: boolean,
    graph = this.graph,
  ): InputData[] {
    if (typeof values !== "object" || values === null || Array.isArray(values)) {
      throw invalid(`${field} must be an object mapping each ${what} name to its value`, { field });
    }
    const known = new Set(names.map((n) => n.name));
    for (const key of Object.keys(values)) {
      if (!known.has(key)) {
        throw invalid(`${field}.${key}: no ${what} is named ${key}; the ${what}s are ${[...known].join(", ") || "(none)"}`, {
          field: `${field}.${key}`,
          input: key,
        });
      }
    }
    return names.map((n) => {
      const v = own(values, n.name);
      const at = `${field}.${n.name}`;
      if (v === undefined) throw invalid(`${at} is missing`, { field: at, input: n.name });
      const node = graph.nodes[n.node];
      return checkValue(v, node.shape, node.dtype, at, allowNonFinite);
    });
  }

  /**
   * Estimated bytes held: graph nodes (the function's and each prepared derivation's) and the buffers
   * of the programs compiled so far. Cheap: it is remeasured only after a program was added, so a
   * cache can weigh a function after every use.
   */
  estimatedBytes(): number {
    const programs = this.prepared.size + this.diagnostic.size;
    if (programs !== this.measuredPrograms) {
      let bytes = this.graph.nodes.length * NODE_BYTES;
      for (const p of this.prepared.values())
        bytes += (p.graph === this.graph ? 0 : p.graph.nodes.length * NODE_BYTES) + programBytes(p.program);
      for (const program of this.diagnostic.values()) bytes += programBytes(program);
      this.measured = bytes;
      this.measuredPrograms = programs;
    }
    return this.measured;
  }
  private measured = 0;
  private measuredPrograms = -1;

  /** The program for `key`, compiled on first use from the derived graph `make` builds. */
  prepare(key: string, precision: Precision, make: () => Omit<Prepared, "program">, budget?: Budget): Prepared {
    const full = `${key}|${precision}`;
    let p = this.prepared.get(full);
    if (!p) {
      const made = make();
      p = { ...made, program: compileProgram(made.graph, made.results, { precision, budget }) };
      this.prepared.set(full, p);
    }
    return p;
  }

  private outputNodes(): number[] {
    return this.graph.outputs.map((o) => o.node);
  }

  prepareValue(precision: Precision, budget?: Budget): Prepared {
    return this.prepare(
      "value",
      precision,
      () => ({ graph: this.graph, results: this.outputNodes(), extraInputs: [], pass: "reverse" }),
      budget,
    );
  }

  /** Reverse mode seeded at the single scalar output: results are the outputs, then one gradient per wrt input. */
  prepareGradient(wrt: readonly NamedNode[], precision: Precision, budget?: Budget): Prepared {
    const single = this.singleOutput();
    return this.prepare(
      `grad|${single.name}|${names(wrt)}`,
      precision,
      () => {
        const r = reverse(this.graph, { outputs: [single.name], wrt: wrt.map((w) => w.name), cotangent: "seed", budget });
        return {
          graph: r.graph,
          results: [...this.outputNodes(), ...r.gradients],
          extraInputs: [],
          derivatives: r.adjoints,
          origin: r.origin,
          pass: "reverse",
        };
      },
      budget,
    );
  }

  /** Reverse mode with a cotangent input per output: results are the outputs, then vᵀJ per wrt input. */
  prepareVjp(wrt: readonly NamedNode[], precision: Precision, budget?: Budget): Prepared {
    return this.prepare(
      `vjp|${names(wrt)}`,
      precision,
      () => {
        const r = reverse(this.graph, { wrt: wrt.map((w) => w.name), cotangent: "input", budget });
        return {
          graph: r.graph,
          results: [...this.outputNodes(), ...r.gradients],
          extraInputs: r.cotangents,
          derivatives: r.adjoints,
          origin: r.origin,
          pass: "reverse",
        };
      },
      budget,
    );
  }

  private runValue(inputs: InputData[], request: EvaluateRequest): Evaluation {
    const p = this.prepareValue(request.precision ?? "float64", request.budget);
    run(p.program, inputs);
    return this.finish(p, inputs, request, "value", {});
  }

  private runGradient(inputs: InputData[], request: EvaluateRequest): Evaluation {
    const wrt = this.wrtOf(request.wrt);
    const p = this.prepareGradient(wrt, request.precision ?? "float64", request.budget);
    run(p.program, inputs);
    return this.finish(p, inputs, request, "reverse", { gradient: this.readNamed(p, wrt) });
  }

  private runVjp(inputs: InputData[], request: EvaluateRequest): Evaluation {
    const wrt = this.wrtOf(request.wrt);
    const p = this.prepareVjp(wrt, request.precision ?? "float64", request.budget);
    const cot = this.decode(
      request.cotangent as NamedValues,
      this.graph.outputs.map((o, k) => ({ name: o.name, node: p.extraInputs[k].node })),
      "cotangent",
      "output",
      request.allowNonFinite ?? false,
      p.graph,
    );
    const all = [...inputs, ...cot];
    run(p.program, all);
    return this.finish(p, all, request, "reverse", { vjp: this.readNamed(p, wrt) });
  }

  prepareJvp(wrt: readonly NamedNode[], precision: Precision, budget?: Budget): Prepared {
    return this.prepare(
      `jvp|${names(wrt)}`,
      precision,
      () => {
        const f = forward(this.graph, { wrt: wrt.map((w) => w.name), budget });
        return {
          graph: f.graph,
          results: [...this.outputNodes(), ...f.outputTangents],
          extraInputs: f.tangentInputs,
          derivatives: f.tangents,
          origin: f.origin,
          pass: "tangent",
        };
      },
      budget,
    );
  }

  private runJvp(inputs: InputData[], request: EvaluateRequest): Evaluation {
    const wrt = this.wrtOf(request.wrt);
    const p = this.prepareJvp(wrt, request.precision ?? "float64", request.budget);
    const tangentNames = wrt.map((w, k) => ({ name: w.name, node: p.extraInputs[k].node }));
    const tan = this.decode(request.tangent as NamedValues, tangentNames, "tangent", "input", request.allowNonFinite ?? false, p.graph);
    const all = [...inputs, ...tan];
    run(p.program, all);
    const outs = this.graph.outputs;
    const jvp = recordOf(outs.map((o, k) => [o.name, this.readResult(p, outs.length + k)]));
    return this.finish(p, all, request, "forward", { jvp });
  }

  /**
   * The gradient by forward mode: one sweep per input element, the tangent a unit vector each time.
   * A sweep that yields a non-finite derivative is redone on a program that differentiates with
   * respect to that input alone: there the other tangents are symbolic zeros, so an infinite partial
   * elsewhere (√x at 0, say) cannot turn 0·∞ into NaN, and the answer agrees with reverse mode.
   */
  private runForwardGradient(inputs: InputData[], request: EvaluateRequest): Evaluation {
    const precision = request.precision ?? "float64";
    const wrt = this.wrtOf(request.wrt);
    const single = this.singleOutput();
    const resultIndex = this.graph.outputs.length + this.graph.outputs.indexOf(single);
    const p = this.prepareJvp(wrt, precision, request.budget);
    const shapes = wrt.map((w) => this.graph.nodes[w.node].shape);
    const scratch = shapes.map((shape) => new Float64Array(sizeOf(shape)));
    /** Tangents for the sweep along element e of input k (all zero when k < 0). */
    const unit = (k: number, e: number, only?: number): InputData[] =>
      shapes
        .map((shape, j) => {
          if (shape.length === 0) return j === k ? 1 : 0;
          scratch[j].fill(0);
          if (j === k) scratch[j][e] = 1;
          return scratch[j];
        })
        .filter((_, j) => only === undefined || j === only);

    const sweeps: { input: number; element: number }[] = [];
    const gradient = record<Value>();
    let failed: { program: Prepared; inputs: InputData[] } | undefined;
    wrt.forEach((w, k) => {
      const g = new Float64Array(scratch[k].length);
      for (let e = 0; e < g.length; e++) {
        run(p.program, [...inputs, ...unit(k, e)]);
        let d = scalarOf(p.program.read(p.results[resultIndex]));
        if (!Number.isFinite(d)) {
          const alone = this.prepareJvp([w], precision, request.budget);
          const args = [...inputs, ...unit(k, e, k)];
          run(alone.program, args);
          d = scalarOf(alone.program.read(alone.results[resultIndex]));
          if (!Number.isFinite(d)) failed ??= { program: alone, inputs: args };
        }
        g[e] = d;
        sweeps.push({ input: k, element: e });
      }
      gradient[w.name] = shapes[k].length ? { shape: [...shapes[k]], data: g } : g[0];
    });
    if (wrt.length === 0) run(p.program, inputs);
    const evaluation: { -readonly [K in keyof Evaluation]: Evaluation[K] } = { outputs: this.readOutputs(p), gradient };
    if (failed) evaluation.nonFinite = this.diagnose(failed.program, failed.inputs, request.budget).report;
    else if (firstNonFiniteResult(p) !== undefined)
      evaluation.nonFinite = this.diagnose(p, [...inputs, ...unit(-1, 0)], request.budget).report;
    if (request.trace) {
      // The trace's tangent column holds one entry per sweep, keyed by the input (and element) swept.
      const columns = sweeps.map(({ input, element }) => {
        const { read } = this.diagnose(p, [...inputs, ...unit(input, element)], request.budget);
        const key = shapes[input].length ? `${wrt[input].name}[${element}]` : wrt[input].name;
        const values = new Map<number, Value>();
        p.graph.nodes.forEach((_, id) => {
          if (id < this.graph.nodes.length) values.set(id, p.derivatives?.[id] == null ? 0 : read(p.derivatives[id] as number));
        });
        return { key, values };
      });
      const { read } = this.diagnose(p, [...inputs, ...unit(-1, 0)], request.budget);
      evaluation.trace = buildTrace(this.graph, "forward", read, (id) => recordOf(columns.map((c) => [c.key, c.values.get(id)])));
    }
    return evaluation;
  }

  singleOutput(): NamedNode {
    if (this.single) return this.single;
    const outs = selectOutputs(this.graph, undefined);
    if (outs.length !== 1) {
      throw invalid(
        `the function has ${outs.length} outputs (${outs.map((o) => o.name).join(", ")}): a gradient needs one scalar output; give a cotangent for a vector-Jacobian product, or a tangent for a Jacobian-vector product`,
        { field: "mode" },
      );
    }
    if (this.graph.nodes[outs[0].node].shape.length !== 0) {
      throw invalid(
        `output ${outs[0].name} is not a scalar: a gradient needs a scalar output; give a cotangent for a vector-Jacobian product`,
        { field: "mode" },
      );
    }
    this.single = outs[0];
    return outs[0];
  }

  private readResult(p: Prepared, k: number): Value {
    const node = p.results[k];
    return resultValue(p.graph.nodes[node].shape, p.program.read(node));
  }

  private readOutputs(p: Prepared): Record<string, Value> {
    const out = record<Value>();
    const outputs = this.graph.outputs;
    for (let k = 0; k < outputs.length; k++) out[outputs[k].name] = this.readResult(p, k);
    return out;
  }

  private readNamed(p: Prepared, wrt: readonly NamedNode[]): Record<string, Value> {
    const offset = this.graph.outputs.length;
    const out = record<Value>();
    for (let k = 0; k < wrt.length; k++) out[wrt[k].name] = this.readResult(p, offset + k);
    return out;
  }

  /** The inputs a request differentiates with respect to, remembered per wrt list (a request's plan reuses it). */
  wrtOf(wrt: readonly string[] | undefined): readonly NamedNode[] {
    if (wrt === undefined) return (this.defaultWrt ??= selectInputs(this.graph, undefined));
    let selected = this.selections.get(wrt);
    if (!selected) {
      selected = selectInputs(this.graph, wrt);
      this.selections.set(wrt, selected);
    }
    return selected;
  }

  /** Shapes the answer; traces and non-finite results cost a second, diagnostic run. */
  private finish(p: Prepared, inputs: InputData[], request: EvaluateRequest, mode: Trace["mode"], extra: Partial<Evaluation>): Evaluation {
    const evaluation: { -readonly [K in keyof Evaluation]: Evaluation[K] } = { outputs: this.readOutputs(p), ...extra };
    const bad = firstNonFiniteResult(p) !== undefined;
    if (!request.trace && !bad) return evaluation;
    const { read, report } = this.diagnose(p, inputs, request.budget);
    if (report) evaluation.nonFinite = report;
    if (request.trace) {
      const derivative = p.derivatives && ((id: number) => (p.derivatives?.[id] === null ? 0 : read(p.derivatives?.[id] as number)));
      evaluation.trace = buildTrace(this.graph, mode, read, mode === "value" ? undefined : derivative);
    }
    return evaluation;
  }

  /**
   * Re-runs on a program that keeps every node, to read any node (for the trace) and to find where a
   * non-finite value first appeared. Only traces and failures pay for it.
   */
  diagnose(p: Prepared, inputs: InputData[], budget?: Budget): { read: (node: number) => Value; report: NonFiniteReport | undefined } {
    let program = this.diagnostic.get(p);
    if (!program) {
      program = compileProgram(p.graph, p.results, { precision: p.program.precision, keepAll: true, budget });
      this.diagnostic.set(p, program);
    }
    run(program, inputs);
    const keep = program;
    const read = (node: number) => resultValue(p.graph.nodes[node].shape, keep.read(node));
    const report = findNonFinite(p.graph, this.graph, p.origin, p.pass, (node) => keep.read(node), p.results);
    return { read, report };
  }
}

/** A graph node with its shape, arguments and attributes, and the compiled program's share per node, in bytes (measured roughly). */
const NODE_BYTES = 512;

/** A program's own buffers: the tensor program's arena, the scalar program's value slots. */
function programBytes(program: Program): number {
  const inner = (program as { program?: { arenaBytes?: number; slots?: ArrayBufferView } }).program;
  return (inner?.arenaBytes ?? 0) + (inner?.slots?.byteLength ?? 0);
}

const joined = new WeakMap<readonly NamedNode[], string>();

/** The names of a selection, joined: a key part, computed once per selection. */
function names(list: readonly NamedNode[]): string {
  const known = joined.get(list);
  if (known !== undefined) return known;
  const key = list.map((w) => w.name).join(",");
  joined.set(list, key);
  return key;
}

function scalarOf(v: number | ArrayLike<number>): number {
  return typeof v === "number" ? v : v[0];
}

function firstNonFiniteResult(p: Prepared): number | undefined {
  for (const node of p.results) if (firstNonFinite(p.program.read(node)) >= 0) return node;
  return undefined;
}
