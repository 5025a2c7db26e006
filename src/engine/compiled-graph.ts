import { compileProgram, type Program } from "../compile/program.js";
import type { Precision } from "../compile/scalar-program.js";
import { invalid } from "../errors.js";
import type { Budget } from "../ir/budget.js";
import type { Graph, NamedNode } from "../ir/graph.js";
import { contentHash } from "../ir/hash.js";
import { selectInputs, selectOutputs } from "../ir/select.js";
import { own } from "../names.js";
import type { MaybeNode } from "../ops/types.js";
import { findNonFinite, type NonFiniteReport } from "./provenance.js";
import { type InputData, run } from "./run.js";
import { checkValue, type NamedValues, resultValue, type Value } from "./values.js";

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
 * A function's graph, its content hash, and the programs compiled for it so far (one per mode, wrt
 * set and precision), with the checks of the values given to it. The modes (engine/modes/) build
 * their derived graphs through `prepare`; CompiledFunction adds the dispatch to them.
 */
export class CompiledGraph {
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

  /** The function's output nodes, in order: the first results of every prepared program but the Hessian's. */
  outputNodes(): number[] {
    return this.graph.outputs.map((o) => o.node);
  }

  /** The single scalar output that gradients and higher derivatives need, or an error that says why not. */
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

/** The names of a selection, joined: a part of a `prepare` key, computed once per selection. */
export function selectionKey(list: readonly NamedNode[]): string {
  const known = joined.get(list);
  if (known !== undefined) return known;
  const key = list.map((w) => w.name).join(",");
  joined.set(list, key);
  return key;
}
