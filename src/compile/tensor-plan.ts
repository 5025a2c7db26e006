import { type Budget, extentError, extentOf } from "../ir/budget.js";
import type { Graph, IrNode } from "../ir/graph.js";
import { findOp } from "../ops/registry.js";
import type { OpDef, ViewMapping } from "../ops/types.js";
import { type Shape, sameShape, sizeOf } from "../tensor/shape.js";
import type { Access } from "./fused-loop.js";
import {
  accessOver,
  type BufferLocation,
  type BufferPlan,
  identity,
  isContiguous,
  type Location,
  rowMajor,
  type Scatter,
  sameAccess,
  type Task,
} from "./tensor-plan-types.js";
import { planScatters } from "./tensor-scatter.js";

export interface PlanOptions {
  readonly float32: boolean;
  readonly keep?: readonly number[];
  /** Checked against every needed node's extent before anything is planned or allocated. */
  readonly budget?: Budget;
}

/**
 * The decisions behind a tensor program, all made before any memory is allocated: per node, whether
 * it is a view of another buffer (reshape, broadcast, slice, transpose, zero padding), a value computed
 * inside a fused loop (chains of elementwise ops and the reductions they feed), a kernel call or a
 * literal; which loops share a nest; which sums are scattered from the nest that computes their terms;
 * and the lifetime of every buffer, from which the arena is laid out.
 */
export class TensorPlan {
  readonly nodes: readonly IrNode[];
  readonly float32: boolean;
  readonly kept: Uint8Array;
  readonly needed: Uint8Array;
  readonly defs: readonly (OpDef | undefined)[];
  /** Fused loop group of each elementwise or reduction node; −1 elsewhere. */
  readonly group: Int32Array;
  private readonly groupShape: Shape[] = [];
  private readonly groupRoot: number[] = [];
  readonly buffers: BufferPlan[] = [];
  /**
   * Each node's location as planned. A contiguous copy made later does not replace it, so that
   * readers planned before the copy still read the value where it was then.
   */
  readonly locations: (Location | undefined)[];
  /** Contiguous copies of nodes whose own location is a view or a literal, for the readers that need one. */
  private readonly copies: (BufferLocation | undefined)[];
  readonly tasks: Task[] = [];
  /** Task indices per loop nest, in run order; a sum turned into scattered writes leaves its nest empty. */
  readonly nests: number[][] = [];
  readonly writerNest = new Map<number, number>();
  /** Per nest, the scattered sums it accumulates besides its own stores. */
  readonly scatters: ReadonlyMap<number, readonly Scatter[]>;

  constructor(graph: Graph, outputs: readonly number[], options: PlanOptions) {
    this.nodes = graph.nodes;
    this.float32 = options.float32;
    const n = this.nodes.length;
    this.kept = new Uint8Array(n);
    for (const o of outputs) this.kept[o] = 1;
    for (const k of options.keep ?? []) this.kept[k] = 1;
    this.needed = this.markNeeded(graph, options.budget);
    this.defs = this.nodes.map((node) => (node.args.length ? (findOp(node.op) as OpDef) : undefined));
    this.group = this.fuseVertically();
    this.locations = new Array(n);
    this.copies = new Array(n);
    this.placeStorage(outputs);
    this.fuseHorizontally();
    // A sum of shifted, zero-padded values (what the reverse of slicing produces) is written by
    // accumulation from the nest that computes those values, instead of storing them for a later pass.
    this.scatters = planScatters(this);
    this.planLifetimes();
  }

  label(id: number): string {
    const node = this.nodes[id];
    return node.label ?? `${node.op} node ${id}`;
  }

  /** Where each node's value is read from once the program has run: its contiguous copy where there is one. */
  finalLocations(): (Location | undefined)[] {
    return this.locations.map((loc, id) => this.copies[id] ?? loc);
  }

  isReduce(id: number): boolean {
    return this.defs[id]?.reduce !== undefined;
  }

  writtenBy(task: Task): number | undefined {
    return task.kind === "copy" ? task.target.buffer : (this.locations[task.node] as BufferLocation | undefined)?.buffer;
  }

  /** The buffers a task reads from outside itself, and how (over the task's index space). */
  readsOf(task: Task): { buffer: number; access: Access }[] {
    const { nodes, group, locations } = this;
    const reads: { buffer: number; access: Access }[] = [];
    if (task.kind === "loop") {
      const g = group[task.node];
      for (const m of task.members) {
        for (const a of nodes[m].args) {
          const loc = locations[a];
          if (group[a] !== g && loc?.kind === "buffer")
            reads.push({ buffer: loc.buffer, access: accessOver(nodes[a].shape, loc, task.shape) });
        }
      }
    } else if (task.kind === "copy") {
      if (task.from.kind === "buffer") reads.push({ buffer: task.from.buffer, access: accessOver(task.shape, task.from, task.shape) });
    } else if (task.kind === "kernel") {
      task.args.forEach((loc, k) => {
        const shape = nodes[nodes[task.node].args[k]].shape;
        reads.push({ buffer: loc.buffer, access: accessOver(shape, loc, shape) });
      });
    }
    return reads;
  }

  /** What the kept nodes depend on, plus every input; refused when one of them exceeds the budget. */
  private markNeeded(graph: Graph, budget: Budget | undefined): Uint8Array {
    const nodes = this.nodes;
    const needed = new Uint8Array(nodes.length);
    for (let id = 0; id < nodes.length; id++) if (this.kept[id]) needed[id] = 1;
    for (let id = nodes.length - 1; id >= 0; id--) if (needed[id]) for (const a of nodes[id].args) needed[a] = 1;
    for (const input of graph.inputs) needed[input.node] = 1;
    if (budget) {
      for (let id = 0; id < nodes.length; id++) {
        if (needed[id] && extentOf(nodes[id].shape) > budget.maxElements) {
          throw extentError(budget, nodes[id].shape, `node ${this.label(id)}`, nodes[id].label);
        }
      }
    }
    return needed;
  }

  /**
   * Vertical fusion, consumers first: an elementwise node joins its consumers' group when it is not
   * kept, all its consumers are in one group, and that group walks exactly its shape.
   */
  private fuseVertically(): Int32Array {
    const { nodes, needed, kept } = this;
    const n = nodes.length;
    const consumers: number[][] = Array.from({ length: n }, () => []);
    for (let id = 0; id < n; id++) if (needed[id]) for (const a of new Set(nodes[id].args)) consumers[a].push(id);
    const fusible = (id: number) => this.defs[id]?.kind === "elementwise" || this.isReduce(id);
    const group = new Int32Array(n).fill(-1);
    for (let id = n - 1; id >= 0; id--) {
      if (!needed[id] || !fusible(id)) continue;
      const cs = consumers[id];
      const target = cs.length ? group[cs[0]] : -1;
      const joinable =
        !kept[id] &&
        !this.isReduce(id) &&
        target >= 0 &&
        cs.every((c) => group[c] === target && fusible(c)) &&
        sameShape(this.groupShape[target], nodes[id].shape);
      if (joinable) group[id] = target;
      else {
        group[id] = this.groupRoot.length;
        this.groupRoot.push(id);
        this.groupShape.push(this.isReduce(id) ? nodes[nodes[id].args[0]].shape : nodes[id].shape);
      }
    }
    return group;
  }

  /** Storage, in evaluation order: every node outside a group's interior gets a location. */
  private placeStorage(outputs: readonly number[]): void {
    for (let id = 0; id < this.nodes.length; id++) if (this.needed[id]) this.place(id);
    for (const o of outputs) this.contiguous(o);
    for (let id = 0; id < this.nodes.length; id++) {
      if (!this.kept[id]) continue;
      const loc = this.copies[id] ?? this.locations[id];
      if (loc?.kind === "buffer") this.buffers[loc.buffer].pinned = true;
    }
  }

  private place(id: number): void {
    const node = this.nodes[id];
    const def = this.defs[id];
    if (node.op === "input") this.buffers[this.ownBuffer(id).buffer].pinned = true;
    else if (node.op === "const") {
      if (node.data === undefined) this.locations[id] = { kind: "literal", value: node.value as number };
      else {
        this.buffers[this.ownBuffer(id).buffer].pinned = true;
        this.tasks.push({ kind: "const", node: id, data: node.data });
      }
    } else if (def?.view && (def.viewWhen?.(node.attrs) ?? true)) {
      this.locations[id] = this.viewOf(id);
      if (this.kept[id]) this.contiguous(id);
    } else if (this.group[id] >= 0) {
      const g = this.group[id];
      if (this.groupRoot[g] !== id) return;
      this.ownBuffer(id, "float");
      const members: number[] = [];
      for (let m = 0; m <= id; m++) if (this.group[m] === g) members.push(m);
      this.tasks.push({ kind: "loop", node: id, shape: this.groupShape[g], members });
    } else {
      if (!def?.kernel) throw new Error(`op ${node.op} has no tensor kernel`);
      const args = node.args.map((a) => this.contiguous(a));
      this.ownBuffer(id);
      const argShapes = node.args.map((a) => this.nodes[a].shape);
      const kernel = def.kernel({ argShapes, shape: node.shape, attrs: node.attrs, float32: this.float32 });
      this.tasks.push({ kind: "kernel", node: id, args, kernel });
    }
  }

  private newBuffer(id: number, dtype: "float" | "int" = this.nodes[id].dtype): BufferLocation {
    const shape = this.nodes[id].shape;
    this.buffers.push({ size: sizeOf(shape), dtype, pinned: this.kept[id] === 1, used: false, first: Number.POSITIVE_INFINITY, last: -1 });
    return { kind: "buffer", buffer: this.buffers.length - 1, offset: 0, strides: rowMajor(shape) };
  }

  private ownBuffer(id: number, dtype: "float" | "int" = this.nodes[id].dtype): BufferLocation {
    const loc = this.newBuffer(id, dtype);
    this.locations[id] = loc;
    return loc;
  }

  /**
   * A node's value as a plain row-major array: its own location when it is one, else a copy made
   * here, at this point of the program. The node's location stays as it was, so readers planned
   * earlier still read it where it was then.
   */
  private contiguous(id: number): BufferLocation {
    const loc = this.locations[id] as Location;
    if (loc.kind === "buffer" && isContiguous(this.nodes[id].shape, loc)) return loc;
    let copy = this.copies[id];
    if (!copy) {
      copy = this.newBuffer(id, "float");
      this.copies[id] = copy;
      this.tasks.push({ kind: "copy", node: id, shape: this.nodes[id].shape, from: loc, target: copy });
    }
    return copy;
  }

  /** The location of a view op's result, copying the operand first when no strided view expresses it. */
  private viewOf(id: number): Location {
    const node = this.nodes[id];
    const arg = node.args[0];
    const from = this.locations[arg] as Location;
    const argShape = this.nodes[arg].shape;
    const view = (this.defs[id] as OpDef).view as NonNullable<OpDef["view"]>;
    if (from.kind === "literal") {
      // Re-indexing a constant gives the same constant everywhere, unless it fills in another value
      // (padding): then the constant is stored, to have a window to bound.
      const fill = view(argShape, node.attrs, { offset: 0, strides: argShape.map(() => 0) })?.fill;
      if (fill === undefined || Object.is(fill, from.value)) return from;
    }
    // A window is bounded once at most: a view of a bounded view reads a copy.
    if (from.kind === "buffer" && !from.bounds) {
      const mapped = view(argShape, node.attrs, from);
      if (mapped) return { kind: "buffer", buffer: from.buffer, ...mapped };
    }
    const fresh = this.contiguous(arg);
    return { kind: "buffer", buffer: fresh.buffer, ...(view(argShape, node.attrs, fresh) as ViewMapping) };
  }

  /**
   * Horizontal fusion: consecutive loops over one index space become one nest, as long as each
   * reads what an earlier loop of the nest writes only at the same index (then it is a register).
   */
  private fuseHorizontally(): void {
    this.tasks.forEach((task, t) => {
      const current = this.nests[this.nests.length - 1];
      if (current && this.canJoin(task, current)) current.push(t);
      else this.nests.push([t]);
      const written = this.writtenBy(task);
      if (written !== undefined) this.writerNest.set(written, this.nests.length - 1);
    });
  }

  private canJoin(task: Task, current: readonly number[]): boolean {
    const head = this.tasks[current[0]];
    if (task.kind !== "loop" && task.kind !== "copy") return false;
    if ((head.kind !== "loop" && head.kind !== "copy") || !sameShape(head.shape, task.shape)) return false;
    const nest = this.nests.length - 1;
    return this.readsOf(task).every(({ buffer, access }) => {
      if (this.writerNest.get(buffer) !== nest) return true;
      // Written in this nest: only a read at the same index of a finished elementwise value will do.
      const writer = current.map((k) => this.tasks[k]).find((w) => this.writtenBy(w) === buffer);
      const elementwise = writer !== undefined && (writer.kind === "copy" || (writer.kind === "loop" && !this.isReduce(writer.node)));
      return elementwise && sameAccess(access, identity(task.shape), task.shape);
    });
  }

  /** Lifetimes at nest granularity; a buffer read only inside its writer's nest is never stored. */
  private planLifetimes(): void {
    const buffers = this.buffers;
    this.nests.forEach((nest, s) => {
      for (const scatter of this.scatters.get(s) ?? []) buffers[scatter.target].first = Math.min(buffers[scatter.target].first, s);
      for (const t of nest) {
        const w = this.writtenBy(this.tasks[t]);
        if (w !== undefined) buffers[w].first = Math.min(buffers[w].first, s);
        for (const { buffer } of this.readsOf(this.tasks[t])) {
          const plan = buffers[buffer];
          plan.last = Math.max(plan.last, s);
          if (this.writerNest.get(buffer) !== s) plan.used = true;
        }
      }
    });
    for (const plan of buffers) if (plan.pinned) plan.used = true;
  }
}
