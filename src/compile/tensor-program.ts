import { AdjointError, invalid } from "../errors.js";
import type { Graph, IrNode } from "../ir/graph.js";
import { findOp } from "../ops/registry.js";
import type { OpDef, TensorData, TensorKernel } from "../ops/types.js";
import { type Shape, sameShape, sizeOf, stridesOf } from "../tensor/shape.js";
import { type Access, generateLoop } from "./fused-loop.js";
import { formatLiteral, kernelExpression } from "./kernels-js.js";
import type { Precision } from "./scalar-program.js";

/** Where a node's elements are: a strided window on a buffer, or one number everywhere. */
type Location = { kind: "buffer"; buffer: number; offset: number; strides: number[] } | { kind: "literal"; value: number };

interface BufferPlan {
  readonly size: number;
  readonly dtype: "float" | "int";
  /** Inputs and kept nodes (and the buffers kept views alias) live for the whole run; others only from their first write to their last read. */
  pinned: boolean;
  first: number;
  last: number;
}

interface Step {
  /** Node whose buffer the step writes. */
  readonly node: number;
  readonly label: string;
  build(buffers: readonly TensorData[]): () => void;
}

const rowMajor = (shape: Shape) => stridesOf(shape);

function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  const want = rowMajor(shape);
  return shape.every((d, i) => d === 1 || strides[i] === want[i]);
}

/** Strides of an operand of `shape` read across the iteration space `target` (NumPy broadcasting). */
function broadcastStrides(shape: Shape, strides: readonly number[], target: Shape): number[] {
  const lead = target.length - shape.length;
  return target.map((d, i) => (i < lead || (shape[i - lead] === 1 && d !== 1) ? 0 : strides[i - lead]));
}

/**
 * A compiled tensor graph. Planning decides, per node, whether it is a view of another buffer
 * (reshape, broadcast, slice, transpose), a value computed inside a fused loop (chains of elementwise
 * ops and the reductions they feed), a kernel call (matmul, convolution, gather…), or a literal.
 * Buffers live in one SharedArrayBuffer arena, allocated once; a buffer's space is reused once its
 * last reader has run. Running the program walks a fixed list of prepared steps: no allocation.
 */
export class TensorProgram {
  readonly arena: SharedArrayBuffer;
  readonly precision: Precision;
  private readonly locations: (Location | undefined)[];
  private readonly buffers: TensorData[];
  private readonly steps: (() => void)[];
  private readonly stepLabels: string[];
  private readonly graph: Graph;
  readonly inputBuffers: TensorData[];
  readonly outputs: readonly number[];

  constructor(graph: Graph, outputs: readonly number[], options: { precision?: Precision; keep?: readonly number[] } = {}) {
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

    const consumers: number[][] = Array.from({ length: n }, () => []);
    for (let id = 0; id < n; id++) if (needed[id]) for (const a of new Set(nodes[id].args)) consumers[a].push(id);
    const defs = nodes.map((node) => (node.args.length ? (findOp(node.op) as OpDef) : undefined));
    const isElementwise = (id: number) => defs[id]?.kind === "elementwise";
    const isReduce = (id: number) => defs[id]?.reduce !== undefined;

    // Fusion, consumers first: an elementwise node joins its consumers' loop when it is not kept, all
    // its consumers are in one loop, and that loop walks exactly its shape (no recomputation).
    const group = new Int32Array(n).fill(-1);
    const iterShape: Shape[] = [];
    const roots: number[] = [];
    for (let id = n - 1; id >= 0; id--) {
      if (!needed[id] || !(isElementwise(id) || isReduce(id))) continue;
      const cs = consumers[id];
      const target = cs.length ? group[cs[0]] : -1;
      const joinable =
        !kept[id] &&
        !isReduce(id) &&
        target >= 0 &&
        cs.every((c) => group[c] === target && (isElementwise(c) || isReduce(c))) &&
        sameShape(iterShape[target], nodes[id].shape);
      if (joinable) {
        group[id] = target;
      } else {
        group[id] = roots.length;
        roots.push(id);
        iterShape.push(isReduce(id) ? nodes[nodes[id].args[0]].shape : nodes[id].shape);
      }
    }

    // Storage, in evaluation order: every node that is not fused gets a location.
    const plans: BufferPlan[] = [];
    const bufferOf = new Int32Array(n).fill(-1);
    const locations: (Location | undefined)[] = new Array(n);
    const newBuffer = (id: number, size: number, dtype: "float" | "int", pinned: boolean) => {
      plans.push({ size, dtype, pinned, first: Number.POSITIVE_INFINITY, last: -1 });
      bufferOf[id] = plans.length - 1;
      locations[id] = { kind: "buffer", buffer: plans.length - 1, offset: 0, strides: rowMajor(nodes[id].shape) };
      return plans.length - 1;
    };
    const pendingSteps: Step[] = [];
    const label = (id: number) => nodes[id].label ?? `${nodes[id].op} node ${id}`;

    /** Copies whatever `location` reads, over `shape`, into a fresh contiguous buffer owned by `owner`. */
    const materialize = (owner: number, shape: Shape, from: Location, pinned: boolean): Location => {
      const buffer = newBuffer(owner, sizeOf(shape), "float", pinned);
      const operand = from.kind === "buffer" ? [from] : [];
      const result = from.kind === "literal" ? formatLiteral(float32 ? Math.fround(from.value) : from.value) : "a0";
      const loop = generateLoop({
        shape,
        operands: operand.map((o) => ({ offset: o.offset, strides: o.strides })),
        body: [],
        result,
        output: { offset: 0, strides: rowMajor(shape) },
        float32,
      });
      pendingSteps.push({
        node: owner,
        label: label(owner),
        build: (bufs) => {
          const out = bufs[buffer];
          const ins = operand.map((o) => bufs[o.buffer]);
          return () => loop(out, ins);
        },
      });
      return locations[owner] as Location;
    };

    /** A contiguous window of a location, for kernels (which take plain row-major arrays). */
    const contiguous = (id: number): Location => {
      const loc = locations[id] as Location;
      if (loc.kind === "buffer" && isContiguous(nodes[id].shape, loc.strides)) return loc;
      return materialize(id, nodes[id].shape, loc, kept[id] === 1);
    };

    for (let id = 0; id < n; id++) {
      if (!needed[id]) continue;
      const node = nodes[id];
      const def = defs[id];
      if (node.op === "input") {
        newBuffer(id, sizeOf(node.shape), node.dtype, true);
        continue;
      }
      if (node.op === "const") {
        if (node.data === undefined) locations[id] = { kind: "literal", value: node.value as number };
        else {
          const buffer = newBuffer(id, node.data.length, node.dtype, true);
          const data = node.data;
          pendingSteps.push({
            node: id,
            label: label(id),
            build: (bufs) => {
              bufs[buffer].set(data);
              return () => {};
            },
          });
        }
        continue;
      }
      if (def?.view) {
        const from = locations[node.args[0]] as Location;
        let loc: Location | undefined;
        if (from.kind === "literal") loc = from;
        else {
          const mapped = def.view(nodes[node.args[0]].shape, node.attrs, from);
          if (mapped) loc = { kind: "buffer", buffer: from.buffer, ...mapped };
          else {
            // Not expressible as a strided view of that window: copy the operand, then view the copy.
            const copy = materialize(node.args[0], nodes[node.args[0]].shape, from, kept[node.args[0]] === 1) as Location & {
              kind: "buffer";
            };
            loc = {
              kind: "buffer",
              buffer: copy.buffer,
              ...(def.view(nodes[node.args[0]].shape, node.attrs, copy) as { offset: number; strides: number[] }),
            };
          }
        }
        locations[id] = loc;
        if (kept[id]) contiguous(id);
        continue;
      }
      if (group[id] >= 0 && roots[group[id]] !== id) continue;
      if (group[id] >= 0) {
        this.planGroup(id, group, iterShape, nodes, defs, locations, newBuffer, pendingSteps, kept[id] === 1, float32);
        continue;
      }
      if (!def?.kernel) throw new Error(`op ${node.op} has no tensor kernel`);
      const args = node.args.map((a) => contiguous(a) as Location);
      const buffer = newBuffer(id, sizeOf(node.shape), node.dtype, kept[id] === 1);
      const kernel: TensorKernel = def.kernel({
        argShapes: node.args.map((a) => nodes[a].shape),
        shape: node.shape,
        attrs: node.attrs,
        float32,
      });
      pendingSteps.push({
        node: id,
        label: label(id),
        build: (bufs) => {
          const ins = args.map((loc, k) => {
            if (loc.kind === "literal") return Float64Array.of(loc.value);
            const size = sizeOf(nodes[node.args[k]].shape);
            return bufs[loc.buffer].subarray(loc.offset, loc.offset + size);
          });
          const out = bufs[buffer];
          return () => kernel(ins, out);
        },
      });
    }
    for (const o of outputs) contiguous(o);
    for (let id = 0; id < n; id++) {
      const loc = locations[id];
      if (kept[id] && loc?.kind === "buffer") plans[loc.buffer].pinned = true;
    }

    // Lifetimes: a buffer is live from the step that writes it to the last step that reads it.
    pendingSteps.forEach((step, s) => {
      const plan = plans[bufferOf[step.node]];
      if (plan) plan.first = Math.min(plan.first, s);
    });
    const readers = this.readSets(pendingSteps, nodes, group, roots, locations, bufferOf);
    readers.forEach((bufs, s) => {
      for (const b of bufs) plans[b].last = Math.max(plans[b].last, s);
    });

    const { arena, views } = allocate(plans, float32);
    this.arena = arena;
    this.buffers = views;
    this.locations = locations;
    this.steps = pendingSteps.map((s) => s.build(views));
    this.stepLabels = pendingSteps.map((s) => s.label);
    this.inputBuffers = graph.inputs.map((i) => views[bufferOf[i.node]]);
  }

  /** Which buffers each step reads (for lifetimes). */
  private readSets(
    steps: readonly Step[],
    nodes: readonly IrNode[],
    group: Int32Array,
    roots: readonly number[],
    locations: readonly (Location | undefined)[],
    bufferOf: Int32Array,
  ): Set<number>[] {
    const bufferRead = (id: number): number[] => {
      const loc = locations[id];
      return loc?.kind === "buffer" ? [loc.buffer] : [];
    };
    return steps.map((step) => {
      const reads = new Set<number>();
      const id = step.node;
      const g = group[id];
      if (g >= 0 && roots[g] === id) {
        for (let m = 0; m <= id; m++) {
          if (group[m] !== g) continue;
          for (const a of nodes[m].args) if (group[a] !== g) for (const b of bufferRead(a)) reads.add(b);
        }
      } else if (nodes[id].args.length) {
        for (const a of nodes[id].args) for (const b of bufferRead(a)) reads.add(b);
      }
      // A copy step reads the window it copies: that is the node's own view before materialisation.
      reads.delete(bufferOf[id]);
      return reads;
    });
  }

  private planGroup(
    root: number,
    group: Int32Array,
    iterShapes: readonly Shape[],
    nodes: readonly IrNode[],
    defs: readonly (OpDef | undefined)[],
    locations: (Location | undefined)[],
    newBuffer: (id: number, size: number, dtype: "float" | "int", pinned: boolean) => number,
    steps: Step[],
    pinned: boolean,
    float32: boolean,
  ): void {
    const g = group[root];
    const shape = iterShapes[g];
    const members: number[] = [];
    for (let id = 0; id <= root; id++) if (group[id] === g) members.push(id);
    const operands: { buffer: number; access: Access }[] = [];
    const operandIndex = new Map<string, number>();
    const nameOf = (a: number): string => {
      if (group[a] === g) return `t${a}`;
      const loc = locations[a] as Location;
      if (loc.kind === "literal") return formatLiteral(float32 ? Math.fround(loc.value) : loc.value);
      const access = { offset: loc.offset, strides: broadcastStrides(nodes[a].shape, loc.strides, shape) };
      const key = `${loc.buffer}|${access.offset}|${access.strides.join(",")}`;
      let k = operandIndex.get(key);
      if (k === undefined) {
        k = operands.length;
        operands.push({ buffer: loc.buffer, access });
        operandIndex.set(key, k);
      }
      return `a${k}`;
    };
    const rootDef = defs[root] as OpDef;
    const body = members
      .filter((m) => !(m === root && rootDef.reduce))
      .map((m) => ({ name: `t${m}`, expression: kernelExpression(defs[m] as OpDef, nodes[m].args.map(nameOf), false) }));
    const result = rootDef.reduce ? nameOf(nodes[root].args[0]) : `t${root}`;
    const outShape = nodes[root].shape;
    let output: Access;
    if (rootDef.reduce) {
      const axes = (nodes[root].attrs?.axes as number[]) ?? [];
      const kept = shape.map((d, i) => (axes.includes(i) ? 1 : d));
      const strides = rowMajor(kept).map((s, i) => (axes.includes(i) ? 0 : s));
      output = { offset: 0, strides };
    } else output = { offset: 0, strides: broadcastStrides(outShape, rowMajor(outShape), shape) };
    const loop = generateLoop({ shape, operands: operands.map((o) => o.access), body, result, output, reduce: rootDef.reduce, float32 });
    const buffer = newBuffer(root, sizeOf(outShape), "float", pinned);
    steps.push({
      node: root,
      label: nodes[root].label ?? `${nodes[root].op} node ${root}`,
      build: (bufs) => {
        const out = bufs[buffer];
        const ins = operands.map((o) => bufs[o.buffer]);
        return () => loop(out, ins);
      },
    });
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
    if (isContiguous(shape, loc.strides)) return buf.subarray(loc.offset, loc.offset + size);
    const out = new Float64Array(size);
    const index = new Array<number>(shape.length).fill(0);
    for (let i = 0; i < size; i++) {
      let o = loc.offset;
      for (let d = 0; d < shape.length; d++) o += index[d] * loc.strides[d];
      out[i] = buf[o];
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
 * Places buffers in one arena: pinned ones first, each at its own offset; the others first-fit among
 * those whose lifetimes overlap theirs, so that space is shared by buffers never live together.
 */
function allocate(plans: readonly BufferPlan[], float32: boolean): { arena: SharedArrayBuffer; views: TensorData[] } {
  const bytesPer = (p: BufferPlan) => (p.dtype === "int" ? 4 : float32 ? 4 : 8);
  // Offsets in 16-byte units keep every view aligned for any element type (and for SIMD loads).
  const units = plans.map((p) => Math.max(1, Math.ceil((p.size * bytesPer(p)) / 16)));
  const offset = new Array<number>(plans.length).fill(0);
  const placed: number[] = [];
  const overlaps = (a: BufferPlan, b: BufferPlan) => a.pinned || b.pinned || !(a.last < b.first || b.last < a.first);
  let top = 0;
  const order = plans
    .map((_, i) => i)
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
  const arena = new SharedArrayBuffer(Math.max(16, top * 16));
  const views = plans.map((p, i) => {
    const byteOffset = offset[i] * 16;
    if (p.dtype === "int") return new Int32Array(arena, byteOffset, p.size);
    return float32 ? new Float32Array(arena, byteOffset, p.size) : new Float64Array(arena, byteOffset, p.size);
  });
  return { arena, views };
}
