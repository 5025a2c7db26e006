import { AdjointError, invalid } from "../errors.js";
import type { Budget } from "../ir/budget.js";
import type { Graph } from "../ir/graph.js";
import type { TensorData } from "../ops/types.js";
import { sizeOf } from "../tensor/shape.js";
import type { Precision } from "./scalar-program.js";
import { type ArenaBinder, allocate } from "./tensor-arena.js";
import { emitSteps } from "./tensor-emit.js";
import { TensorPlan } from "./tensor-plan.js";
import { type BufferLocation, isContiguous, type Location } from "./tensor-plan-types.js";

/**
 * A compiled tensor graph. Planning decides, per node, whether it is a view of another buffer
 * (reshape, broadcast, slice, transpose, zero padding), a value computed inside a fused loop (chains
 * of elementwise ops and the reductions they feed), a kernel call (matmul, convolution, gather…), or a
 * literal. Consecutive loops over the same index space merge into one nest that reads its inputs once
 * and stores only what later steps need. Buffers live in one SharedArrayBuffer arena, allocated once;
 * space is reused once a buffer's last reader has run. Running walks a fixed list of prepared steps.
 */
export class TensorProgram {
  readonly arena: SharedArrayBuffer;
  readonly precision: Precision;
  /** Where each input is read from: its own arena buffer, or the array bound to it. */
  readonly inputBuffers: TensorData[];
  readonly outputs: readonly number[];
  /** Step labels, for errors and profiles. */
  readonly stepLabels: string[];
  readonly steps: (() => void)[];
  private readonly locations: (Location | undefined)[];
  private readonly binder: ArenaBinder;
  private readonly inputBufferIds: number[];
  private readonly arenaInputs: TensorData[];
  /** Buffers of results bound to caller memory by bindOutput or tryBindOutput. */
  private readonly boundOutputs = new Set<number>();
  private readonly graph: Graph;

  constructor(
    graph: Graph,
    outputs: readonly number[],
    options: { precision?: Precision; keep?: readonly number[]; budget?: Budget } = {},
  ) {
    this.graph = graph;
    this.outputs = outputs;
    this.precision = options.precision ?? "float64";
    const float32 = this.precision === "float32";
    // The plan checks the budget before anything is allocated, the arena before it is created.
    const plan = new TensorPlan(graph, outputs, { float32, keep: options.keep, budget: options.budget });
    this.binder = allocate(plan.buffers, float32, options.budget);
    this.arena = this.binder.arena;
    this.locations = plan.finalLocations();
    const { steps, labels } = emitSteps(plan, this.binder);
    this.steps = steps;
    this.stepLabels = labels;
    this.inputBufferIds = graph.inputs.map((i) => (plan.locations[i.node] as BufferLocation).buffer);
    this.arenaInputs = this.inputBufferIds.map((b) => this.binder.views[b]);
    this.inputBuffers = [...this.arenaInputs];
  }

  /**
   * Makes the program read input k straight from `data` (no copy) until the next bind or setInput.
   * `data` must have the input's element type and length: a decoded request tensor in shared memory,
   * say. Steps keep their closures; only the array slots that point at the input's buffer change.
   */
  bindInput(k: number, data: TensorData): void {
    const own = this.arenaInputs[k];
    if (data.constructor !== own.constructor || data.length !== own.length) {
      throw new Error(`input ${k} needs a ${own.constructor.name} of ${own.length} elements`);
    }
    this.rebind(k, data);
  }

  /** Copies into input k's own buffer (undoing any binding). */
  setInput(k: number, value: number | ArrayLike<number>): void {
    if (this.inputBuffers[k] !== this.arenaInputs[k]) this.rebind(k, this.arenaInputs[k]);
    const buf = this.arenaInputs[k];
    if (typeof value === "number") buf[0] = value;
    else buf.set(value);
  }

  /**
   * Makes the program write a result straight into `data` (no copy out): an answer's block in shared
   * memory, say. The node must be a kept result stored on its own, and `data` of its type and size.
   */
  bindOutput(node: number, data: TensorData): void {
    const buffer = this.resultBuffer(node);
    if (buffer === undefined) throw new Error(`node ${node} is not a result stored on its own`);
    const own = this.binder.own[buffer];
    if (data.constructor !== own.constructor || data.length !== own.length)
      throw new Error(`node ${node} needs a ${own.constructor.name} of ${own.length} elements`);
    this.binder.rebind(buffer, data);
    this.boundOutputs.add(buffer);
  }

  /**
   * Like bindOutput, for a caller that copies the result itself where it cannot be bound: false, and
   * nothing bound, when the node is not a result stored on its own, when `data` is not of its type and
   * size, or when another result bound since the last releaseOutputs is stored in the same buffer.
   */
  tryBindOutput(node: number, data: TensorData): boolean {
    const buffer = this.resultBuffer(node);
    if (buffer === undefined || this.boundOutputs.has(buffer)) return false;
    const own = this.binder.own[buffer];
    if (data.constructor !== own.constructor || data.length !== own.length) return false;
    this.binder.rebind(buffer, data);
    this.boundOutputs.add(buffer);
    return true;
  }

  /** Gives every bound result its own arena buffer back: later runs no longer touch the memory bound to them. */
  releaseOutputs(): void {
    for (const buffer of this.boundOutputs) this.binder.rebind(buffer, this.binder.own[buffer]);
    this.boundOutputs.clear();
  }

  /**
   * The buffer of a result that is stored whole and alone in it, which every run writes: not a view,
   * not an input, not a constant (written once, when the program is built), not an unused buffer.
   */
  private resultBuffer(node: number): number | undefined {
    const loc = this.locations[node];
    if (loc?.kind !== "buffer" || loc.offset !== 0) return undefined;
    const shape = this.graph.nodes[node].shape;
    const own = this.binder.own[loc.buffer];
    if (!own || !isContiguous(shape, loc) || own.length !== sizeOf(shape)) return undefined;
    if (this.inputBufferIds.includes(loc.buffer) || this.binder.isConstant(loc.buffer)) return undefined;
    return loc.buffer;
  }

  private rebind(k: number, data: TensorData): void {
    this.binder.rebind(this.inputBufferIds[k], data);
    this.inputBuffers[k] = data;
  }

  /** Runs every step; kernel errors (an index out of range) name the node they came from. */
  run(): void {
    const steps = this.steps;
    let s = 0;
    try {
      for (; s < steps.length; s++) steps[s]();
    } catch (e) {
      if (e instanceof AdjointError) throw invalid(`node ${this.stepLabels[s]}: ${e.message}`, { ...e.location, node: this.stepLabels[s] });
      throw e;
    }
  }

  /** The node's elements in row-major order (a view into the arena when the node is stored contiguously). */
  read(node: number): TensorData {
    const loc = this.locations[node];
    const shape = this.graph.nodes[node].shape;
    const size = sizeOf(shape);
    if (loc === undefined) throw new Error(`node ${node} is not kept by this program`);
    if (loc.kind === "literal") return new Float64Array(size).fill(loc.value);
    const buf = this.binder.views[loc.buffer];
    if (isContiguous(shape, loc)) return buf.subarray(loc.offset, loc.offset + size);
    const out = new Float64Array(size);
    const index = new Array<number>(shape.length).fill(0);
    for (let i = 0; i < size; i++) {
      let o = loc.offset;
      let inside = true;
      for (let d = 0; d < shape.length; d++) {
        o += index[d] * loc.strides[d];
        if (loc.bounds && (index[d] < loc.bounds[d][0] || index[d] >= loc.bounds[d][1])) inside = false;
      }
      out[i] = inside ? buf[o] : (loc.fill ?? 0);
      for (let d = shape.length - 1; d >= 0; d--) {
        if (++index[d] < shape[d]) break;
        index[d] = 0;
      }
    }
    return out;
  }

  /** Total arena size in bytes (the peak of live buffers, thanks to reuse). */
  get arenaBytes(): number {
    return this.arena.byteLength;
  }
}
