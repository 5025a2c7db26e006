import { lcg } from "./lcg.js";

/**
 * W3: one training step of a small network (../shared/workloads.md). Batch 128 of 784 inputs; dense
 * 784→256 with bias, relu, dense 256→10 with bias; mean softmax cross-entropy over integer labels.
 * The data come from the shared generator seeded 12345. The published loss is reproduced (exactly) with
 * the draws in the order X, W1, b1, W2, b2, labels (layer by layer, not the order the text lists
 * them in); W is [fan_in × fan_out] row-major, Glorot-uniform (2r − 1)·√(6/(fan_in + fan_out)); biases
 * (2r − 1)·0.01; labels ⌊10r⌋.
 */

export const W3_BATCH = 128;
export const W3_INPUTS = 784;
export const W3_HIDDEN = 256;
export const W3_CLASSES = 10;
export const W3_SEED = 12345;
/** Published loss at the generated point (float64). */
export const W3_REFERENCE_LOSS = 2.46326573359118;

export interface W3Params {
  /** [784 × 256], row-major. */
  readonly W1: Float64Array;
  readonly b1: Float64Array;
  /** [256 × 10], row-major. */
  readonly W2: Float64Array;
  readonly b2: Float64Array;
}

export interface W3Data extends W3Params {
  /** [128 × 784], row-major, uniform in [0, 1). */
  readonly X: Float64Array;
  readonly labels: Int32Array;
}

export function generateW3(): W3Data {
  const rnd = lcg(W3_SEED);
  const uniform = (length: number, limit: number) => Float64Array.from({ length }, () => (2 * rnd() - 1) * limit);
  const X = Float64Array.from({ length: W3_BATCH * W3_INPUTS }, () => rnd());
  const W1 = uniform(W3_INPUTS * W3_HIDDEN, Math.sqrt(6 / (W3_INPUTS + W3_HIDDEN)));
  const b1 = uniform(W3_HIDDEN, 0.01);
  const W2 = uniform(W3_HIDDEN * W3_CLASSES, Math.sqrt(6 / (W3_HIDDEN + W3_CLASSES)));
  const b2 = uniform(W3_CLASSES, 0.01);
  const labels = Int32Array.from({ length: W3_BATCH }, () => Math.floor(rnd() * W3_CLASSES));
  return { X, W1, b1, W2, b2, labels };
}

/** Work buffers of the hand-written step, allocated once. */
export interface W3Workspace {
  readonly H: Float64Array;
  readonly Z: Float64Array;
  readonly dZ: Float64Array;
  readonly dH: Float64Array;
}

export function w3Workspace(): W3Workspace {
  return {
    H: new Float64Array(W3_BATCH * W3_HIDDEN),
    Z: new Float64Array(W3_BATCH * W3_CLASSES),
    dZ: new Float64Array(W3_BATCH * W3_CLASSES),
    dH: new Float64Array(W3_BATCH * W3_HIDDEN),
  };
}

/** Forward pass, naive loops (inner loops run along rows): fills H = relu(X·W1 + b1) and Z, returns the loss. */
export function w3Loss(X: Float64Array, labels: Int32Array, p: W3Params, ws: W3Workspace): number {
  const { H, Z } = ws;
  const { W1, b1, W2, b2 } = p;
  for (let i = 0; i < W3_BATCH; i++) {
    const h = i * W3_HIDDEN;
    for (let j = 0; j < W3_HIDDEN; j++) H[h + j] = b1[j];
    for (let k = 0; k < W3_INPUTS; k++) {
      const xik = X[i * W3_INPUTS + k];
      const w = k * W3_HIDDEN;
      for (let j = 0; j < W3_HIDDEN; j++) H[h + j] += xik * W1[w + j];
    }
    for (let j = 0; j < W3_HIDDEN; j++) if (H[h + j] < 0) H[h + j] = 0;
  }
  let loss = 0;
  for (let i = 0; i < W3_BATCH; i++) {
    const z = i * W3_CLASSES;
    for (let c = 0; c < W3_CLASSES; c++) Z[z + c] = b2[c];
    for (let j = 0; j < W3_HIDDEN; j++) {
      const a = H[i * W3_HIDDEN + j];
      const w = j * W3_CLASSES;
      for (let c = 0; c < W3_CLASSES; c++) Z[z + c] += a * W2[w + c];
    }
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < W3_CLASSES; c++) if (Z[z + c] > max) max = Z[z + c];
    let sum = 0;
    for (let c = 0; c < W3_CLASSES; c++) sum += Math.exp(Z[z + c] - max);
    loss += max + Math.log(sum) - Z[z + labels[i]];
  }
  return loss / W3_BATCH;
}

/** Forward and backward pass, naive loops; writes the gradient of every parameter into `grad`, returns the loss. */
export function w3LossAndGradient(X: Float64Array, labels: Int32Array, p: W3Params, grad: W3Params, ws: W3Workspace): number {
  const loss = w3Loss(X, labels, p, ws);
  const { H, Z, dZ, dH } = ws;
  const { W2 } = p;
  // dZ = (softmax(Z) − onehot(labels)) / batch
  for (let i = 0; i < W3_BATCH; i++) {
    const z = i * W3_CLASSES;
    let max = Number.NEGATIVE_INFINITY;
    for (let c = 0; c < W3_CLASSES; c++) if (Z[z + c] > max) max = Z[z + c];
    let sum = 0;
    for (let c = 0; c < W3_CLASSES; c++) {
      const e = Math.exp(Z[z + c] - max);
      dZ[z + c] = e;
      sum += e;
    }
    for (let c = 0; c < W3_CLASSES; c++) dZ[z + c] = dZ[z + c] / sum / W3_BATCH;
    dZ[z + labels[i]] -= 1 / W3_BATCH;
  }
  // dW2 = Hᵀ·dZ, db2 = Σ dZ, dH = (dZ·W2ᵀ) ⊙ [H > 0]
  const { W1: dW1, b1: db1, W2: dW2, b2: db2 } = grad as { W1: Float64Array; b1: Float64Array; W2: Float64Array; b2: Float64Array };
  dW2.fill(0);
  db2.fill(0);
  for (let i = 0; i < W3_BATCH; i++) {
    const z = i * W3_CLASSES;
    for (let c = 0; c < W3_CLASSES; c++) db2[c] += dZ[z + c];
    for (let j = 0; j < W3_HIDDEN; j++) {
      const a = H[i * W3_HIDDEN + j];
      const w = j * W3_CLASSES;
      let s = 0;
      for (let c = 0; c < W3_CLASSES; c++) {
        dW2[w + c] += a * dZ[z + c];
        s += dZ[z + c] * W2[w + c];
      }
      dH[i * W3_HIDDEN + j] = a > 0 ? s : 0;
    }
  }
  // dW1 = Xᵀ·dH, db1 = Σ dH
  dW1.fill(0);
  db1.fill(0);
  for (let i = 0; i < W3_BATCH; i++) {
    const h = i * W3_HIDDEN;
    for (let j = 0; j < W3_HIDDEN; j++) db1[j] += dH[h + j];
    for (let k = 0; k < W3_INPUTS; k++) {
      const xik = X[i * W3_INPUTS + k];
      const w = k * W3_HIDDEN;
      for (let j = 0; j < W3_HIDDEN; j++) dW1[w + j] += xik * dH[h + j];
    }
  }
  return loss;
}

/** Zeroed parameter-shaped buffers, for gradients. */
export function w3ZeroParams(): W3Params {
  return {
    W1: new Float64Array(W3_INPUTS * W3_HIDDEN),
    b1: new Float64Array(W3_HIDDEN),
    W2: new Float64Array(W3_HIDDEN * W3_CLASSES),
    b2: new Float64Array(W3_CLASSES),
  };
}
