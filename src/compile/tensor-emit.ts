import type { ReduceAttrs } from "../ops/tensor/reduce.js";
import type { OpDef } from "../ops/types.js";
import { type Shape, sizeOf } from "../tensor/shape.js";
import { type Access, type BodyLine, generateLoop, type LoopOutput } from "./fused-loop.js";
import { formatLiteral, kernelExpression } from "./kernels-js.js";
import type { ArenaBinder } from "./tensor-arena.js";
import type { TensorPlan } from "./tensor-plan.js";
import {
  accessOver,
  type BufferLocation,
  identity,
  type Location,
  rowMajor,
  type Scatter,
  sameAccess,
  type Task,
} from "./tensor-plan-types.js";

const SUM = { identity: 0, js: (acc: string, x: string) => `${acc} + ${x}` };

type Step = () => void;

/**
 * One step per non-empty nest of the plan, with its label. Constant data is written into the arena
 * here, once, not by a step. Every array slot a step uses is registered with the binder.
 */
export function emitSteps(plan: TensorPlan, binder: ArenaBinder): { steps: Step[]; labels: string[] } {
  const steps: Step[] = [];
  const labels: string[] = [];
  plan.nests.forEach((nest, s) => {
    if (nest.length === 0) return;
    const head = plan.tasks[nest[0]];
    if (head.kind === "const") {
      binder.writeConstant((plan.locations[head.node] as BufferLocation).buffer, head.data);
      return;
    }
    const label = nest.map((t) => plan.label(plan.tasks[t].node)).join(" + ");
    if (head.kind === "kernel") steps.push(kernelStep(plan, binder, head));
    else
      steps.push(
        nestStep(
          plan,
          binder,
          nest.map((t) => plan.tasks[t]),
          plan.scatters.get(s) ?? [],
        ),
      );
    labels.push(label);
  });
  return { steps, labels };
}

function kernelStep(plan: TensorPlan, binder: ArenaBinder, task: Extract<Task, { kind: "kernel" }>): Step {
  const lengths = plan.nodes[task.node].args.map((a) => sizeOf(plan.nodes[a].shape));
  const ins = task.args.map((loc, k) => binder.views[loc.buffer].subarray(loc.offset, loc.offset + lengths[k]));
  task.args.forEach((loc, k) => {
    binder.hold(ins, k, loc.buffer, loc.offset, lengths[k]);
  });
  const outBuffer = (plan.locations[task.node] as BufferLocation).buffer;
  const out = [binder.views[outBuffer]];
  binder.hold(out, 0, outBuffer);
  const kernel = task.kernel;
  return () => kernel(ins, out[0]);
}

/** One loop for a nest of tasks: every member computed once per index, stores only where needed. */
function nestStep(plan: TensorPlan, binder: ArenaBinder, tasks: readonly Task[], scatters: readonly Scatter[]): Step {
  const nest = new NestBuilder(plan, (tasks[0] as { shape: Shape }).shape);
  for (const task of tasks) nest.add(task);
  for (const scatter of scatters) nest.scatter(scatter);
  return nest.build(binder);
}

/** What one task of a nest contributes: the value it computes, and where and how it is stored. */
interface Stored {
  readonly value: string;
  readonly access: Access;
  readonly reduce?: LoopOutput["reduce"];
}

class NestBuilder {
  private readonly operands: { buffer: number; access: Access }[] = [];
  private readonly operandIndex = new Map<string, number>();
  /** Values already computed in this nest, by the buffer they belong to: read back without a load. */
  private readonly inRegister = new Map<number, string>();
  private readonly body: BodyLine[] = [];
  private readonly outputs: LoopOutput[] = [];
  private readonly outBuffers: number[] = [];

  constructor(
    private readonly plan: TensorPlan,
    private readonly shape: Shape,
  ) {}

  add(task: Task): void {
    if (task.kind !== "copy" && task.kind !== "loop") return;
    const target = task.kind === "copy" ? task.target : (this.plan.locations[task.node] as BufferLocation);
    const { value, access, reduce } =
      task.kind === "copy" ? { value: this.read(task.from, task.shape), access: this.rowMajorOf(task.node) } : this.loop(task);
    if (!reduce) this.inRegister.set(target.buffer, value);
    if (this.plan.buffers[target.buffer].used || reduce) {
      this.outputs.push({ value, access, reduce });
      this.outBuffers.push(target.buffer);
    }
  }

  scatter(scatter: Scatter): void {
    const value = this.inRegister.get(scatter.source);
    if (value === undefined) throw new Error("a scattered value is not computed in its nest");
    this.outputs.push({ value, access: scatter.access, reduce: SUM, buffer: scatter.target });
    this.outBuffers.push(scatter.target);
  }

  build(binder: ArenaBinder): Step {
    const loop = generateLoop({
      shape: this.shape,
      operands: this.operands.map((o) => o.access),
      body: this.body,
      outputs: this.outputs,
      float32: this.plan.float32,
    });
    const outs = this.outBuffers.map((b) => binder.views[b]);
    this.outBuffers.forEach((b, k) => {
      binder.hold(outs, k, b);
    });
    const ins = this.operands.map((o) => binder.views[o.buffer]);
    this.operands.forEach((o, k) => {
      binder.hold(ins, k, o.buffer);
    });
    return () => loop(outs, ins);
  }

  private rowMajorOf(node: number): Access {
    return { offset: 0, strides: rowMajor(this.plan.nodes[node].shape) };
  }

  /** A fused group's body lines, and its root's value (or the reduction it feeds). */
  private loop(task: Extract<Task, { kind: "loop" }>): Stored {
    const { nodes, defs, group, locations } = this.plan;
    const g = group[task.node];
    const root = task.node;
    const rootDef = defs[root] as OpDef;
    const name = (a: number) => (group[a] === g ? `t${a}` : this.read(locations[a] as Location, nodes[a].shape));
    for (const m of task.members) {
      if (m === root && rootDef.reduce) continue;
      this.body.push({ name: `t${m}`, expression: kernelExpression(defs[m] as OpDef, nodes[m].args.map(name), false) });
    }
    if (!rootDef.reduce) return { value: `t${root}`, access: this.rowMajorOf(root) };
    const value = name(nodes[root].args[0]);
    const axes = (nodes[root].attrs as ReduceAttrs | undefined)?.axes ?? [];
    const keptShape = task.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    return { value, reduce: rootDef.reduce, access: { offset: 0, strides: rowMajor(keptShape).map((s, i) => (axes.includes(i) ? 0 : s)) } };
  }

  /** A location's element at the loop index: a literal, a value of this nest, or an operand (read once). */
  private read(loc: Location, shapeOf: Shape): string {
    const float32 = this.plan.float32;
    if (loc.kind === "literal") return formatLiteral(float32 ? Math.fround(loc.value) : loc.value);
    const access = accessOver(shapeOf, loc, this.shape);
    const held = this.inRegister.get(loc.buffer);
    if (held !== undefined && sameAccess(access, identity(this.shape), this.shape)) return held;
    const key = `${loc.buffer}|${access.offset}|${access.strides.join(",")}|${JSON.stringify(access.bounds ?? "")}|${access.fill ?? ""}`;
    let k = this.operandIndex.get(key);
    if (k === undefined) {
      k = this.operands.length;
      this.operands.push({ buffer: loc.buffer, access });
      this.operandIndex.set(key, k);
    }
    return `a${k}`;
  }
}
