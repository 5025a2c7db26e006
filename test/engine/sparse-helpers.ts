import type { SparseBlock } from "../../src/engine/modes/index.js";
import type { Value } from "../../src/engine/values.js";

export { bratu } from "../../bench/workloads/bratu.js";

/** A CSR block's data scattered into a dense row-major array. */
export function csrToDense(block: Pick<SparseBlock, "shape" | "indptr" | "indices">, data: ArrayLike<number>): number[] {
  const [rows, cols] = block.shape;
  const out = new Array<number>(rows * cols).fill(0);
  for (let r = 0; r < rows; r++) for (let k = block.indptr[r]; k < block.indptr[r + 1]; k++) out[r * cols + block.indices[k]] = data[k];
  return out;
}

export function denseBlock(v: Value): number[] {
  return typeof v === "number" ? [v] : Array.from(v.data);
}

/** Its Jacobian in closed form: 1 off the diagonal, −2 + h²·exp(x_i) on it. */
export function bratuJacobian(x: Float64Array): number[] {
  const n = x.length;
  const h2 = 1 / (n + 1) ** 2;
  const out = new Array<number>(n * n).fill(0);
  for (let i = 0; i < n; i++) {
    out[i * n + i] = -2 + h2 * Math.exp(x[i]);
    if (i > 0) out[i * n + i - 1] = 1;
    if (i < n - 1) out[i * n + i + 1] = 1;
  }
  return out;
}
