import { OpRuleError } from "../../errors.js";
import { type FloatArray, matmul as gemm } from "../../tensor/kernels/index.js";
import { broadcastShapes, extentOf, formatShape, type Shape, sizeOf, stridesOf } from "../../tensor/shape.js";
import { defineOp } from "../define.js";
import { unbroadcast } from "../rule-helpers.js";
import { broadcastIndex } from "../sparsity.js";
import type { LocalSparsity, MaybeNode, TensorData } from "../types.js";
import { boolAttr, onlyAttrs } from "./attrs.js";

export type MatmulAttrs = { transpose_a: boolean; transpose_b: boolean };

/** Rows × columns of an operand as the product sees it (after its optional transpose). */
function matrixDims(shape: readonly number[], transposed: boolean): [number, number] {
  const r = shape[shape.length - 2];
  const c = shape[shape.length - 1];
  return transposed ? [c, r] : [r, c];
}

/**
 * op(A)·op(B) over the last two axes, op = optional transpose; leading axes are batch axes and
 * broadcast. The transposes are attributes rather than separate nodes so that the backward pass
 * (which needs Aᵀ and Bᵀ) reads the operands in place instead of copying them.
 */
export const matmul = defineOp<MatmulAttrs>({
  name: "matmul",
  operands: "a [… , M, K], b [… , K, N] (each transposed first where transpose_a, transpose_b say)",
  tensorCases: [
    { name: "plain", args: [{ shape: [3, 4] }, { shape: [4, 5] }] },
    { name: "Aᵀ", args: [{ shape: [4, 3] }, { shape: [4, 5] }], attrs: { transpose_a: true } },
    { name: "Bᵀ", args: [{ shape: [3, 4] }, { shape: [5, 4] }], attrs: { transpose_b: true } },
    { name: "AᵀBᵀ", args: [{ shape: [4, 3] }, { shape: [5, 4] }], attrs: { transpose_a: true, transpose_b: true } },
    { name: "batched", args: [{ shape: [2, 3, 4] }, { shape: [2, 4, 2] }] },
    { name: "broadcast batch", args: [{ shape: [1, 3, 4] }, { shape: [2, 4, 2] }] },
    { name: "batch × matrix", args: [{ shape: [2, 3, 4] }, { shape: [4, 2] }] },
    { name: "partly broadcast batch axes", args: [{ shape: [2, 1, 3, 4] }, { shape: [1, 3, 4, 2] }] },
  ],
  kind: "structural",
  arity: 2,
  summary: "matrix product over the last two axes, batched over the leading axes (broadcast)",
  attrNames: ["transpose_a", "transpose_b"],
  // One multiply-add per output element and step of the inner dimension.
  cost: ([a], out, attrs) => extentOf(out) * Math.max(1, (attrs.transpose_a ? a[a.length - 2] : a[a.length - 1]) ?? 1),
  normalizeAttrs: (attrs, [a, b]) => {
    const x = onlyAttrs(attrs, ["transpose_a", "transpose_b"]);
    if (a.length < 2 || b.length < 2) {
      throw new OpRuleError(
        `matmul needs operands of rank ≥ 2, got ${formatShape(a)} and ${formatShape(b)}; reshape a vector to [n, 1] or [1, n]`,
      );
    }
    const t = { transpose_a: boolAttr(x.transpose_a, "transpose_a", false), transpose_b: boolAttr(x.transpose_b, "transpose_b", false) };
    const [, k1] = matrixDims(a, t.transpose_a);
    const [k2] = matrixDims(b, t.transpose_b);
    if (k1 !== k2) throw new OpRuleError(`inner dimensions differ: ${formatShape(a)} · ${formatShape(b)} (${k1} ≠ ${k2})`);
    return t;
  },
  shape: ([a, b], { transpose_a, transpose_b }) => {
    const batch = broadcastShapes([a.slice(0, -2), b.slice(0, -2)]);
    return [...batch, matrixDims(a, transpose_a)[0], matrixDims(b, transpose_b)[1]];
  },
  kernel: ({ argShapes: [a, b], shape, attrs }) => batchedProduct(a, b, shape, attrs),
  sparsity: ({ argShapes: [a, b], shape, attrs }) => productSparsity(a, b, shape, attrs),
  linear: "bilinear",
  // C = op(A)·op(B): Ā = C̄·op(B)ᵀ, read back through op(A)'s transpose; likewise B̄ = op(A)ᵀ·C̄.
  vjp: (b, [x, y], _out, ct, needs, { transpose_a: ta, transpose_b: tb }) => {
    const ga: MaybeNode = !needs[0]
      ? null
      : ta
        ? b.op("matmul", [y, ct], { transpose_a: tb, transpose_b: true })
        : b.op("matmul", [ct, y], { transpose_a: false, transpose_b: !tb });
    const gb: MaybeNode = !needs[1]
      ? null
      : tb
        ? b.op("matmul", [ct, x], { transpose_a: true, transpose_b: ta })
        : b.op("matmul", [x, ct], { transpose_a: !ta, transpose_b: false });
    return [ga === null ? null : unbroadcast(b, ga, b.shape(x)), gb === null ? null : unbroadcast(b, gb, b.shape(y))];
  },
});

/**
 * The product over the batch axes. When each operand's batch is either the whole output batch or a
 * single matrix, one strided call covers it (stride 0 broadcasts); otherwise each output matrix is a
 * call of its own, its operands found through the broadcast batch index.
 */
function batchedProduct(a: Shape, b: Shape, out: Shape, t: MatmulAttrs) {
  const m = out[out.length - 2];
  const n = out[out.length - 1];
  const k = t.transpose_a ? a[a.length - 2] : a[a.length - 1];
  const batchShape = out.slice(0, -2);
  const batches = sizeOf(batchShape);
  const aBatch = sizeOf(a.slice(0, -2));
  const bBatch = sizeOf(b.slice(0, -2));
  const base = { m, n, k, transA: t.transpose_a, transB: t.transpose_b };
  if ((aBatch === batches || aBatch === 1) && (bBatch === batches || bBatch === 1)) {
    const strides = { batch: batches, strideA: aBatch === 1 ? 0 : m * k, strideB: bBatch === 1 ? 0 : k * n, strideC: m * n };
    return ([x, y]: readonly TensorData[], c: TensorData) =>
      gemm({ ...base, ...strides, a: x as FloatArray, b: y as FloatArray, c: c as FloatArray });
  }
  const offsets = (shape: Shape, matrix: number) => {
    const own = shape.slice(0, -2);
    const lead = batchShape.length - own.length;
    const ownStrides = stridesOf(own);
    const outStrides = stridesOf(batchShape);
    return Int32Array.from({ length: batches }, (_, p) => {
      let offset = 0;
      batchShape.forEach((_, i) => {
        const index = Math.floor(p / outStrides[i]) % batchShape[i];
        if (i >= lead && own[i - lead] !== 1) offset += index * ownStrides[i - lead];
      });
      return offset * matrix;
    });
  };
  const aOffsets = offsets(a, m * k);
  const bOffsets = offsets(b, k * n);
  return ([x, y]: readonly TensorData[], c: TensorData) => {
    for (let p = 0; p < batches; p++) {
      gemm({
        ...base,
        a: x as FloatArray,
        aOffset: aOffsets[p],
        b: y as FloatArray,
        bOffset: bOffsets[p],
        c: c as FloatArray,
        cOffset: p * m * n,
      });
    }
  };
}

/**
 * Element (p, i, j) of the product reads row i of A's matrix and column j of B's in batch p; those
 * rows and columns are stored once and shared by the elements that read them.
 */
function productSparsity(a: Shape, b: Shape, out: Shape, t: MatmulAttrs): LocalSparsity {
  const m = out[out.length - 2];
  const n = out[out.length - 1];
  const k = t.transpose_a ? a[a.length - 2] : a[a.length - 1];
  const batchShape = out.slice(0, -2);
  const batches = sizeOf(batchShape);
  const aBatch = broadcastIndex(a.slice(0, -2), batchShape);
  const bBatch = broadcastIndex(b.slice(0, -2), batchShape);
  const aRows = new Int32Array(batches * m * k);
  const bCols = new Int32Array(batches * n * k);
  for (let p = 0; p < batches; p++) {
    for (let q = 0; q < k; q++) {
      for (let i = 0; i < m; i++) aRows[(p * m + i) * k + q] = aBatch[p] * m * k + (t.transpose_a ? q * m + i : i * k + q);
      for (let j = 0; j < n; j++) bCols[(p * n + j) * k + q] = bBatch[p] * k * n + (t.transpose_b ? j * k + q : q * n + j);
    }
  }
  const size = batches * m * n;
  const aRowOf = new Int32Array(size);
  const bRowOf = new Int32Array(size);
  for (let r = 0; r < size; r++) {
    const p = Math.floor(r / (m * n));
    aRowOf[r] = p * m + Math.floor((r % (m * n)) / n);
    bRowOf[r] = p * n + (r % n);
  }
  const rows = (count: number) => Int32Array.from({ length: count + 1 }, (_, r) => r * k);
  return [
    { rowOf: aRowOf, indptr: rows(batches * m), indices: aRows },
    { rowOf: bRowOf, indptr: rows(batches * n), indices: bCols },
  ];
}
