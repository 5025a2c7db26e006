/**
 * The vocabulary of a tensor plan, shared by the planner, the scatter pass, the emitter and the arena:
 * where values are, the units of work, and how a loop reads a location.
 */
import type { TensorKernel } from "../ops/types.js";
import { type Shape, stridesOf } from "../tensor/shape.js";
import type { Access } from "./fused-loop.js";

/**
 * Where a node's elements are: a strided window on a buffer (optionally bounded, reading `fill`
 * outside the bounds: a zero-padded tensor that was never built), or one number everywhere.
 */
export type Location =
  | {
      readonly kind: "buffer";
      readonly buffer: number;
      readonly offset: number;
      readonly strides: readonly number[];
      readonly bounds?: readonly (readonly [number, number])[];
      readonly fill?: number;
    }
  | { readonly kind: "literal"; readonly value: number };

export type BufferLocation = Extract<Location, { kind: "buffer" }>;

export interface BufferPlan {
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
export type Task =
  | { readonly kind: "loop"; readonly node: number; readonly shape: Shape; readonly members: readonly number[] }
  | { readonly kind: "copy"; readonly node: number; readonly shape: Shape; readonly from: Location; readonly target: BufferLocation }
  | { readonly kind: "kernel"; readonly node: number; readonly args: readonly BufferLocation[]; readonly kernel: TensorKernel }
  | { readonly kind: "const"; readonly node: number; readonly data: Float64Array };

/** An accumulating write of a value computed in a nest (buffer `source`) into `target` at `access`. */
export interface Scatter {
  readonly source: number;
  readonly target: number;
  readonly access: Access;
}

export const rowMajor = (shape: Shape) => stridesOf(shape);

export function isContiguous(shape: Shape, loc: BufferLocation): boolean {
  if (loc.bounds) return false;
  const want = rowMajor(shape);
  return shape.every((d, i) => d === 1 || loc.strides[i] === want[i]);
}

/** An access over the iteration space `target`, broadcasting a location of `shape` (NumPy rules). */
export function accessOver(shape: Shape, loc: BufferLocation, target: Shape): Access {
  const lead = target.length - shape.length;
  const broadcast = (i: number) => i < lead || (shape[i - lead] === 1 && target[i] !== 1);
  const strides = target.map((_, i) => (broadcast(i) ? 0 : loc.strides[i - lead]));
  if (!loc.bounds) return { offset: loc.offset, strides };
  const bounds = target.map((d, i): [number, number] => (broadcast(i) ? [0, d] : (loc.bounds as [number, number][])[i - lead]));
  return { offset: loc.offset, strides, bounds, fill: loc.fill };
}

/** Whether two accesses touch the same elements over `shape` (strides of extent-1 axes do not matter). */
export function sameAccess(a: Access, b: Access, shape: Shape): boolean {
  return a.offset === b.offset && !a.bounds && !b.bounds && shape.every((d, i) => d === 1 || a.strides[i] === b.strides[i]);
}

/** Row-major access over a whole index space: what a loop writes, and what reads it back unchanged. */
export function identity(shape: Shape): Access {
  return { offset: 0, strides: rowMajor(shape) };
}
