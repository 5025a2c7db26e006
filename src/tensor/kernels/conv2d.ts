/**
 * 2-D convolution in NCHW layout (cross-correlation, as in every deep-learning framework) with stride,
 * per-side zero padding and dilation, groups = 1, and its two derivatives. All three go through
 * im2col / col2im and the matmul kernel:
 *
 *   forward      y[n]  = W · cols(x[n])                     W: O × (C·KH·KW), cols: (C·KH·KW) × (OH·OW)
 *   input grad   dx[n] = col2im(Wᵀ · dy[n])                 the transposed convolution
 *   filter grad  dW    = Σ_n dy[n] · cols(x[n])ᵀ
 *
 * Shapes: x is N×C×H×W, w is O×C×KH×KW, y and dy are N×O×OH×OW with
 * OH = ⌊(H + padTop + padBottom − dilationH·(KH − 1) − 1) / strideH⌋ + 1 (and likewise OW).
 * Arrays are row-major; pass a subarray to start elsewhere in a buffer. A 1×1 kernel with stride 1 and
 * no padding skips im2col (x[n] already is the column matrix).
 *
 * Two implementations: with the WebAssembly kernels (backend "wasm", or "auto" unless the per-image
 * product is tiny) each image is copied into the kernel's memory and im2col / col2im and the multiply
 * all run there; otherwise im2col / col2im run in JavaScript around `matmul` with the chosen backend,
 * using an im2col buffer of conv2dWorkspaceSize(g) elements: pass it as `workspace` to keep that path
 * allocation-free (otherwise one is allocated per call).
 */
import { windowOutputExtent } from "../shape.js";
import { MATMUL_SMALL_WORK, type MatmulBackend, matmul } from "./matmul.js";
import { align64, defaultWasmGemm, WASM_STAGING_LIMIT, wasmGemmAvailable } from "./matmul-wasm.js";
import { checkDim, checkSameType, checkSpan, type FloatArray, KernelArgumentError, optionalDim } from "./types.js";

export interface Conv2dGeometry {
  batch: number;
  inChannels: number;
  inHeight: number;
  inWidth: number;
  outChannels: number;
  kernelHeight: number;
  kernelWidth: number;
  /** Default 1. */
  strideH?: number;
  strideW?: number;
  /** Zero padding per side, default 0. */
  padTop?: number;
  padBottom?: number;
  padLeft?: number;
  padRight?: number;
  /** Default 1. */
  dilationH?: number;
  dilationW?: number;
}

export interface Conv2dOptions {
  /**
   * Scratch of at least conv2dWorkspaceSize(g) elements, same element type as the operands, for the
   * JavaScript path (the WebAssembly path keeps its columns in its own memory).
   */
  workspace?: FloatArray;
  /** Add the result to the output instead of overwriting it. */
  accumulate?: boolean;
  /** "wasm" runs everything in WebAssembly; "naive" and "js" run im2col in JavaScript around that matmul backend. Default "auto". */
  backend?: MatmulBackend;
}

interface Geometry {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  KH: number;
  KW: number;
  sh: number;
  sw: number;
  pt: number;
  pl: number;
  dh: number;
  dw: number;
  OH: number;
  OW: number;
  /** C·KH·KW, the depth of the column matrix. */
  CKK: number;
  /** OH·OW, output positions per image. */
  P: number;
  /** x[n] is its own column matrix. */
  direct: boolean;
}

function resolve(g: Conv2dGeometry): Geometry {
  checkDim(g.batch, "conv2d batch");
  checkDim(g.inChannels, "conv2d inChannels");
  checkDim(g.inHeight, "conv2d inHeight");
  checkDim(g.inWidth, "conv2d inWidth");
  checkDim(g.outChannels, "conv2d outChannels");
  checkDim(g.kernelHeight, "conv2d kernelHeight", 1);
  checkDim(g.kernelWidth, "conv2d kernelWidth", 1);
  const sh = optionalDim(g.strideH, 1, "conv2d strideH", 1);
  const sw = optionalDim(g.strideW, 1, "conv2d strideW", 1);
  const pt = optionalDim(g.padTop, 0, "conv2d padTop", 0);
  const pb = optionalDim(g.padBottom, 0, "conv2d padBottom", 0);
  const pl = optionalDim(g.padLeft, 0, "conv2d padLeft", 0);
  const pr = optionalDim(g.padRight, 0, "conv2d padRight", 0);
  const dh = optionalDim(g.dilationH, 1, "conv2d dilationH", 1);
  const dw = optionalDim(g.dilationW, 1, "conv2d dilationW", 1);
  const KH = g.kernelHeight;
  const KW = g.kernelWidth;
  const OH = windowOutputExtent(g.inHeight, KH, sh, pt, pb, dh);
  const OW = windowOutputExtent(g.inWidth, KW, sw, pl, pr, dw);
  if (OH < 1 || OW < 1) {
    throw new KernelArgumentError(`conv2d: the (dilated) kernel ${KH}×${KW} does not fit the padded input ${g.inHeight}×${g.inWidth}`);
  }
  const C = g.inChannels;
  return {
    N: g.batch,
    C,
    H: g.inHeight,
    W: g.inWidth,
    O: g.outChannels,
    KH,
    KW,
    sh,
    sw,
    pt,
    pl,
    dh,
    dw,
    OH,
    OW,
    CKK: C * KH * KW,
    P: OH * OW,
    direct: KH === 1 && KW === 1 && sh === 1 && sw === 1 && pt === 0 && pb === 0 && pl === 0 && pr === 0,
  };
}

/** Output height and width of a convolution. */
export function conv2dOutputShape(g: Conv2dGeometry): { outHeight: number; outWidth: number } {
  const r = resolve(g);
  return { outHeight: r.OH, outWidth: r.OW };
}

/** Elements of im2col scratch that conv2d and its derivatives need (0 when they need none). */
export function conv2dWorkspaceSize(g: Conv2dGeometry): number {
  const r = resolve(g);
  return r.direct ? 0 : r.CKK * r.P;
}

function workspaceFor(r: Geometry, like: FloatArray, ws: FloatArray | undefined): FloatArray {
  const need = r.direct ? 0 : r.CKK * r.P;
  if (ws === undefined) return like instanceof Float64Array ? new Float64Array(need) : new Float32Array(need);
  checkSameType([like, ws], "conv2d workspace");
  if (ws.length < need) throw new KernelArgumentError(`conv2d: workspace has ${ws.length} elements, needs ${need}`);
  return ws;
}

function checkSizes(r: Geometry, x: FloatArray, w: FloatArray, y: FloatArray, names: [string, string, string]): void {
  checkSameType([x, w, y], "conv2d");
  checkSpan(x.length, 0, r.N * r.C * r.H * r.W, `conv2d ${names[0]}`);
  checkSpan(w.length, 0, r.O * r.CKK, `conv2d ${names[1]}`);
  checkSpan(y.length, 0, r.N * r.O * r.P, `conv2d ${names[2]}`);
}

/** The output positions [lo, hi) (of out) whose input position ow·s − pad + off lies in [0, size); rows and columns alike. */
function validRange(out: number, size: number, s: number, pad: number, off: number): [number, number] {
  // ow·s + (off − pad) ≥ 0  ⇔  ow ≥ ⌈(pad − off) / s⌉;   ow·s + (off − pad) ≤ size − 1
  const d = off - pad;
  let lo = d >= 0 ? 0 : Math.ceil(-d / s);
  let hi = size - 1 - d < 0 ? 0 : Math.floor((size - 1 - d) / s) + 1;
  if (lo > out) lo = out;
  if (hi > out) hi = out;
  if (hi < lo) hi = lo;
  return [lo, hi];
}

/** cols[(c·KH + i)·KW + j, oh·OW + ow] = x[xo + c·H·W + ih·W + iw] (0 in the padding). */
export function im2col(g: Conv2dGeometry, x: FloatArray, xOffset: number, cols: FloatArray): void {
  convColumns(resolve(g), x, xOffset, cols, true);
}

/** The adjoint of im2col: x[xo + c·H·W + ih·W + iw] += cols[…] over every window that reads it. */
export function col2im(g: Conv2dGeometry, cols: FloatArray, x: FloatArray, xOffset: number): void {
  convColumns(resolve(g), x, xOffset, cols, false);
}

/**
 * im2col (gather = true: cols = the columns of x, 0 in the padding) and col2im (gather = false: x += the
 * columns scattered back) share one walk over the column matrix. Row (c·KH + i)·KW + j of cols meets x
 * only in output rows [top, bottom) and output columns [lo, hi) (the window positions whose input
 * pixel oh·sh − pt + i·dh, ow·sw − pl + j·dw lies inside the image); s0 is the input index of the
 * first of them. The direction is chosen once per kernel position, never per element, as the
 * WebAssembly kernel's convColumns does.
 */
function convColumns(r: Geometry, x: FloatArray, xo: number, cols: FloatArray, gather: boolean): void {
  const { C, H, W, KH, KW, sh, sw, pt, pl, dh, dw, OH, OW, P } = r;
  let row = 0;
  for (let c = 0; c < C; c++) {
    const xc = xo + c * H * W;
    for (let i = 0; i < KH; i++) {
      const [top, bottom] = validRange(OH, H, sh, pt, i * dh);
      for (let j = 0; j < KW; j++, row++) {
        const [lo, hi] = validRange(OW, W, sw, pl, j * dw);
        const s0 = xc + (top * sh - pt + i * dh) * W + lo * sw - pl + j * dw;
        const step = sh * W;
        const base = row * P;
        if (gather) {
          cols.fill(0, base, base + top * OW);
          for (let oh = top, d = base + top * OW, s = s0; oh < bottom; oh++, d += OW, s += step) {
            for (let ow = 0; ow < lo; ow++) cols[d + ow] = 0;
            for (let ow = lo, t = s; ow < hi; ow++, t += sw) cols[d + ow] = x[t];
            for (let ow = hi; ow < OW; ow++) cols[d + ow] = 0;
          }
          cols.fill(0, base + bottom * OW, base + P);
        } else {
          for (let oh = top, d = base + top * OW, s = s0; oh < bottom; oh++, d += OW, s += step) {
            for (let ow = lo, t = s; ow < hi; ow++, t += sw) x[t] += cols[d + ow];
          }
        }
      }
    }
  }
}

type Pass = "forward" | "input" | "filter";

/** Names of the (x, w, y) operands of each pass, for error messages. */
const OPERAND_NAMES: Record<Pass, [string, string, string]> = {
  forward: ["x", "w", "y"],
  input: ["dx", "w", "dy"],
  filter: ["x", "dw", "dy"],
};

/**
 * What the three entry points share: resolve and check the arguments ((x, w, y) as in convWasm), then
 * run the whole pass in WebAssembly when useWasm says so (returning undefined); otherwise return the
 * geometry and the im2col scratch for the JavaScript path.
 */
function prepare(
  pass: Pass,
  g: Conv2dGeometry,
  x: FloatArray,
  w: FloatArray,
  y: FloatArray,
  options: Conv2dOptions,
): { r: Geometry; ws: FloatArray } | undefined {
  const r = resolve(g);
  checkSizes(r, x, w, y, OPERAND_NAMES[pass]);
  if (options.workspace !== undefined) workspaceFor(r, x, options.workspace);
  if (useWasm(r, options.backend)) {
    convWasm(pass, r, x, w, y, options.accumulate === true);
    return undefined;
  }
  return { r, ws: workspaceFor(r, x, options.workspace) };
}

/** The column matrix of image n of x: x itself at n·C·H·W for a direct (1×1) kernel, else im2col of it in ws. */
function imageColumns(r: Geometry, x: FloatArray, n: number, ws: FloatArray): { cols: FloatArray; colsOffset: number } {
  const at = n * r.C * r.H * r.W;
  if (r.direct) return { cols: x, colsOffset: at };
  convColumns(r, x, at, ws, true);
  return { cols: ws, colsOffset: 0 };
}

/** y = conv2d(x, w): x N×C×H×W, w O×C×KH×KW, y N×O×OH×OW. */
export function conv2d(g: Conv2dGeometry, x: FloatArray, w: FloatArray, y: FloatArray, options: Conv2dOptions = {}): void {
  const js = prepare("forward", g, x, w, y, options);
  if (js === undefined) return;
  const { r, ws } = js;
  const { N, O, CKK, P } = r;
  for (let n = 0; n < N; n++) {
    const { cols, colsOffset } = imageColumns(r, x, n, ws);
    matmul(
      { m: O, n: P, k: CKK, a: w, b: cols, bOffset: colsOffset, c: y, cOffset: n * O * P, accumulate: options.accumulate },
      options.backend,
    );
  }
}

/** dx = ∂⟨conv2d(x, w), dy⟩/∂x, the transposed convolution of dy with w. */
export function conv2dInputGrad(g: Conv2dGeometry, dy: FloatArray, w: FloatArray, dx: FloatArray, options: Conv2dOptions = {}): void {
  const js = prepare("input", g, dx, w, dy, options);
  if (js === undefined) return;
  const { r, ws } = js;
  const { N, C, H, W, O, CKK, P } = r;
  const plane = C * H * W;
  for (let n = 0; n < N; n++) {
    if (r.direct) {
      matmul(
        { m: CKK, n: P, k: O, a: w, transA: true, b: dy, bOffset: n * O * P, c: dx, cOffset: n * plane, accumulate: options.accumulate },
        options.backend,
      );
      continue;
    }
    matmul({ m: CKK, n: P, k: O, a: w, transA: true, b: dy, bOffset: n * O * P, c: ws }, options.backend);
    if (!options.accumulate) dx.fill(0, n * plane, (n + 1) * plane);
    convColumns(r, dx, n * plane, ws, false);
  }
}

/** dw = ∂⟨conv2d(x, w), dy⟩/∂w = Σ_n dy[n] · cols(x[n])ᵀ. */
export function conv2dFilterGrad(g: Conv2dGeometry, x: FloatArray, dy: FloatArray, dw: FloatArray, options: Conv2dOptions = {}): void {
  const js = prepare("filter", g, x, dw, dy, options);
  if (js === undefined) return;
  const { r, ws } = js;
  const { N, O, CKK, P } = r;
  if (N === 0) {
    if (!options.accumulate) dw.fill(0, 0, O * CKK);
    return;
  }
  for (let n = 0; n < N; n++) {
    const { cols, colsOffset } = imageColumns(r, x, n, ws);
    matmul(
      {
        m: O,
        n: CKK,
        k: P,
        a: dy,
        aOffset: n * O * P,
        b: cols,
        bOffset: colsOffset,
        transB: true,
        c: dw,
        accumulate: n > 0 || options.accumulate,
      },
      options.backend,
    );
  }
}

/**
 * Whether to run on the WebAssembly kernels: for backend "wasm", and for "auto" when the per-image
 * product is not tiny (the same rule as matmul's "auto"). Degenerate sizes take the JavaScript path.
 */
function useWasm(r: Geometry, backend: MatmulBackend | undefined): boolean {
  if (backend !== undefined && backend !== "auto" && backend !== "wasm") return false;
  if (r.N === 0 || r.O === 0 || r.CKK === 0) return false;
  if (backend !== "wasm" && r.O * r.P * r.CKK < MATMUL_SMALL_WORK) return false;
  const staged = (r.O * r.CKK + r.C * r.H * r.W + (r.direct ? 0 : r.CKK * r.P) + r.O * r.P) * 8;
  if (backend !== "wasm" && staged > WASM_STAGING_LIMIT) return false;
  return wasmGemmAvailable();
}

/**
 * The three convolution passes inside WebAssembly memory: per image, the operands are copied in,
 * im2col / col2im and the multiply run there, and the result is copied out. The workspace option is
 * not used (the columns live in the kernel's memory).
 *
 *   forward: x → xs, cols = im2col(xs), ys = W·cols                   (x, w, y) = (x, w, y)
 *   input:   ys = dy[n], cols = Wᵀ·ys, xs = col2im(cols)              (x, w, y) = (dx, w, dy)
 *   filter:  xs = x[n], cols = im2col(xs), ys = dy[n], Ws += ys·colsᵀ  (x, w, y) = (x, dw, dy)
 */
function convWasm(pass: Pass, r: Geometry, x: FloatArray, w: FloatArray, y: FloatArray, accumulate: boolean): void {
  const ctx = defaultWasmGemm();
  const f64 = x instanceof Float64Array;
  const E = f64 ? 8 : 4;
  const shift = f64 ? 3 : 2;
  const { N, C, H, W, O, CKK, P } = r;
  const plane = C * H * W;
  const outPlane = O * P;
  const wPtr = ctx.stagingStart;
  const xPtr = align64(wPtr + O * CKK * E);
  const colsPtr = align64(xPtr + plane * E);
  const yPtr = align64(colsPtr + (r.direct ? 0 : CKK * P) * E);
  ctx.reserve(yPtr + outPlane * E);
  const heap = ctx.heapLike(x);
  const at = (ptr: number) => ptr >> shift;
  // With a 1×1 kernel the image is its own column matrix.
  const colsAt = r.direct ? xPtr : colsPtr;
  if (pass !== "filter" || accumulate) heap.set(w.subarray(0, O * CKK), at(wPtr));
  for (let n = 0; n < N; n++) {
    const xs = x.subarray(n * plane, (n + 1) * plane);
    const ys = y.subarray(n * outPlane, (n + 1) * outPlane);
    if (pass === "forward") {
      heap.set(xs, at(xPtr));
      if (!r.direct) ctx.convColumns(f64, true, r, xPtr, colsPtr);
      if (accumulate) heap.set(ys, at(yPtr));
      ctx.gemmAt(f64, O, P, CKK, wPtr, CKK, 1, colsAt, P, 1, yPtr, P, accumulate ? 1 : 0);
      ys.set(heap.subarray(at(yPtr), at(yPtr) + outPlane));
    } else if (pass === "input") {
      heap.set(ys, at(yPtr));
      if (r.direct) {
        if (accumulate) heap.set(xs, at(xPtr));
        ctx.gemmAt(f64, CKK, P, O, wPtr, 1, CKK, yPtr, P, 1, xPtr, P, accumulate ? 1 : 0);
      } else {
        ctx.gemmAt(f64, CKK, P, O, wPtr, 1, CKK, yPtr, P, 1, colsPtr, P, 0);
        if (accumulate) heap.set(xs, at(xPtr));
        else heap.fill(0, at(xPtr), at(xPtr) + plane);
        ctx.convColumns(f64, false, r, colsPtr, xPtr);
      }
      xs.set(heap.subarray(at(xPtr), at(xPtr) + plane));
    } else {
      heap.set(xs, at(xPtr));
      if (!r.direct) ctx.convColumns(f64, true, r, xPtr, colsPtr);
      heap.set(ys, at(yPtr));
      ctx.gemmAt(f64, O, CKK, P, yPtr, P, 1, colsAt, 1, P, wPtr, CKK, n > 0 || accumulate ? 1 : 0);
    }
  }
  if (pass === "filter") w.set(heap.subarray(at(wPtr), at(wPtr) + O * CKK));
}
