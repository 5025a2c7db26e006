import { type Budget, BudgetExceeded } from "../ir/budget.js";
import type { TensorData } from "../ops/types.js";
import type { BufferPlan } from "./tensor-plan-types.js";

/** An array slot a step reaches a buffer through: the whole buffer, or a window `length` long at `offset`. */
interface Reference {
  readonly holder: TensorData[];
  readonly index: number;
  readonly buffer: number;
  readonly offset: number;
  readonly length: number | undefined;
}

/**
 * The arena's buffers, and every array slot a step reads or writes one through. Steps keep their
 * closures for the program's life; binding caller memory to a buffer (an input read in place, a
 * result written straight into an answer) only swaps the arrays in those slots.
 */
export class ArenaBinder {
  private readonly references: Reference[] = [];
  /** Each buffer's own view of the arena, for undoing a binding. */
  readonly own: readonly TensorData[];
  /** Buffers holding constant data, written once when the program is built: never bound to other memory. */
  private readonly constants = new Set<number>();

  constructor(
    readonly arena: SharedArrayBuffer,
    /** The array each buffer is read and written through now: its arena view, or the memory bound to it. */
    readonly views: TensorData[],
  ) {
    this.own = [...views];
  }

  /** Writes a constant into its buffer, once, and marks the buffer as one no step writes. */
  writeConstant(buffer: number, data: ArrayLike<number>): void {
    this.own[buffer].set(data);
    this.constants.add(buffer);
  }

  isConstant(buffer: number): boolean {
    return this.constants.has(buffer);
  }

  hold(holder: TensorData[], index: number, buffer: number, offset = 0, length?: number): void {
    this.references.push({ holder, index, buffer, offset, length });
  }

  rebind(buffer: number, data: TensorData): void {
    for (const ref of this.references) {
      if (ref.buffer === buffer)
        ref.holder[ref.index] = ref.length === undefined ? data : data.subarray(ref.offset, ref.offset + ref.length);
    }
    this.views[buffer] = data;
  }
}

/**
 * Places buffers in one arena: pinned ones each at their own offset; the others first-fit among those
 * whose lifetimes overlap theirs, so that space is shared by buffers never live together. Buffers no
 * step outside their writer's nest reads get no space at all.
 */
export function allocate(plans: readonly BufferPlan[], float32: boolean, budget?: Budget): ArenaBinder {
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
  return new ArenaBinder(arena, views);
}
