import type { TensorData } from "../ops/types.js";
import { type Shape, sizeOf, stridesOf } from "./shape.js";

/** A plain i-k-j matmul over broadcast batches; the optimised kernels replace it. */
export function matmulKernel(a: Shape, b: Shape, out: Shape, t: { transpose_a: boolean; transpose_b: boolean }) {
  const m = out[out.length - 2];
  const n = out[out.length - 1];
  const k = t.transpose_a ? a[a.length - 2] : a[a.length - 1];
  const batch = out.slice(0, -2);
  const batchStride = (shape: Shape) => {
    const own = shape.slice(0, -2);
    const lead = batch.length - own.length;
    const strides = stridesOf(own);
    return batch.map((d, i) => (i < lead || own[i - lead] !== d ? 0 : strides[i - lead]));
  };
  const aBatch = batchStride(a);
  const bBatch = batchStride(b);
  const batches = sizeOf(batch);
  const aMat = m * k;
  const bMat = k * n;
  const outer = stridesOf(batch);
  return (args: readonly TensorData[], c: TensorData) => {
    const [A, B] = args;
    c.fill(0);
    for (let p = 0; p < batches; p++) {
      let ao = 0;
      let bo = 0;
      let rem = p;
      for (let i = 0; i < batch.length; i++) {
        const idx = Math.floor(rem / outer[i]);
        rem -= idx * outer[i];
        ao += idx * aBatch[i];
        bo += idx * bBatch[i];
      }
      ao *= aMat;
      bo *= bMat;
      const co = p * m * n;
      for (let i = 0; i < m; i++) {
        for (let q = 0; q < k; q++) {
          const av = t.transpose_a ? A[ao + q * m + i] : A[ao + i * k + q];
          for (let j = 0; j < n; j++) c[co + i * n + j] += av * (t.transpose_b ? B[bo + j * k + q] : B[bo + q * n + j]);
        }
      }
    }
  };
}
