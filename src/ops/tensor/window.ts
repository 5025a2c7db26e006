import { OpRuleError } from "../../errors.js";
import { pairAttr } from "./attrs.js";

/** Window attributes and geometry that convolution (conv.ts) and pooling (pool.ts) read the same way. */

/** padding: one integer, [vertical, horizontal], or [top, bottom, left, right]. */
export function paddingAttr(value: unknown): [number, number, number, number] {
  if (Array.isArray(value) && value.length === 4) {
    if (!value.every((v) => Number.isInteger(v) && v >= 0))
      throw new OpRuleError("padding entries must be non-negative integers", "attrs.padding");
    return value as [number, number, number, number];
  }
  const [v, h] = pairAttr(value, "padding", 0, 0);
  return [v, v, h, h];
}

/** The stride and padding fields the convolution and pooling kernels share. */
export function window(stride: readonly number[], padding: readonly number[]) {
  return { strideH: stride[0], strideW: stride[1], padTop: padding[0], padBottom: padding[1], padLeft: padding[2], padRight: padding[3] };
}
