import { broadcastAxes, sameShape } from "../tensor/shape.js";
import type { RuleBuilder, Shape } from "./types.js";

/** Sums a cotangent over the axes along which an operand of `shape` was broadcast. */
export function unbroadcast(b: RuleBuilder, g: number, shape: Shape): number {
  const gShape = b.shape(g);
  if (sameShape(gShape, shape)) return g;
  const axes = broadcastAxes(shape, gShape);
  const summed = axes.length ? b.op("sum", [g], { axes, keepdims: false }) : g;
  return sameShape(b.shape(summed), shape) ? summed : b.op("reshape", [summed], { shape: [...shape] });
}

/** Broadcasts a tangent up to the shape of the node it belongs to. */
export function broadcastTo(b: RuleBuilder, t: number, shape: Shape): number {
  return sameShape(b.shape(t), shape) ? t : b.op("broadcast_to", [t], { shape: [...shape] });
}

export function zerosOf(b: RuleBuilder, shape: Shape): number {
  return broadcastTo(b, b.constant(0), shape);
}

export function onesOf(b: RuleBuilder, shape: Shape): number {
  return broadcastTo(b, b.constant(1), shape);
}
