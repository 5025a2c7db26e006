import { type Shape, windowOutputExtent } from "../../tensor/shape.js";
import { transposeMap } from "../sparsity.js";
import type { LocalSparsity, OperandMap, SparsityRule } from "../types.js";

/**
 * Sparsity rules of convolution and pooling: each output element reads its window (over every input
 * channel for convolution), and each derivative op reads the transpose. Windows that hang over the
 * padding read only their elements inside the input. Max pooling reads its whole window, since which
 * element wins depends on the values.
 */

interface Window {
  readonly kernel: readonly number[];
  readonly stride: readonly number[];
  readonly padding: readonly number[];
  readonly dilation?: readonly number[];
}

/**
 * Every (output, input, filter) element triple of a convolution of x [N, C, H, W] by a filter
 * [O, C, KH, KW] (or, with `channels` false, of a pooling: O = C and each channel its own), visited
 * in output order.
 */
function forEachTap(x: Shape, outChannels: number, channels: boolean, a: Window, visit: (y: number, xe: number, w: number) => void): void {
  const [n, c, h, wd] = x;
  const [kh, kw] = a.kernel;
  const [dh, dw] = a.dilation ?? [1, 1];
  const oh = windowOutputExtent(h, kh, a.stride[0], a.padding[0], a.padding[1], dh);
  const ow = windowOutputExtent(wd, kw, a.stride[1], a.padding[2], a.padding[3], dw);
  for (let b = 0; b < n; b++)
    for (let o = 0; o < outChannels; o++)
      for (let oy = 0; oy < oh; oy++)
        for (let ox = 0; ox < ow; ox++) {
          const y = ((b * outChannels + o) * oh + oy) * ow + ox;
          for (let ci = channels ? 0 : o; ci < (channels ? c : o + 1); ci++)
            for (let ky = 0; ky < kh; ky++) {
              const iy = oy * a.stride[0] - a.padding[0] + ky * dh;
              if (iy < 0 || iy >= h) continue;
              for (let kx = 0; kx < kw; kx++) {
                const ix = ox * a.stride[1] - a.padding[2] + kx * dw;
                if (ix < 0 || ix >= wd) continue;
                visit(y, ((b * c + ci) * h + iy) * wd + ix, ((o * (channels ? c : 1) + (channels ? ci : 0)) * kh + ky) * kw + kx);
              }
            }
        }
}

/** The taps grouped by the chosen element of each triple (0 output, 1 input, 2 filter), reading another. */
function tapMap(x: Shape, outChannels: number, channels: boolean, a: Window, rowOf: 0 | 1 | 2, read: 0 | 1 | 2, rows: number): OperandMap {
  const pairs: number[] = [];
  forEachTap(x, outChannels, channels, a, (...t) => {
    pairs.push(t[read], t[rowOf]);
  });
  // Counting sort of the (read, row) pairs by row: a CSR map, each row's entries in visiting order.
  const counts = new Int32Array(rows + 1);
  for (let k = 1; k < pairs.length; k += 2) counts[pairs[k] + 1]++;
  for (let r = 0; r < rows; r++) counts[r + 1] += counts[r];
  const indices = new Int32Array(pairs.length / 2);
  const fill = counts.slice(0, rows);
  for (let k = 0; k < pairs.length; k += 2) indices[fill[pairs[k + 1]]++] = pairs[k];
  return { indptr: counts, indices };
}

const size = (s: Shape) => s.reduce((p, d) => p * d, 1);

type ConvA = { stride: [number, number]; padding: [number, number, number, number]; dilation: [number, number] };
const convWindow = (w: Shape, a: ConvA): Window => ({ kernel: [w[2], w[3]], stride: a.stride, padding: a.padding, dilation: a.dilation });

/** conv2d(x, w): output element (n, o, oy, ox) reads x's window over every channel and the filter taps that meet it. */
export const conv2dSparsity: SparsityRule<ConvA> = ({ argShapes: [x, w], shape, attrs }) => [
  tapMap(x, w[0], true, convWindow(w, attrs), 0, 1, size(shape)),
  tapMap(x, w[0], true, convWindow(w, attrs), 0, 2, size(shape)),
];

/** conv2d_input_grad(dy, w): input element reads the dy elements whose windows cover it, and their taps. */
export const conv2dInputGradSparsity: SparsityRule<ConvA & { input_size: [number, number] }> = ({ argShapes: [dy, w], shape, attrs }) => {
  const x = [dy[0], w[1], ...attrs.input_size];
  return [tapMap(x, w[0], true, convWindow(w, attrs), 1, 0, size(shape)), tapMap(x, w[0], true, convWindow(w, attrs), 1, 2, size(shape))];
};

/** conv2d_filter_grad(x, dy): filter element reads every x element it multiplies and the dy elements it feeds. */
export const conv2dFilterGradSparsity: SparsityRule<ConvA & { kernel_size: [number, number] }> = ({ argShapes: [x, dy], shape, attrs }) => {
  const w = [dy[1], x[1], ...attrs.kernel_size];
  return [tapMap(x, w[0], true, convWindow(w, attrs), 2, 1, size(shape)), tapMap(x, w[0], true, convWindow(w, attrs), 2, 0, size(shape))];
};

type PoolA = { kernel: [number, number]; stride: [number, number]; padding: [number, number, number, number] };

/** Pooling's window map over x: output element → the x elements under its window. */
function poolMap(x: Shape, a: PoolA, rows: number): OperandMap {
  return tapMap(x, x[1], false, a, 0, 1, rows);
}

/** max_pool2d, avg_pool2d: each output element reads its window. */
export const poolSparsity: SparsityRule<PoolA> = ({ argShapes: [x], shape, attrs }) => [poolMap(x, attrs, size(shape))];

/** max_pool2d_pick(x, t): t's window (x only chooses, so carries no derivative). */
export const poolPickSparsity: SparsityRule<PoolA> = ({ argShapes: [x], shape, attrs }) => [null, poolMap(x, attrs, size(shape))];

/** max_pool2d_grad(x, dy): each x position reads the dy elements whose windows cover it. */
export const maxPoolGradSparsity: SparsityRule<PoolA> = ({ argShapes: [x, dy], attrs }): LocalSparsity => [
  null,
  transposeMap(poolMap(x, attrs, size(dy)), size(dy), size(x)),
];

/** avg_pool2d_grad(dy): the same transpose, back to the input size. */
export const avgPoolGradSparsity: SparsityRule<PoolA & { input_size: [number, number] }> = ({ argShapes: [dy], shape, attrs }) => {
  const x = [dy[0], dy[1], ...attrs.input_size];
  return [transposeMap(poolMap(x, attrs, size(dy)), size(dy), size(shape))];
};
