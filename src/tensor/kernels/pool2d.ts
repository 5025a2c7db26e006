/**
 * 2-D max and average pooling in NCHW layout, forward and backward.
 *
 * Shapes: x and dx are N×C×H×W; y and dy are N×C×OH×OW with
 * OH = ⌊(H + padTop + padBottom − KH) / strideH⌋ + 1 (likewise OW). The stride defaults to the kernel
 * size. Padding is never read: max pooling takes the maximum over the window's elements inside the
 * input, average pooling divides by KH·KW (`countIncludePad`, PyTorch's default) or by the number of
 * elements inside (the default here, as ONNX and TensorFlow's "SAME"). Windows are clipped to floor
 * mode; a caller wanting ceil mode adds the extra rows and columns as bottom/right padding.
 *
 * Max pooling's derivative routes each dy to the argmax of its window. The argmax is the first
 * maximum in row-major window order (top row first, left to right): ties go to the earliest element.
 * A NaN in the window is the maximum (the first NaN, so NaN propagates as in PyTorch). A window with no
 * element inside the input (possible only when padding is at least the kernel) yields −∞ for max
 * pooling, 0 for average pooling without countIncludePad, and receives no gradient.
 */
import { windowOutputExtent } from "../shape.js";
import { checkDim, checkSameType, checkSpan, type FloatArray, KernelArgumentError, optionalDim } from "./types.js";

export interface Pool2dGeometry {
  batch: number;
  channels: number;
  inHeight: number;
  inWidth: number;
  kernelHeight: number;
  kernelWidth: number;
  /** Default: the kernel size. */
  strideH?: number;
  strideW?: number;
  /** Default 0. */
  padTop?: number;
  padBottom?: number;
  padLeft?: number;
  padRight?: number;
}

export interface PoolBackwardOptions {
  /** Add to dx instead of overwriting it. */
  accumulate?: boolean;
}

export interface AvgPoolOptions {
  /** Divide by KH·KW, padding included (default false: by the elements inside the input). */
  countIncludePad?: boolean;
  /**
   * Rows and columns of the bottom and right padding that only round the output extent up (torch's
   * ceil_mode): never counted, even with countIncludePad, as torch clips its divisor to the padded input.
   */
  ceilExtra?: readonly [number, number];
}

interface Geometry {
  planes: number;
  H: number;
  W: number;
  KH: number;
  KW: number;
  sh: number;
  sw: number;
  pt: number;
  pb: number;
  pl: number;
  pr: number;
  OH: number;
  OW: number;
}

function resolve(g: Pool2dGeometry): Geometry {
  checkDim(g.batch, "pool2d batch");
  checkDim(g.channels, "pool2d channels");
  checkDim(g.inHeight, "pool2d inHeight");
  checkDim(g.inWidth, "pool2d inWidth");
  checkDim(g.kernelHeight, "pool2d kernelHeight", 1);
  checkDim(g.kernelWidth, "pool2d kernelWidth", 1);
  const KH = g.kernelHeight;
  const KW = g.kernelWidth;
  const sh = optionalDim(g.strideH, KH, "pool2d strideH", 1);
  const sw = optionalDim(g.strideW, KW, "pool2d strideW", 1);
  const pt = optionalDim(g.padTop, 0, "pool2d padTop", 0);
  const pb = optionalDim(g.padBottom, 0, "pool2d padBottom", 0);
  const pl = optionalDim(g.padLeft, 0, "pool2d padLeft", 0);
  const pr = optionalDim(g.padRight, 0, "pool2d padRight", 0);
  const OH = windowOutputExtent(g.inHeight, KH, sh, pt, pb);
  const OW = windowOutputExtent(g.inWidth, KW, sw, pl, pr);
  if (OH < 1 || OW < 1) {
    throw new KernelArgumentError(`pool2d: the window ${KH}×${KW} does not fit the padded input ${g.inHeight}×${g.inWidth}`);
  }
  return {
    planes: g.batch * g.channels,
    H: g.inHeight,
    W: g.inWidth,
    KH,
    KW,
    sh,
    sw,
    pt,
    pb,
    pl,
    pr,
    OH,
    OW,
  };
}

/** Output height and width of a pooling. */
export function pool2dOutputShape(g: Pool2dGeometry): { outHeight: number; outWidth: number } {
  const r = resolve(g);
  return { outHeight: r.OH, outWidth: r.OW };
}

function checkSizes(r: Geometry, x: FloatArray, y: FloatArray, names: [string, string]): void {
  checkSameType([x, y], "pool2d");
  checkSpan(x.length, 0, r.planes * r.H * r.W, `pool2d ${names[0]}`);
  checkSpan(y.length, 0, r.planes * r.OH * r.OW, `pool2d ${names[1]}`);
}

/**
 * Index within the plane (ih·W + iw) of the first maximum of the window at (oh, ow) of the plane at
 * `xo`, or −1 if the window lies wholly in the padding.
 */
function windowArgmax(r: Geometry, x: FloatArray, xo: number, oh: number, ow: number): number {
  const { H, W, KH, KW } = r;
  const h0 = oh * r.sh - r.pt;
  const w0 = ow * r.sw - r.pl;
  const hLo = Math.max(h0, 0);
  const hHi = Math.min(h0 + KH, H);
  const wLo = Math.max(w0, 0);
  const wHi = Math.min(w0 + KW, W);
  let best = -1;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let ih = hLo; ih < hHi; ih++) {
    const row = ih * W;
    for (let iw = wLo; iw < wHi; iw++) {
      const v = x[xo + row + iw];
      if (Number.isNaN(v)) return row + iw; // NaN is the maximum; the first one wins
      if (v > bestValue || best < 0) {
        best = row + iw;
        bestValue = v;
      }
    }
  }
  return best;
}

/** y = max over each window; optionally the argmax of each window (index ih·W + iw within its plane, −1 if none). */
export function maxPool2d(g: Pool2dGeometry, x: FloatArray, y: FloatArray, argmax?: Int32Array): void {
  const r = resolve(g);
  checkSizes(r, x, y, ["x", "y"]);
  const { planes, H, W, OH, OW } = r;
  if (argmax !== undefined) checkSpan(argmax.length, 0, planes * OH * OW, "pool2d argmax");
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const xo = pl * H * W;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++, o++) {
        const idx = windowArgmax(r, x, xo, oh, ow);
        y[o] = idx < 0 ? Number.NEGATIVE_INFINITY : x[xo + idx];
        if (argmax !== undefined) argmax[o] = idx;
      }
    }
  }
}

/** dx = ∂⟨maxPool2d(x), dy⟩/∂x: each dy added at its window's argmax (recomputed from x). */
export function maxPool2dBackward(
  g: Pool2dGeometry,
  x: FloatArray,
  dy: FloatArray,
  dx: FloatArray,
  options: PoolBackwardOptions = {},
): void {
  const r = resolve(g);
  checkSizes(r, x, dy, ["x", "dy"]);
  checkSizes(r, dx, dy, ["dx", "dy"]);
  const { planes, H, W, OH, OW } = r;
  if (!options.accumulate) dx.fill(0, 0, planes * H * W);
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const xo = pl * H * W;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++, o++) {
        const idx = windowArgmax(r, x, xo, oh, ow);
        if (idx >= 0) dx[xo + idx] += dy[o];
      }
    }
  }
}

/** As maxPool2dBackward, from the argmax that maxPool2d recorded. */
export function maxPool2dBackwardFromArgmax(
  g: Pool2dGeometry,
  argmax: Int32Array,
  dy: FloatArray,
  dx: FloatArray,
  options: PoolBackwardOptions = {},
): void {
  const r = resolve(g);
  checkSizes(r, dx, dy, ["dx", "dy"]);
  const { planes, H, W, OH, OW } = r;
  checkSpan(argmax.length, 0, planes * OH * OW, "pool2d argmax");
  if (!options.accumulate) dx.fill(0, 0, planes * H * W);
  const plane = H * W;
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const xo = pl * plane;
    for (let q = 0; q < OH * OW; q++, o++) {
      const idx = argmax[o];
      if (idx >= 0 && idx < plane) dx[xo + idx] += dy[o];
    }
  }
}

/** Clipped window bounds and its divisor. */
function avgWindow(r: Geometry, oh: number, ow: number, includePad: boolean, out: Int32Array, extra?: readonly number[]): number {
  const h0 = oh * r.sh - r.pt;
  const w0 = ow * r.sw - r.pl;
  out[0] = Math.max(h0, 0);
  out[1] = Math.min(h0 + r.KH, r.H);
  out[2] = Math.max(w0, 0);
  out[3] = Math.min(w0 + r.KW, r.W);
  // Padding counts, but not the rows and columns added only to round the extent up (ceil mode).
  if (includePad)
    return (Math.min(h0 + r.KH, r.H + r.pb - (extra?.[0] ?? 0)) - h0) * (Math.min(w0 + r.KW, r.W + r.pr - (extra?.[1] ?? 0)) - w0);
  const count = Math.max(0, out[1] - out[0]) * Math.max(0, out[3] - out[2]);
  return count;
}

const bounds = new Int32Array(4);

/** y = mean over each window. */
export function avgPool2d(g: Pool2dGeometry, x: FloatArray, y: FloatArray, options: AvgPoolOptions = {}): void {
  const r = resolve(g);
  checkSizes(r, x, y, ["x", "y"]);
  const { planes, H, W, OH, OW } = r;
  const includePad = options.countIncludePad === true;
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const xo = pl * H * W;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++, o++) {
        const div = avgWindow(r, oh, ow, includePad, bounds, options.ceilExtra);
        let s = 0;
        for (let ih = bounds[0]; ih < bounds[1]; ih++) {
          const row = xo + ih * W;
          for (let iw = bounds[2]; iw < bounds[3]; iw++) s += x[row + iw];
        }
        y[o] = div > 0 ? s / div : 0;
      }
    }
  }
}

/** dx = ∂⟨avgPool2d(x), dy⟩/∂x: each dy spread evenly (by the same divisor) over its window. */
export function avgPool2dBackward(
  g: Pool2dGeometry,
  dy: FloatArray,
  dx: FloatArray,
  options: AvgPoolOptions & PoolBackwardOptions = {},
): void {
  const r = resolve(g);
  checkSizes(r, dx, dy, ["dx", "dy"]);
  const { planes, H, W, OH, OW } = r;
  const includePad = options.countIncludePad === true;
  if (!options.accumulate) dx.fill(0, 0, planes * H * W);
  let o = 0;
  for (let pl = 0; pl < planes; pl++) {
    const xo = pl * H * W;
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++, o++) {
        const div = avgWindow(r, oh, ow, includePad, bounds, options.ceilExtra);
        if (div === 0) continue;
        const v = dy[o] / div;
        for (let ih = bounds[0]; ih < bounds[1]; ih++) {
          const row = xo + ih * W;
          for (let iw = bounds[2]; iw < bounds[3]; iw++) dx[row + iw] += v;
        }
      }
    }
  }
}
