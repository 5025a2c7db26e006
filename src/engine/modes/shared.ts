import type { NamedNode } from "../../ir/graph.js";
import { recordOf } from "../../names.js";
import type { TensorData } from "../../ops/types.js";
import { sizeOf } from "../../tensor/shape.js";
import type { CompiledGraph, Prepared } from "../compiled-graph.js";
import type { InputData } from "../run.js";
import { buildTrace, type Trace } from "../trace.js";
import { firstNonFinite, resultValue, type Value } from "../values.js";
import type { BatchField, Evaluation, ModeOptions } from "./types.js";

/** An answer under construction. */
export type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Element `i` of a result as a program reads it (a scalar is its own element 0). */
export function element(v: number | TensorData, i: number): number {
  return typeof v === "number" ? v : v[i];
}

/** A block the mode filled itself, as a value (not copied). */
export function asValue(shape: readonly number[], data: Float64Array): Value {
  return shape.length === 0 ? data[0] : { shape: [...shape], data };
}

/** Shapes and sizes of the differentiated inputs, and unit tangents along one element of one of them. */
export class Directions {
  readonly shapes: (readonly number[])[];
  readonly sizes: number[];
  readonly total: number;
  private readonly scratch: Float64Array[];

  constructor(
    fn: CompiledGraph,
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

/** Result `k` of a prepared program, copied out: a number for a scalar, else a tensor. */
export function readResult(p: Prepared, k: number): Value {
  const node = p.results[k];
  return resultValue(p.graph.nodes[node].shape, p.program.read(node));
}

/** The function's outputs, the first results of the program. */
export function readOutputs(fn: CompiledGraph, p: Prepared): Record<string, Value> {
  return recordOf(fn.graph.outputs.map((o, k) => [o.name, readResult(p, k)]));
}

/** Results from index `offset` on, one per name. */
export function readNamed(p: Prepared, nodes: readonly NamedNode[], offset: number): Record<string, Value> {
  return recordOf(nodes.map((n, k) => [n.name, readResult(p, offset + k)]));
}

/** The answer's only output: the single scalar one, read from result `k`. */
export function readSingle(fn: CompiledGraph, p: Prepared, k = 0): Record<string, Value> {
  return recordOf([[fn.singleOutput().name, readResult(p, k)]]);
}

export function firstNonFiniteResult(p: Prepared): number | undefined {
  for (const node of p.results) if (firstNonFinite(p.program.read(node)) >= 0) return node;
  return undefined;
}

/** Shapes the answer of one run; traces and non-finite results cost a second, diagnostic run. */
export function finish(
  fn: CompiledGraph,
  p: Prepared,
  inputs: InputData[],
  options: ModeOptions,
  mode: Trace["mode"],
  extra: Partial<Evaluation>,
): Evaluation {
  const evaluation: Mutable<Evaluation> = { outputs: readOutputs(fn, p), ...extra };
  const bad = firstNonFiniteResult(p) !== undefined;
  if (!options.trace && !bad) return evaluation;
  const { read, report } = fn.diagnose(p, inputs, options.budget);
  if (report) evaluation.nonFinite = report;
  if (options.trace) {
    const derivative = p.derivatives && ((id: number) => (p.derivatives?.[id] === null ? 0 : read(p.derivatives?.[id] as number)));
    evaluation.trace = buildTrace(fn.graph, mode, read, mode === "value" ? undefined : derivative);
  }
  return evaluation;
}

/** A batch plan's first program inputs: the point's, in input order. */
export function pointInputs(fn: CompiledGraph): { readonly name: string; readonly kind: "point" }[] {
  return fn.graph.inputs.map((i) => ({ name: i.name, kind: "point" as const }));
}

/** A batch plan's fields of one section, one per name. */
export function batchFields<S extends BatchField["section"]>(section: S, nodes: readonly NamedNode[]): { section: S; name: string }[] {
  return nodes.map((n) => ({ section, name: n.name }));
}
