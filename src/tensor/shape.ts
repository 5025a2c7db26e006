import { OpRuleError } from "../errors.js";

export type Shape = readonly number[];

export function formatShape(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

export function sizeOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * Iterations of a loop nest over the shape: an empty axis counts as one, since the nest still walks
 * the other axes. What cost estimates count, where sizeOf counts elements.
 */
export function extentOf(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= Math.max(1, d);
  return n;
}

/**
 * Output extent of a sliding window along one axis (convolution, pooling):
 * ⌊(input + padBefore + padAfter − dilation·(window − 1) − 1) / stride⌋ + 1, below 1 where the
 * (dilated) window does not fit the padded input.
 */
export function windowOutputExtent(
  input: number,
  window: number,
  stride: number,
  padBefore: number,
  padAfter: number,
  dilation = 1,
): number {
  return Math.floor((input + padBefore + padAfter - dilation * (window - 1) - 1) / stride) + 1;
}

export function sameShape(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** NumPy broadcasting: align trailing axes; each pair must match or one of them be 1. */
export function broadcastShapes(shapes: readonly Shape[]): Shape {
  let rank = 0;
  for (const s of shapes) rank = Math.max(rank, s.length);
  const out = new Array<number>(rank).fill(1);
  for (const s of shapes) {
    const offset = rank - s.length;
    for (let i = 0; i < s.length; i++) {
      const d = s[i];
      const o = out[offset + i];
      if (o === 1) out[offset + i] = d;
      else if (d !== 1 && d !== o) {
        throw new OpRuleError(
          `shapes ${shapes.map(formatShape).join(" and ")} cannot be broadcast together (axis ${offset + i - rank}: ${o} vs ${d})`,
        );
      }
    }
  }
  return out;
}

/** Row-major strides, in elements. */
export function stridesOf(shape: Shape): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i];
  }
  return strides;
}

/**
 * Axes of `target` along which an operand of shape `source` was broadcast: the leading axes it lacks
 * and the axes where it had extent 1. Summing a cotangent over them restores the operand's shape.
 */
export function broadcastAxes(source: Shape, target: Shape): number[] {
  const axes: number[] = [];
  const offset = target.length - source.length;
  for (let i = 0; i < target.length; i++) {
    if (i < offset) axes.push(i);
    else if (source[i - offset] === 1 && target[i] !== 1) axes.push(i);
  }
  return axes;
}

/** Normalises possibly negative axes against a rank, rejecting out-of-range and repeated ones. */
export function normalizeAxes(axes: readonly number[], rank: number, field = "axes"): number[] {
  const seen = new Set<number>();
  const out: number[] = [];
  for (const a of axes) {
    if (!Number.isInteger(a) || a < -rank || a >= rank) {
      throw new OpRuleError(`axis ${a} is out of range for rank ${rank}`, field);
    }
    const n = a < 0 ? a + rank : a;
    if (seen.has(n)) throw new OpRuleError(`axis ${a} is repeated`, field);
    seen.add(n);
    out.push(n);
  }
  return out.sort((x, y) => x - y);
}
