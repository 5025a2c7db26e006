import { forward } from "../ad/forward.js";
import { reverse, selectInputs, selectOutputs } from "../ad/reverse.js";
import { type Precision, ScalarProgram } from "../compile/scalar-program.js";
import { invalid } from "../errors.js";
import type { Graph, NamedNode } from "../ir/graph.js";
import { contentHash } from "../ir/hash.js";
import type { MaybeNode } from "../ops/types.js";
import { findNonFinite, type NonFiniteReport } from "./provenance.js";
import { buildTrace, derivativeReader, type Trace } from "./trace.js";

export type Mode = "value" | "reverse" | "forward";
export type NamedNumbers = Readonly<Record<string, number>>;

export interface EvaluateRequest {
  readonly mode: Mode;
  /** Inputs to differentiate with respect to (default: every float input). */
  readonly wrt?: readonly string[];
  /** forward: the direction of the Jacobian-vector product, by input name (default: a gradient by one sweep per input). */
  readonly tangent?: NamedNumbers;
  /** reverse: the weights of the vector-Jacobian product, by output name (default: the gradient of the single output). */
  readonly cotangent?: NamedNumbers;
  readonly trace?: boolean;
  readonly precision?: Precision;
  /** Accept NaN and ±Infinity among the inputs. */
  readonly allowNonFinite?: boolean;
}

export interface Evaluation {
  readonly outputs: Record<string, number>;
  readonly gradient?: Record<string, number>;
  readonly jvp?: Record<string, number>;
  readonly vjp?: Record<string, number>;
  readonly trace?: Trace;
  readonly nonFinite?: NonFiniteReport;
}

/** A derived graph compiled for one kind of request, with what is needed to read its answers. */
interface Prepared {
  readonly graph: Graph;
  readonly program: ScalarProgram;
  /** Nodes of the requested results, in program output order. */
  readonly results: readonly number[];
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
  private readonly diagnostic = new Map<string, ScalarProgram>();

  constructor(
    readonly graph: Graph,
    hash?: string,
  ) {
    this.hash = hash ?? contentHash(graph);
    if (!graph.isScalar) throw invalid("tensor-valued functions are not supported yet");
  }

  get inputNames(): string[] {
    return this.graph.inputs.map((i) => i.name);
  }

  get outputNames(): string[] {
    return this.graph.outputs.map((o) => o.name);
  }

  evaluate(point: NamedNumbers, request: EvaluateRequest): Evaluation {
    const values = this.pointValues(point, request.allowNonFinite ?? false);
    switch (request.mode) {
      case "value":
        return this.runValue(values, request);
      case "reverse":
        return request.cotangent ? this.runVjp(values, request) : this.runGradient(values, request);
      case "forward":
        return request.tangent ? this.runJvp(values, request) : this.runForwardGradient(values, request);
      default:
        throw invalid(`unknown mode ${String(request.mode)}; use value, reverse or forward`, { field: "mode" });
    }
  }

  /** The point as an array in input order, rejecting missing, unknown and (unless allowed) non-finite inputs. */
  pointValues(point: NamedNumbers, allowNonFinite: boolean, field = "point"): Float64Array {
    return namedToArray(point, this.graph.inputs, allowNonFinite, field, "input");
  }

  private prepare(key: string, make: () => Omit<Prepared, "program"> & { outputs?: readonly number[] }, precision: Precision): Prepared {
    const full = `${key}|${precision}`;
    let p = this.prepared.get(full);
    if (!p) {
      const made = make();
      p = { ...made, program: new ScalarProgram(made.graph, made.results, { precision }) };
      this.prepared.set(full, p);
    }
    return p;
  }

  private runValue(values: Float64Array, request: EvaluateRequest): Evaluation {
    const precision = request.precision ?? "float64";
    const p = this.prepare(
      "value",
      () => ({ graph: this.graph, results: this.graph.outputs.map((o) => o.node), pass: "reverse" }),
      precision,
    );
    run(p.program, values);
    const outputs = this.readOutputs(p, 0);
    const evaluation: { outputs: Record<string, number>; trace?: Trace; nonFinite?: NonFiniteReport } = { outputs };
    if (request.trace || !allFinite(p.program)) this.diagnose(p, values, precision, request.trace ? "value" : undefined, evaluation);
    return evaluation;
  }

  private runGradient(values: Float64Array, request: EvaluateRequest): Evaluation {
    const precision = request.precision ?? "float64";
    const wrt = selectInputs(this.graph, request.wrt);
    const single = this.singleOutput();
    const p = this.prepare(
      `grad|${single.name}|${wrt.map((w) => w.name).join(",")}`,
      () => {
        const r = reverse(this.graph, { outputs: [single.name], wrt: wrt.map((w) => w.name), cotangent: "seed" });
        return {
          graph: r.graph,
          results: [...this.graph.outputs.map((o) => o.node), ...r.gradients],
          derivatives: r.adjoints,
          origin: r.origin,
          pass: "reverse",
        };
      },
      precision,
    );
    run(p.program, values);
    const evaluation: Record<string, unknown> = {
      outputs: this.readOutputs(p, 0),
      gradient: readNamed(p.program, wrt, this.graph.outputs.length),
    };
    if (request.trace || !allFinite(p.program)) this.diagnose(p, values, precision, request.trace ? "reverse" : undefined, evaluation);
    return evaluation as unknown as Evaluation;
  }

  private runVjp(values: Float64Array, request: EvaluateRequest): Evaluation {
    const precision = request.precision ?? "float64";
    const wrt = selectInputs(this.graph, request.wrt);
    const p = this.prepare(
      `vjp|${wrt.map((w) => w.name).join(",")}`,
      () => {
        const r = reverse(this.graph, { wrt: wrt.map((w) => w.name), cotangent: "input" });
        return {
          graph: r.graph,
          results: [...this.graph.outputs.map((o) => o.node), ...r.gradients],
          derivatives: r.adjoints,
          origin: r.origin,
          pass: "reverse",
        };
      },
      precision,
    );
    const cot = namedToArray(request.cotangent as NamedNumbers, this.graph.outputs, request.allowNonFinite ?? false, "cotangent", "output");
    const all = concat(values, cot);
    run(p.program, all);
    const evaluation: Record<string, unknown> = {
      outputs: this.readOutputs(p, 0),
      vjp: readNamed(p.program, wrt, this.graph.outputs.length),
    };
    if (request.trace || !allFinite(p.program)) this.diagnose(p, all, precision, request.trace ? "reverse" : undefined, evaluation);
    return evaluation as unknown as Evaluation;
  }

  private prepareJvp(wrt: readonly NamedNode[], precision: Precision): Prepared {
    return this.prepare(
      `jvp|${wrt.map((w) => w.name).join(",")}`,
      () => {
        const f = forward(this.graph, { wrt: wrt.map((w) => w.name) });
        return {
          graph: f.graph,
          results: [...this.graph.outputs.map((o) => o.node), ...f.outputTangents],
          derivatives: f.tangents,
          origin: f.origin,
          pass: "tangent",
        };
      },
      precision,
    );
  }

  private runJvp(values: Float64Array, request: EvaluateRequest): Evaluation {
    const precision = request.precision ?? "float64";
    const wrt = selectInputs(this.graph, request.wrt);
    const p = this.prepareJvp(wrt, precision);
    const tan = namedToArray(request.tangent as NamedNumbers, wrt, request.allowNonFinite ?? false, "tangent", "input");
    const all = concat(values, tan);
    run(p.program, all);
    const outs = this.graph.outputs;
    const evaluation: Record<string, unknown> = {
      outputs: this.readOutputs(p, 0),
      jvp: Object.fromEntries(outs.map((o, k) => [o.name, p.program.output(outs.length + k)])),
    };
    if (request.trace || !allFinite(p.program)) this.diagnose(p, all, precision, request.trace ? "forward" : undefined, evaluation);
    return evaluation as unknown as Evaluation;
  }

  /**
   * The gradient by forward mode: one sweep per input, the tangent a unit vector each time. A sweep
   * that yields a non-finite derivative is redone on a program that differentiates with respect to
   * that input alone: there the other tangents are symbolic zeros, so an infinite partial elsewhere
   * (√x at 0, say) cannot turn 0·∞ into NaN, and the answer agrees with reverse mode.
   */
  private runForwardGradient(values: Float64Array, request: EvaluateRequest): Evaluation {
    const precision = request.precision ?? "float64";
    const wrt = selectInputs(this.graph, request.wrt);
    const single = this.singleOutput();
    const tangentResult = this.graph.outputs.length + this.graph.outputs.indexOf(single);
    const p = this.prepareJvp(wrt, precision);
    const nIn = values.length;
    const all = concat(values, new Float64Array(wrt.length));
    const sweep = (k: number) => {
      all.fill(0, nIn);
      all[nIn + k] = 1;
      run(p.program, all);
    };
    const gradient: Record<string, number> = {};
    let failed: number | undefined;
    wrt.forEach((w, k) => {
      sweep(k);
      let d = p.program.output(tangentResult);
      if (!Number.isFinite(d)) {
        const alone = this.prepareJvp([w], precision);
        run(alone.program, concat(values, Float64Array.of(1)));
        d = alone.program.output(tangentResult);
        if (!Number.isFinite(d)) failed ??= k;
      }
      gradient[w.name] = d;
    });
    if (wrt.length === 0) run(p.program, all);
    const evaluation: Record<string, unknown> = { outputs: this.readOutputs(p, 0), gradient };
    if (!request.trace && failed === undefined && allFinite(p.program)) return evaluation as unknown as Evaluation;

    const keep = this.keepAll(p, precision);
    const valuesOf: Record<string, number>[] = [];
    wrt.forEach((w, k) => {
      if (failed === k) {
        const alone = this.prepareJvp([w], precision);
        this.diagnose(alone, concat(values, Float64Array.of(1)), precision, undefined, evaluation);
      }
      sweep(k);
      keep.setInputs(all);
      keep.interpret();
      valuesOf.push(Object.fromEntries(p.derivatives?.map((d, id) => [id, d === null ? 0 : keep.slots[keep.slotOf[d]]]) ?? []));
    });
    if (request.trace) {
      const read = (id: number) => keep.slots[keep.slotOf[id]];
      const tangentsOf = (id: number) => Object.fromEntries(wrt.map((w, k) => [w.name, valuesOf[k][id]]));
      evaluation.trace = buildTrace(this.graph, "forward", read, tangentsOf);
    }
    return evaluation as unknown as Evaluation;
  }

  private singleOutput(): NamedNode {
    const outs = selectOutputs(this.graph, undefined);
    if (outs.length !== 1) {
      throw invalid(
        `the function has ${outs.length} outputs (${outs.map((o) => o.name).join(", ")}): a gradient needs one scalar output; give a cotangent for a vector-Jacobian product, or a tangent for a Jacobian-vector product`,
        { field: "mode" },
      );
    }
    return outs[0];
  }

  private readOutputs(p: Prepared, offset: number): Record<string, number> {
    const out: Record<string, number> = {};
    this.graph.outputs.forEach((o, k) => {
      out[o.name] = p.program.output(offset + k);
    });
    return out;
  }

  /**
   * Re-runs the request on a program that keeps every node (the interpreter, nothing pruned) to build
   * the trace and to find where a non-finite value first appeared. Only traces and failures pay for it.
   */
  private diagnose(
    p: Prepared,
    inputs: Float64Array,
    precision: Precision,
    traceMode: Trace["mode"] | undefined,
    into: Record<string, unknown>,
  ): void {
    const program = this.keepAll(p, precision);
    program.setInputs(inputs);
    program.interpret();
    const read = (id: number) => program.slots[program.slotOf[id]];
    if (traceMode) into.trace = buildTrace(this.graph, traceMode, read, p.derivatives && derivativeReader(p.derivatives, read));
    const report = findNonFinite(p.graph, this.graph, p.origin, p.pass, read, p.results);
    if (report) into.nonFinite = report;
  }

  /** The prepared graph compiled with every node kept, for traces and diagnosis (built on first use). */
  private keepAll(p: Prepared, precision: Precision): ScalarProgram {
    const key = `keep|${p.graph.nodes.length}|${p.results.join(",")}|${precision}`;
    let program = this.diagnostic.get(key);
    if (!program) {
      program = new ScalarProgram(
        p.graph,
        p.graph.nodes.map((_, id) => id),
        { precision, tier: "interpreter" },
      );
      this.diagnostic.set(key, program);
    }
    return program;
  }
}

function run(program: ScalarProgram, inputs: Float64Array): void {
  program.setInputs(inputs);
  program.run();
}

function allFinite(program: ScalarProgram): boolean {
  const s = program.slots;
  const outs = program.outputSlots;
  for (let i = 0; i < outs.length; i++) if (!Number.isFinite(s[outs[i]])) return false;
  return true;
}

function readNamed(program: ScalarProgram, names: readonly NamedNode[], offset: number): Record<string, number> {
  const out: Record<string, number> = {};
  names.forEach((n, k) => {
    out[n.name] = program.output(offset + k);
  });
  return out;
}

function concat(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Named numbers to an array in the order of `names`, with errors that say which name is wrong. */
export function namedToArray(
  values: NamedNumbers,
  names: readonly { readonly name: string }[],
  allowNonFinite: boolean,
  field: string,
  what: "input" | "output",
): Float64Array {
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    throw invalid(`${field} must be an object mapping each ${what} name to a number`, { field });
  }
  const out = new Float64Array(names.length);
  const known = new Set(names.map((n) => n.name));
  for (const key of Object.keys(values)) {
    if (!known.has(key)) {
      throw invalid(`${field}.${key}: no ${what} is named ${key}; the ${what}s are ${[...known].join(", ") || "(none)"}`, {
        field: `${field}.${key}`,
        input: key,
      });
    }
  }
  names.forEach((n, k) => {
    const v = values[n.name];
    if (v === undefined) throw invalid(`${field}.${n.name} is missing`, { field: `${field}.${n.name}`, input: n.name });
    if (typeof v !== "number") throw invalid(`${field}.${n.name} must be a number`, { field: `${field}.${n.name}`, input: n.name });
    if (!allowNonFinite && !Number.isFinite(v)) {
      throw invalid(`${field}.${n.name} is ${v}; non-finite values are rejected unless the request allows them`, {
        field: `${field}.${n.name}`,
        input: n.name,
      });
    }
    out[k] = v;
  });
  return out;
}
