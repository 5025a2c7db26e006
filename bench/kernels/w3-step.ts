/**
 * W3 (../shared/workloads.md) loss + gradient for all four parameters, written directly over the
 * kernels: the matmuls through `matmul` (auto backend), bias, relu and softmax cross-entropy as plain
 * loops. This is the floor for what the compiled tensor programs can reach with these kernels; the
 * data are generated as the workload says and the loss is checked against the published value.
 *
 *   npm run build && node dist/bench/kernels/w3-step.js
 */
import { type FloatArray, type MatmulBackend, matmul } from "../../src/tensor/kernels/index.js";
import { lcg } from "../workloads/lcg.js";

const B = 128;
const IN = 784;
const HID = 256;
const OUT = 10;
const REFERENCE_LOSS = 2.46326573359118;

interface Net<T extends FloatArray> {
  X: T;
  W1: T;
  b1: T;
  W2: T;
  b2: T;
  labels: Int32Array;
  // work and gradients
  H: T;
  Z: T;
  dZ: T;
  dH: T;
  dW1: T;
  db1: T;
  dW2: T;
  db2: T;
}

function generate(f64: boolean): Net<FloatArray> {
  const rnd = lcg(12345);
  const make = (n: number): FloatArray => (f64 ? new Float64Array(n) : new Float32Array(n));
  const fill = (n: number, f: () => number) => {
    const a = make(n);
    for (let i = 0; i < n; i++) a[i] = f();
    return a;
  };
  // Draw order X, W1, b1, W2, b2, labels reproduces the published loss.
  const X = fill(B * IN, rnd);
  const l1 = Math.sqrt(6 / (IN + HID));
  const W1 = fill(IN * HID, () => (2 * rnd() - 1) * l1);
  const b1 = fill(HID, () => (2 * rnd() - 1) * 0.01);
  const l2 = Math.sqrt(6 / (HID + OUT));
  const W2 = fill(HID * OUT, () => (2 * rnd() - 1) * l2);
  const b2 = fill(OUT, () => (2 * rnd() - 1) * 0.01);
  const labels = Int32Array.from({ length: B }, () => Math.floor(rnd() * OUT));
  return {
    X,
    W1,
    b1,
    W2,
    b2,
    labels,
    H: make(B * HID),
    Z: make(B * OUT),
    dZ: make(B * OUT),
    dH: make(B * HID),
    dW1: make(IN * HID),
    db1: make(HID),
    dW2: make(HID * OUT),
    db2: make(OUT),
  };
}

/** One loss + gradient step; returns the loss. */
function step(net: Net<FloatArray>, backend: MatmulBackend): number {
  const { X, W1, b1, W2, b2, labels, H, Z, dZ, dH, dW1, db1, dW2, db2 } = net;
  // H = relu(X·W1 + b1)
  matmul({ m: B, n: HID, k: IN, a: X, b: W1, c: H }, backend);
  for (let i = 0; i < B; i++) {
    const r = i * HID;
    for (let j = 0; j < HID; j++) {
      const v = H[r + j] + b1[j];
      H[r + j] = Math.max(v, 0);
    }
  }
  // Z = H·W2 + b2; loss = mean(logsumexp(z) − z[label]); dZ = (softmax(z) − onehot) / B
  matmul({ m: B, n: OUT, k: HID, a: H, b: W2, c: Z }, backend);
  let loss = 0;
  for (let i = 0; i < B; i++) {
    const r = i * OUT;
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < OUT; j++) {
      Z[r + j] += b2[j];
      if (Z[r + j] > max) max = Z[r + j];
    }
    let sum = 0;
    for (let j = 0; j < OUT; j++) sum += Math.exp(Z[r + j] - max);
    loss += Math.log(sum) + max - Z[r + labels[i]];
    for (let j = 0; j < OUT; j++) dZ[r + j] = Math.exp(Z[r + j] - max) / sum / B;
    dZ[r + labels[i]] -= 1 / B;
  }
  // dW2 = Hᵀ·dZ, db2 = Σ_rows dZ, dH = (dZ·W2ᵀ) ⊙ [H > 0]
  matmul({ m: HID, n: OUT, k: B, a: H, transA: true, b: dZ, c: dW2 }, backend);
  db2.fill(0);
  for (let i = 0; i < B; i++) for (let j = 0; j < OUT; j++) db2[j] += dZ[i * OUT + j];
  matmul({ m: B, n: HID, k: OUT, a: dZ, b: W2, transB: true, c: dH }, backend);
  db1.fill(0);
  for (let i = 0; i < B; i++) {
    const r = i * HID;
    for (let j = 0; j < HID; j++) {
      if (H[r + j] <= 0) dH[r + j] = 0;
      db1[j] += dH[r + j];
    }
  }
  // dW1 = Xᵀ·dH
  matmul({ m: IN, n: HID, k: B, a: X, transA: true, b: dH, c: dW1 }, backend);
  return loss / B;
}

function bench(f64: boolean, backend: MatmulBackend): string {
  const net = generate(f64);
  const loss = step(net, backend);
  const times: number[] = [];
  const t0 = performance.now();
  while (performance.now() - t0 < 1500 && times.length < 400) {
    const t = performance.now();
    step(net, backend);
    times.push(performance.now() - t);
  }
  times.sort((x, y) => x - y);
  const err = Math.abs(loss - REFERENCE_LOSS);
  return `${f64 ? "f64" : "f32"} ${backend.padEnd(5)} loss ${loss.toPrecision(15)} (|Δ| ${err.toExponential(1)}): best ${times[0].toFixed(2)} ms, median ${times[times.length >> 1].toFixed(2)} ms over ${times.length} steps`;
}

console.log("W3 loss + gradient (4 parameters) over the kernels, one thread:");
for (const f64 of [true, false]) for (const backend of ["auto", "js"] as const) console.log(bench(f64, backend));
