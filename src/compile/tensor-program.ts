import { AdjointError, invalid } from "../errors.js";
import { type Budget, BudgetExceeded, extentError, extentOf } from "../ir/budget.js";
import type { Graph, IrNode } from "../ir/graph.js";
import { findOp } from "../ops/registry.js";
import type { OpDef, TensorData, TensorKernel } from "../ops/types.js";
import { type Shape, sameShape, sizeOf, stridesOf } from "../tensor/shape.js";
import { type Access, type BodyLine, generateLoop, type LoopOutput } from "./fused-loop.js";
import { formatLiteral, kernelExpression } from "./kernels-js.js";
import type { Precision } from "./scalar-program.js";

/**
 * Where a node's elements are: a strided window on a buffer (optionally bounded, reading `fill`
 * outside the bounds: a zero-padded tensor that was never built), or one number everywhere.
 */
type Location =
  | {
      readonly kind: "buffer";
      readonly buffer: number;
      readonly offset: number;
      readonly strides: readonly number[];
      readonly bounds?: readonly (readonly [number, number])[];
      readonly fill?: number;
    }
  | { readonly kind: "literal"; readonly value: number };

type BufferLocation = Extract<Location, { kind: "buffer" }>;

interface BufferPlan {
  readonly size: number;
  readonly dtype: "float" | "int";
  /** Inputs, kept nodes and the buffers kept views alias live for the whole run. */
  pinned: boolean;
  /** Whether any step outside the writer's loop nest reads it (else it is never stored). */
  used: boolean;
  first: number;
  last: number;
}

/** A unit of work before loop nests are formed. */
type Task =
  | { readonly kind: "loop"; readonly node: number; readonly shape: Shape; readonly members: readonly number[] }
  | { readonly kind: "copy"; readonly node: number; readonly shape: Shape; readonly from: Location; readonly target: BufferLocation }
  | { readonly kind: "kernel"; readonly node: number; readonly args: readonly BufferLocation[]; readonly kernel: TensorKernel }
  | { readonly kind: "const"; readonly node: number; readonly data: Float64Array };

const rowMajor = (shape: Shape) => stridesOf(shape);

/** An accumulating write of a value computed in a nest (buffer `source`) into `target` at `access`. */
interface Scatter {
  readonly source: number;
  readonly target: number;
  readonly access: Access;
}

const SUM = { identity: 0, js: (acc: string, x: string) => `${acc} + ${x}` };

function isContiguous(shape: Shape, loc: BufferLocation): boolean {
  if (loc.bounds) return false;
  const want = rowMajor(shape);
  return shape.every((d, i) => d === 1 || loc.strides[i] === want[i]);
}

/** An access over the iteration space `target`, broadcasting a location of `shape` (NumPy rules). */
function accessOver(shape: Shape, loc: BufferLocation, target: Shape): Access {
  const lead = target.length - shape.length;
  const broadcast = (i: number) => i < lead || (shape[i - lead] === 1 && target[i] !== 1);
  const strides = target.map((_, i) => (broadcast(i) ? 0 : loc.strides[i - lead]));
  if (!loc.bounds) return { offset: loc.offset, strides };
  const bounds = target.map((d, i): [number, number] => (broadcast(i) ? [0, d] : (loc.bounds as [number, number][])[i - lead]));
  return { offset: loc.offset, strides, bounds, fill: loc.fill };
}

/** Whether two accesses touch the same elements over `shape` (strides of extent-1 axes do not matter). */
function sameAccess(a: Access, b: Access, shape: Shape): boolean {
  return a.offset === b.offset && !a.bounds && !b.bounds && shape.every((d, i) => d === 1 || a.strides[i] === b.strides[i]);
}

/** Row-major access over a whole index space: what a loop writes, and what reads it back unchanged. */
function identity(shape: Shape): Access {
  return { offset: 0, strides: rowMajor(shape) };
}

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
  private readonly buffers: TensorData[];
  /** Every array slot a step reads a buffer through, so that an input can be rebound in place. */
  private readonly references: { holder: TensorData[]; index: number; buffer: number; offset: number; length: number | undefined }[] = [];
  private readonly inputBufferIds: number[];
  private readonly arenaInputs: TensorData[];
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
    const nodes = graph.nodes;
    const n = nodes.length;
    const kept = new Uint8Array(n);
    for (const o of outputs) kept[o] = 1;
    for (const k of options.keep ?? []) kept[k] = 1;

    const needed = new Uint8Array(n);
    for (let id = 0; id < n; id++) if (kept[id]) needed[id] = 1;
    for (let id = n - 1; id >= 0; id--) if (needed[id]) for (const a of nodes[id].args) needed[a] = 1;
    for (const input of graph.inputs) needed[input.node] = 1;
    const budget = options.budget;
    if (budget) {
      for (let id = 0; id < n; id++) {
        if (needed[id] && extentOf(nodes[id].shape) > budget.maxElements) {
          throw extentError(budget, nodes[id].shape, `node ${this.label(id)}`, nodes[id].label);
        }
      }
    }
    const consumers: number[][] = Array.from({ length: n }, () => []);
    for (let id = 0; id < n; id++) if (needed[id]) for (const a of new Set(nodes[id].args)) consumers[a].push(id);
    const defs = nodes.map((node) => (node.args.length ? (findOp(node.op) as OpDef) : undefined));
    const isElementwise = (id: number) => defs[id]?.kind === "elementwise";
    const isReduce = (id: number) => defs[id]?.reduce !== undefined;

    // Vertical fusion, consumers first: an elementwise node joins its consumers' group when it is not
    // kept, all its consumers are in one group, and that group walks exactly its shape.
    const group = new Int32Array(n).fill(-1);
    const groupShape: Shape[] = [];
    const groupRoot: number[] = [];
    for (let id = n - 1; id >= 0; id--) {
      if (!needed[id] || !(isElementwise(id) || isReduce(id))) continue;
      const cs = consumers[id];
      const target = cs.length ? group[cs[0]] : -1;
      const joinable =
        !kept[id] &&
        !isReduce(id) &&
        target >= 0 &&
        cs.every((c) => group[c] === target && (isElementwise(c) || isReduce(c))) &&
        sameShape(groupShape[target], nodes[id].shape);
      if (joinable) group[id] = target;
      else {
        group[id] = groupRoot.length;
        groupRoot.push(id);
        groupShape.push(isReduce(id) ? nodes[nodes[id].args[0]].shape : nodes[id].shape);
      }
    }

    // Storage, in evaluation order: every node outside a group's interior gets a location.
    const plans: BufferPlan[] = [];
    const locations: (Location | undefined)[] = new Array(n);
    const tasks: Task[] = [];
    /** Contiguous copies of nodes whose own location is a view or a literal, for the readers that need one. */
    const copies: (BufferLocation | undefined)[] = new Array(n);
    const newBuffer = (id: number, dtype: "float" | "int" = nodes[id].dtype): BufferLocation => {
      plans.push({ size: sizeOf(nodes[id].shape), dtype, pinned: kept[id] === 1, used: false, first: Number.POSITIVE_INFINITY, last: -1 });
      return { kind: "buffer", buffer: plans.length - 1, offset: 0, strides: rowMajor(nodes[id].shape) };
    };
    const ownBuffer = (id: number, dtype: "float" | "int" = nodes[id].dtype) => {
      const loc = newBuffer(id, dtype);
      locations[id] = loc;
      return loc;
    };
    /**
     * A node's value as a plain row-major array: its own location when it is one, else a copy made
     * here, at this point of the program. The node's location stays as it was, so readers planned
     * earlier still read it where it was then.
     */
    const contiguous = (id: number): BufferLocation => {
      const loc = locations[id] as Location;
      if (loc.kind === "buffer" && isContiguous(nodes[id].shape, loc)) return loc;
      let copy = copies[id];
      if (!copy) {
        copy = newBuffer(id, "float");
        copies[id] = copy;
        tasks.push({ kind: "copy", node: id, shape: nodes[id].shape, from: loc, target: copy });
      }
      return copy;
    };

    for (let id = 0; id < n; id++) {
      if (!needed[id]) continue;
      const node = nodes[id];
      const def = defs[id];
      if (node.op === "input") plans[ownBuffer(id).buffer].pinned = true;
      else if (node.op === "const") {
        if (node.data === undefined) locations[id] = { kind: "literal", value: node.value as number };
        else {
          plans[ownBuffer(id).buffer].pinned = true;
          tasks.push({ kind: "const", node: id, data: node.data });
        }
      } else if (def?.view || (node.op === "pad" && (node.attrs as { interior: number[] }).interior.every((s) => s === 0))) {
        locations[id] = this.viewOf(node, def as OpDef, locations[node.args[0]] as Location, nodes[node.args[0]].shape, () =>
          contiguous(node.args[0]),
        );
        if (kept[id]) contiguous(id);
      } else if (group[id] >= 0) {
        if (groupRoot[group[id]] !== id) continue;
        ownBuffer(id, "float");
        const members: number[] = [];
        for (let m = 0; m <= id; m++) if (group[m] === group[id]) members.push(m);
        tasks.push({ kind: "loop", node: id, shape: groupShape[group[id]], members });
      } else {
        if (!def?.kernel) throw new Error(`op ${node.op} has no tensor kernel`);
        const args = node.args.map((a) => contiguous(a));
        ownBuffer(id);
        const kernel = def.kernel({ argShapes: node.args.map((a) => nodes[a].shape), shape: node.shape, attrs: node.attrs, float32 });
        tasks.push({ kind: "kernel", node: id, args, kernel });
      }
    }
    for (const o of outputs) contiguous(o);
    for (let id = 0; id < n; id++) {
      if (!kept[id]) continue;
      const loc = copies[id] ?? locations[id];
      if (loc?.kind === "buffer") plans[loc.buffer].pinned = true;
    }
    const writtenBy = (task: Task): number | undefined =>
      task.kind === "copy" ? task.target.buffer : (locations[task.node] as BufferLocation | undefined)?.buffer;

    // Horizontal fusion: consecutive loops over one index space become one nest, as long as each
    // reads what an earlier loop of the nest writes only at the same index (then it is a register).
    const nestOf = new Int32Array(tasks.length);
    const nests: number[][] = [];
    const writerNest = new Map<number, number>();
    tasks.forEach((task, t) => {
      const current = nests[nests.length - 1];
      const head = current ? tasks[current[0]] : undefined;
      const iterable = task.kind === "loop" || task.kind === "copy";
      let join = false;
      if (iterable && head && (head.kind === "loop" || head.kind === "copy") && sameShape(head.shape, task.shape)) {
        join = this.readsOf(task, nodes, group, locations).every(({ buffer, access }) => {
          if (writerNest.get(buffer) !== nests.length - 1) return true;
          // Written in this nest: only a read at the same index of a finished elementwise value will do.
          const writer = current.map((k) => tasks[k]).find((w) => writtenBy(w) === buffer);
          const elementwise = writer !== undefined && (writer.kind === "copy" || (writer.kind === "loop" && !isReduce(writer.node)));
          return elementwise && sameAccess(access, identity(task.shape), task.shape);
        });
      }
      if (join) current.push(t);
      else nests.push([t]);
      nestOf[t] = nests.length - 1;
      const written = writtenBy(task);
      if (written !== undefined) writerNest.set(written, nests.length - 1);
    });

    // A sum of shifted, zero-padded values (what the reverse of slicing produces) is written by
    // accumulation from the nest that computes those values, instead of storing them for a later pass.
    const scatters = this.planScatters(tasks, nests, writerNest, nodes, defs, group, locations, writtenBy);

    // Lifetimes at nest granularity; a buffer read only inside its writer's nest is never stored.
    nests.forEach((nest, s) => {
      for (const scatter of scatters.get(s) ?? []) plans[scatter.target].first = Math.min(plans[scatter.target].first, s);
      for (const t of nest) {
        const w = writtenBy(tasks[t]);
        if (w !== undefined) plans[w].first = Math.min(plans[w].first, s);
        for (const { buffer } of this.readsOf(tasks[t], nodes, group, locations)) {
          const plan = plans[buffer];
          plan.last = Math.max(plan.last, s);
          if (writerNest.get(buffer) !== s) plan.used = true;
        }
      }
    });
    for (const plan of plans) if (plan.pinned) plan.used = true;

    const { arena, views } = allocate(plans, float32, budget);
    this.arena = arena;
    this.buffers = views;
    this.locations = locations.map((loc, id) => copies[id] ?? loc);
    this.steps = [];
    this.stepLabels = [];
    nests.forEach((nest, s) => {
      if (nest.length === 0) return;
      const head = tasks[nest[0]];
      const label = nest.map((t) => this.label(tasks[t].node)).join(" + ");
      if (head.kind === "kernel") {
        const ins = head.args.map((loc, k) => {
          const length = sizeOf(nodes[nodes[head.node].args[k]].shape);
          return views[loc.buffer].subarray(loc.offset, loc.offset + length);
        });
        head.args.forEach((loc, k) => {
          this.references.push({
            holder: ins,
            index: k,
            buffer: loc.buffer,
            offset: loc.offset,
            length: sizeOf(nodes[nodes[head.node].args[k]].shape),
          });
        });
        const outBuffer = (locations[head.node] as BufferLocation).buffer;
        const out = [views[outBuffer]];
        this.references.push({ holder: out, index: 0, buffer: outBuffer, offset: 0, length: undefined });
        const kernel = head.kernel;
        this.steps.push(() => kernel(ins, out[0]));
      } else if (head.kind === "const") {
        views[(locations[head.node] as BufferLocation).buffer].set(head.data);
        return;
      } else {
        this.steps.push(
          this.buildNest(
            nest.map((t) => tasks[t]),
            nodes,
            defs,
            group,
            locations,
            plans,
            views,
            float32,
            scatters.get(s) ?? [],
          ),
        );
      }
      this.stepLabels.push(label);
    });
    this.inputBufferIds = graph.inputs.map((i) => (locations[i.node] as BufferLocation).buffer);
    this.arenaInputs = this.inputBufferIds.map((b) => views[b]);
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
    const loc = this.locations[node];
    const shape = this.graph.nodes[node].shape;
    const own = loc?.kind === "buffer" ? this.buffers[loc.buffer] : undefined;
    if (
      loc?.kind !== "buffer" ||
      !own ||
      loc.offset !== 0 ||
      !isContiguous(shape, loc) ||
      own.length !== sizeOf(shape) ||
      this.inputBufferIds.includes(loc.buffer)
    ) {
      throw new Error(`node ${node} is not a result stored on its own`);
    }
    if (data.constructor !== own.constructor || data.length !== own.length)
      throw new Error(`node ${node} needs a ${own.constructor.name} of ${own.length} elements`);
    this.rebindBuffer(loc.buffer, data);
  }

  private rebind(k: number, data: TensorData): void {
    this.rebindBuffer(this.inputBufferIds[k], data);
    this.inputBuffers[k] = data;
  }

  private rebindBuffer(buffer: number, data: TensorData): void {
    for (const ref of this.references) {
      if (ref.buffer === buffer)
        ref.holder[ref.index] = ref.length === undefined ? data : data.subarray(ref.offset, ref.offset + ref.length);
    }
    this.buffers[buffer] = data;
  }

  private label(id: number): string {
    const node = this.graph.nodes[id];
    return node.label ?? `${node.op} node ${id}`;
  }

  /** The location of a view op's result, copying the operand first when no strided view expresses it. */
  private viewOf(node: IrNode, def: OpDef, from: Location, argShape: Shape, copy: () => BufferLocation): Location {
    if (node.op === "pad") {
      // Zero padding read in place: shift the window and bound it. Padding a constant with itself
      // changes nothing; with another value it needs the constant stored, to have a window.
      const { before, value } = node.attrs as { before: number[]; value: number };
      if (from.kind === "literal" && Object.is(from.value, value)) return from;
      const base = from.kind === "literal" || from.bounds ? copy() : from;
      let offset = base.offset;
      before.forEach((b, i) => {
        offset -= b * base.strides[i];
      });
      return {
        kind: "buffer",
        buffer: base.buffer,
        offset,
        strides: base.strides,
        bounds: argShape.map((d, i) => [before[i], before[i] + d]),
        fill: value,
      };
    }
    // Re-indexing a constant gives the same constant everywhere.
    if (from.kind === "literal") return from;
    const view = def.view as NonNullable<OpDef["view"]>;
    const mapped = from.bounds ? undefined : view(argShape, node.attrs, from);
    if (mapped) return { kind: "buffer", buffer: from.buffer, ...mapped };
    const fresh = copy();
    return { kind: "buffer", buffer: fresh.buffer, ...(view(argShape, node.attrs, fresh) as { offset: number; strides: number[] }) };
  }

  /**
   * Finds loop tasks that only add up values read through zero padding (or unshifted), all computed
   * elementwise in one earlier nest over the unpadded shape. Each such sum becomes accumulating writes
   * from that nest, at the padding's offset; its own nest is emptied.
   */
  private planScatters(
    tasks: readonly Task[],
    nests: number[][],
    writerNest: ReadonlyMap<number, number>,
    nodes: readonly IrNode[],
    defs: readonly (OpDef | undefined)[],
    group: Int32Array,
    locations: readonly (Location | undefined)[],
    writtenBy: (task: Task) => number | undefined,
  ): Map<number, Scatter[]> {
    const scatters = new Map<number, Scatter[]>();
    nests.forEach((nest, s) => {
      if (nest.length !== 1) return;
      const task = tasks[nest[0]];
      if (task.kind !== "loop" || !task.members.every((m) => defs[m]?.name === "add")) return;
      const g = group[task.node];
      const leaves: number[] = [];
      const collect = (id: number): boolean => {
        if (group[id] === g) return nodes[id].args.every(collect);
        leaves.push(id);
        return locations[id]?.kind === "buffer";
      };
      if (!collect(task.node)) return;
      const outStrides = rowMajor(task.shape);
      const planned: Scatter[] = [];
      let source: number | undefined;
      for (const leaf of leaves) {
        const loc = locations[leaf] as BufferLocation;
        const at = writerNest.get(loc.buffer);
        if (at === undefined || at >= s || (source !== undefined && at !== source)) return;
        source = at;
        const writer = nests[at].map((t) => tasks[t]).find((w) => writtenBy(w) === loc.buffer);
        if (!writer || (writer.kind !== "loop" && writer.kind !== "copy") || (writer.kind === "loop" && defs[writer.node]?.reduce)) return;
        const inner = (tasks[nests[at][0]] as { shape: Shape }).shape;
        if (inner.length !== task.shape.length || (loc.fill ?? 0) !== 0) return;
        const strides = rowMajor(inner);
        const before = inner.map((_, d) => loc.bounds?.[d][0] ?? 0);
        const fits = inner.every(
          (extent, d) =>
            (extent === 1 || loc.strides[d] === strides[d]) &&
            (loc.bounds ? loc.bounds[d][1] - loc.bounds[d][0] === extent : extent === task.shape[d]) &&
            before[d] + extent <= task.shape[d],
        );
        const offset = before.reduce((acc, b, d) => acc - b * strides[d], 0);
        if (!fits || loc.offset !== offset) return;
        const target = writtenBy(task) as number;
        planned.push({
          source: loc.buffer,
          target,
          access: { offset: before.reduce((acc, b, d) => acc + b * outStrides[d], 0), strides: outStrides },
        });
      }
      if (source === undefined) return;
      scatters.set(source, [...(scatters.get(source) ?? []), ...planned]);
      nests[s] = [];
    });
    return scatters;
  }

  /** The buffers a task reads from outside itself, and how (over the task's index space). */
  private readsOf(
    task: Task,
    nodes: readonly IrNode[],
    group: Int32Array,
    locations: readonly (Location | undefined)[],
  ): { buffer: number; access: Access }[] {
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

  /** One loop for a nest of tasks: every member computed once per index, stores only where needed. */
  private buildNest(
    tasks: readonly Task[],
    nodes: readonly IrNode[],
    defs: readonly (OpDef | undefined)[],
    group: Int32Array,
    locations: readonly (Location | undefined)[],
    plans: readonly BufferPlan[],
    views: readonly TensorData[],
    float32: boolean,
    scatters: readonly Scatter[],
  ): () => void {
    const shape = (tasks[0] as { shape: Shape }).shape;
    const operands: { buffer: number; access: Access }[] = [];
    const operandIndex = new Map<string, number>();
    const inRegister = new Map<number, string>();
    const body: BodyLine[] = [];
    const outputs: LoopOutput[] = [];
    const outBuffers: number[] = [];
    const read = (loc: Location, shapeOf: Shape): string => {
      if (loc.kind === "literal") return formatLiteral(float32 ? Math.fround(loc.value) : loc.value);
      const access = accessOver(shapeOf, loc, shape);
      const held = inRegister.get(loc.buffer);
      if (held !== undefined && sameAccess(access, identity(shape), shape)) return held;
      const key = `${loc.buffer}|${access.offset}|${access.strides.join(",")}|${JSON.stringify(access.bounds ?? "")}|${access.fill ?? ""}`;
      let k = operandIndex.get(key);
      if (k === undefined) {
        k = operands.length;
        operands.push({ buffer: loc.buffer, access });
        operandIndex.set(key, k);
      }
      return `a${k}`;
    };
    for (const task of tasks) {
      const target = task.kind === "copy" ? task.target : (locations[task.node] as BufferLocation);
      let value: string;
      let reduce: LoopOutput["reduce"];
      let access: Access = { offset: 0, strides: rowMajor(nodes[task.node].shape) };
      if (task.kind === "copy") {
        value = read(task.from, task.shape);
      } else if (task.kind === "loop") {
        const g = group[task.node];
        const root = task.node;
        const rootDef = defs[root] as OpDef;
        const name = (a: number) => (group[a] === g ? `t${a}` : read(locations[a] as Location, nodes[a].shape));
        for (const m of task.members) {
          if (m === root && rootDef.reduce) continue;
          body.push({ name: `t${m}`, expression: kernelExpression(defs[m] as OpDef, nodes[m].args.map(name), false) });
        }
        if (rootDef.reduce) {
          value = name(nodes[root].args[0]);
          reduce = rootDef.reduce;
          const axes = (nodes[root].attrs?.axes as number[]) ?? [];
          const keptShape = task.shape.map((d, i) => (axes.includes(i) ? 1 : d));
          access = { offset: 0, strides: rowMajor(keptShape).map((s, i) => (axes.includes(i) ? 0 : s)) };
        } else value = `t${root}`;
      } else continue;
      if (!reduce) inRegister.set(target.buffer, value);
      if (plans[target.buffer].used || reduce) {
        outputs.push({ value, access, reduce });
        outBuffers.push(target.buffer);
      }
    }
    for (const scatter of scatters) {
      const value = inRegister.get(scatter.source);
      if (value === undefined) throw new Error("a scattered value is not computed in its nest");
      outputs.push({ value, access: scatter.access, reduce: SUM, buffer: scatter.target });
      outBuffers.push(scatter.target);
    }
    const loop = generateLoop({ shape, operands: operands.map((o) => o.access), body, outputs, float32 });
    const outs = outBuffers.map((b) => views[b]);
    outBuffers.forEach((b, k) => {
      this.references.push({ holder: outs, index: k, buffer: b, offset: 0, length: undefined });
    });
    const ins = operands.map((o) => views[o.buffer]);
    operands.forEach((o, k) => {
      this.references.push({ holder: ins, index: k, buffer: o.buffer, offset: 0, length: undefined });
    });
    return () => loop(outs, ins);
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
    const buf = this.buffers[loc.buffer];
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

/**
 * Places buffers in one arena: pinned ones each at their own offset; the others first-fit among those
 * whose lifetimes overlap theirs, so that space is shared by buffers never live together. Buffers no
 * step outside their writer's nest reads get no space at all.
 */
function allocate(plans: readonly BufferPlan[], float32: boolean, budget?: Budget): { arena: SharedArrayBuffer; views: TensorData[] } {
  const bytesPer = (p: BufferPlan) => (p.dtype === "int" ? 4 : float32 ? 4 : 8);
  // Offsets in 16-byte units keep every view aligned for any element type (and for SIMD loads).
  const units = plans.map((p) => (p.used ? Math.max(1, Math.ceil((p.size * bytesPer(p)) / 16)) : 0));
  const offset = new Array<number>(plans.length).fill(0);
  const placed: number[] = [];
  const overlaps = (a: BufferPlan, b: BufferPlan) => a.pinned || b.pinned || !(a.last < b.first || b.last < a.first);
  let top = 0;
  const order = plans
    .map((_, i) => i)
    .filter((i) => plans[i].used)
    .sort((a, b) => (plans[a].pinned === plans[b].pinned ? plans[a].first - plans[b].first : plans[a].pinned ? -1 : 1));
  for (const i of order) {
    const busy = placed
      .filter((j) => overlaps(plans[i], plans[j]))
      .map((j) => [offset[j], offset[j] + units[j]] as const)
      .sort((x, y) => x[0] - y[0]);
    let at = 0;
    for (const [start, end] of busy) {
      if (at + units[i] <= start) break;
      at = Math.max(at, end);
    }
    offset[i] = at;
    top = Math.max(top, at + units[i]);
    placed.push(i);
  }
  // Counted in float64 elements whatever the precision, so that the limit means the same bytes.
  if (budget && top * 2 > budget.maxElements) {
    throw new BudgetExceeded(
      `the program compiled for this request needs ${top * 2} elements (${Math.ceil((top * 16) / 2 ** 20)} MiB) of tensors at once; the limit is ${budget.maxElements} (${budget.elementsName})`,
      budget.inline === true,
    );
  }
  const arena = new SharedArrayBuffer(Math.max(16, top * 16));
  const views = plans.map((p, i) => {
    const byteOffset = offset[i] * 16;
    const size = p.used ? p.size : 0;
    if (p.dtype === "int") return new Int32Array(arena, byteOffset, size);
    return float32 ? new Float32Array(arena, byteOffset, size) : new Float64Array(arena, byteOffset, size);
  });
  return { arena, views };
}
