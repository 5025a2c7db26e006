import type { IrNode } from "../ir/graph.js";
import type { OpDef } from "../ops/types.js";
import type { Shape } from "../tensor/shape.js";
import { type BufferLocation, type Location, rowMajor, type Scatter, type Task } from "./tensor-plan-types.js";

type LoopTask = Extract<Task, { kind: "loop" }>;

/** What the scatter pass reads of a plan whose nests are formed, and the nests it empties. */
export interface ScatterContext {
  readonly nodes: readonly IrNode[];
  readonly defs: readonly (OpDef | undefined)[];
  readonly group: Int32Array;
  readonly locations: readonly (Location | undefined)[];
  readonly tasks: readonly Task[];
  readonly nests: number[][];
  readonly writerNest: ReadonlyMap<number, number>;
  writtenBy(task: Task): number | undefined;
  isReduce(id: number): boolean;
}

/**
 * Finds loop tasks that only add up values read through zero padding (or unshifted), all computed
 * elementwise in one earlier nest over the unpadded shape. Each such sum becomes accumulating writes
 * from that nest, at the padding's offset; its own nest is emptied.
 */
export function planScatters(plan: ScatterContext): Map<number, Scatter[]> {
  const scatters = new Map<number, Scatter[]>();
  plan.nests.forEach((nest, s) => {
    if (nest.length !== 1) return;
    const task = plan.tasks[nest[0]];
    if (task.kind !== "loop" || !task.members.every((m) => plan.defs[m]?.name === "add")) return;
    const sum = scatteredSum(plan, task, s);
    if (!sum) return;
    scatters.set(sum.source, [...(scatters.get(sum.source) ?? []), ...sum.writes]);
    plan.nests[s] = [];
  });
  return scatters;
}

/** The writes that replace the sum computed by nest `s`, all from one nest `source`; none if any term does not fit. */
function scatteredSum(plan: ScatterContext, task: LoopTask, s: number): { source: number; writes: Scatter[] } | undefined {
  const leaves = termsOf(plan, task);
  if (!leaves) return undefined;
  const writes: Scatter[] = [];
  let source: number | undefined;
  for (const leaf of leaves) {
    const loc = plan.locations[leaf] as BufferLocation;
    const at = plan.writerNest.get(loc.buffer);
    if (at === undefined || at >= s || (source !== undefined && at !== source)) return undefined;
    source = at;
    const write = scatterWrite(plan, task, loc, at);
    if (!write) return undefined;
    writes.push(write);
  }
  return source === undefined ? undefined : { source, writes };
}

/** The values the sum adds up (with repeats), or none when one of them is not in a buffer. */
function termsOf(plan: ScatterContext, task: LoopTask): number[] | undefined {
  const g = plan.group[task.node];
  const leaves: number[] = [];
  const collect = (id: number): boolean => {
    if (plan.group[id] === g) return plan.nodes[id].args.every(collect);
    leaves.push(id);
    return plan.locations[id]?.kind === "buffer";
  };
  return collect(task.node) ? leaves : undefined;
}

/**
 * The accumulating write of one term into the sum's buffer: the term must be an elementwise value of
 * nest `at` over the unpadded shape, read whole (shifted by zero padding, or not at all).
 */
function scatterWrite(plan: ScatterContext, task: LoopTask, loc: BufferLocation, at: number): Scatter | undefined {
  const writer = plan.nests[at].map((t) => plan.tasks[t]).find((w) => plan.writtenBy(w) === loc.buffer);
  if (!writer || (writer.kind !== "loop" && writer.kind !== "copy") || (writer.kind === "loop" && plan.isReduce(writer.node)))
    return undefined;
  const inner = (plan.tasks[plan.nests[at][0]] as { shape: Shape }).shape;
  if (inner.length !== task.shape.length || (loc.fill ?? 0) !== 0) return undefined;
  const strides = rowMajor(inner);
  const before = inner.map((_, d) => loc.bounds?.[d][0] ?? 0);
  const fits = inner.every(
    (extent, d) =>
      (extent === 1 || loc.strides[d] === strides[d]) &&
      (loc.bounds ? loc.bounds[d][1] - loc.bounds[d][0] === extent : extent === task.shape[d]) &&
      before[d] + extent <= task.shape[d],
  );
  const offset = before.reduce((acc, b, d) => acc - b * strides[d], 0);
  if (!fits || loc.offset !== offset) return undefined;
  const outStrides = rowMajor(task.shape);
  return {
    source: loc.buffer,
    target: plan.writtenBy(task) as number,
    access: { offset: before.reduce((acc, b, d) => acc + b * outStrides[d], 0), strides: outStrides },
  };
}
