import type { Scalar, Tensor, Tensor1D, Tensor2D } from "@tensorflow/tfjs";
import { reverse } from "../../src/ad/reverse.js";
import { TensorProgram } from "../../src/compile/tensor-program.js";
import { compileModel } from "../../src/ir/model.js";
import { type BenchConfig, scaled } from "../config.js";
import { type Contender, interleave, maxRelativeError, relativeError } from "../harness.js";
import { type SectionResult, table } from "../report.js";
import { type Backend, loadTf, perBackend, tidyValue, useBackend } from "../tfjs.js";
import {
  generateW3,
  W3_BATCH,
  W3_CLASSES,
  W3_HIDDEN,
  W3_INPUTS,
  W3_REFERENCE_LOSS,
  type W3Data,
  type W3Params,
  w3Loss,
  w3LossAndGradient,
  w3Workspace,
  w3ZeroParams,
} from "../workloads/w3.js";

/**
 * A W3 implementation in float64: loss (and gradients of W1, b1, W2, b2) of one step on the fixed batch.
 * The suite supplies the parameters (b2[0] nudged every call), checks against the hand-written loops
 * and times it interleaved with the rest.
 */
export interface W3Implementation {
  readonly name: string;
  readonly lossAndGradient?: (data: W3Data, params: W3Params, grad: W3Params) => number;
  readonly loss?: (data: W3Data, params: W3Params) => number;
}

/**
 * Ours: the W3 network as a model definition, compiled to the graph IR, differentiated in reverse
 * mode with respect to the four parameters, and run as a tensor program (WebAssembly SIMD matmuls,
 * fused elementwise loops). Data, parameters and gradients are bound in place: no copies.
 */
export function oursW3(): W3Implementation[] {
  const model = compileModel(
    {
      input: [W3_INPUTS],
      layers: [{ type: "dense", units: W3_HIDDEN, name: "fc1" }, { type: "relu" }, { type: "dense", units: W3_CLASSES, name: "fc2" }],
      loss: "softmax_cross_entropy",
    },
    W3_BATCH,
  );
  const graph = model.graph;
  const loss = graph.outputs[0].node;
  const names = ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"];
  const r = reverse(graph, { cotangent: "seed", wrt: names });
  const both = new TensorProgram(r.graph, [loss, ...r.gradients]);
  const lossOnly = new TensorProgram(graph, [loss]);
  const order = (d: W3Data, p: W3Params) => {
    const byName: Record<string, Float64Array | Int32Array> = {
      x: d.X,
      y: d.labels,
      "fc1.weight": p.W1,
      "fc1.bias": p.b1,
      "fc2.weight": p.W2,
      "fc2.bias": p.b2,
    };
    return graph.inputs.map((i) => byName[i.name]);
  };
  const bound = new Map<TensorProgram, unknown[]>();
  const bind = (program: TensorProgram, inputs: (Float64Array | Int32Array)[], grads?: W3Params) => {
    const last = bound.get(program) ?? [];
    inputs.forEach((data, k) => {
      if (last[k] !== data) program.bindInput(k, data);
    });
    const outs = grads ? [grads.W1, grads.b1, grads.W2, grads.b2] : [];
    outs.forEach((data, k) => {
      if (last[inputs.length + k] !== data) program.bindOutput(r.gradients[k], data);
    });
    bound.set(program, [...inputs, ...outs]);
  };
  return [
    {
      name: "ours loss+gradient",
      lossAndGradient: (d, p, g) => {
        bind(both, order(d, p), g);
        both.run();
        return both.read(loss)[0];
      },
    },
    {
      name: "ours loss",
      loss: (d, p) => {
        bind(lossOnly, order(d, p));
        lossOnly.run();
        return lossOnly.read(loss)[0];
      },
    },
  ];
}

const HAND_LG = "hand-written naive loops: loss+gradient";
const HAND_L = "hand-written naive loops: loss";

export function handW3(): W3Implementation[] {
  const ws = w3Workspace();
  return [
    { name: HAND_LG, lossAndGradient: (d, p, g) => w3LossAndGradient(d.X, d.labels, p, g, ws) },
    { name: HAND_L, loss: (d, p) => w3Loss(d.X, d.labels, p, ws) },
  ];
}

const copyParams = (p: W3Params): W3Params => ({ W1: p.W1.slice(), b1: p.b1.slice(), W2: p.W2.slice(), b2: p.b2.slice() });
const gradientError = (g: W3Params, ref: W3Params): number =>
  Math.max(maxRelativeError(g.W1, ref.W1), maxRelativeError(g.b1, ref.b1), maxRelativeError(g.W2, ref.W2), maxRelativeError(g.b2, ref.b2));

function implementationContenders(impl: W3Implementation, data: W3Data, refLoss: number, refGrad: W3Params): Contender[] {
  const out: Contender[] = [];
  if (impl.lossAndGradient) {
    const lg = impl.lossAndGradient;
    const p = copyParams(data);
    const g = w3ZeroParams();
    const loss = lg(data, p, g);
    const el = relativeError(loss, refLoss);
    const eg = gradientError(g, refGrad);
    out.push({
      name: impl.name.endsWith("loss+gradient") ? impl.name : `${impl.name}: loss+gradient`,
      note: `${el <= 1e-12 && eg <= 1e-10 ? "ok" : "MISMATCH"} loss ${el.toExponential(1)} ∇ ${eg.toExponential(1)}`,
      run(calls) {
        let s = 0;
        for (let i = 0; i < calls; i++) {
          p.b2[0] = data.b2[0] + (i & 15) * 1e-6;
          s += lg(data, p, g) + g.b2[0];
        }
        return s;
      },
    });
  }
  if (impl.loss) {
    const l = impl.loss;
    const p = copyParams(data);
    const el = relativeError(l(data, p), refLoss);
    out.push({
      name: impl.name.endsWith("loss") ? impl.name : `${impl.name}: loss`,
      note: `${el <= 1e-12 ? "ok" : "MISMATCH"} loss ${el.toExponential(1)}`,
      run(calls) {
        let s = 0;
        for (let i = 0; i < calls; i++) {
          p.b2[0] = data.b2[0] + (i & 15) * 1e-6;
          s += l(data, p);
        }
        return s;
      },
    });
  }
  return out;
}

async function tfjsContenders(data: W3Data, refLoss: number, refGrad: W3Params): Promise<Contender[]> {
  const tf = await loadTf();
  // Per backend, made while it is active: the batch (resident, as data would be) and the functions.
  const state = perBackend(() => {
    const X = tf.tensor2d(Float32Array.from(data.X), [W3_BATCH, W3_INPUTS]);
    const Y = tf.oneHot(tf.tensor1d(data.labels, "int32"), W3_CLASSES);
    const loss = (W1: Tensor, b1: Tensor, W2: Tensor, b2: Tensor): Scalar => {
      const hidden = tf.relu(tf.add(tf.matMul(X, W1 as Tensor2D), b1));
      const logits = tf.add(tf.matMul(hidden, W2 as Tensor2D), b2);
      return tf.losses.softmaxCrossEntropy(Y, logits) as Scalar;
    };
    return { loss, vg: tf.valueAndGrads(loss) };
  });
  const out: Contender[] = [];
  for (const backend of ["cpu", "wasm"] as Backend[]) {
    await useBackend(backend);
    const s = state(backend);
    const p32 = {
      W1: Float32Array.from(data.W1),
      b1: Float32Array.from(data.b1),
      W2: Float32Array.from(data.W2),
      b2: Float32Array.from(data.b2),
    };
    const b20 = p32.b2[0];
    // Parameters are uploaded on every call (they change every step); loss and gradients are read back.
    const upload = (): Tensor[] => [
      tf.tensor2d(p32.W1, [W3_INPUTS, W3_HIDDEN]),
      tf.tensor1d(p32.b1) as Tensor1D,
      tf.tensor2d(p32.W2, [W3_HIDDEN, W3_CLASSES]),
      tf.tensor1d(p32.b2) as Tensor1D,
    ];
    const lossAndGradient = () =>
      tidyValue(() => {
        const { value, grads } = s.vg(upload());
        const [W1, b1, W2, b2] = grads.map((g) => Float64Array.from(g.dataSync()));
        return { loss: value.dataSync()[0], grad: { W1, b1, W2, b2 } as W3Params };
      });
    const lossOnly = () =>
      tidyValue(() => {
        const [W1, b1, W2, b2] = upload();
        return s.loss(W1, b1, W2, b2).dataSync()[0];
      });
    const first = lossAndGradient();
    out.push({
      name: `tfjs ${backend} loss+gradient (f32)`,
      note: `loss ${relativeError(first.loss, refLoss).toExponential(1)} ∇ ${gradientError(first.grad, refGrad).toExponential(1)} (float32)`,
      calls: 1,
      before: () => useBackend(backend),
      run(calls) {
        let t = 0;
        for (let i = 0; i < calls; i++) {
          p32.b2[0] = b20 + (i & 15) * 1e-6;
          const r = lossAndGradient();
          t += r.loss + r.grad.b2[0];
        }
        return t;
      },
    });
    out.push({
      name: `tfjs ${backend} loss (f32)`,
      note: `loss ${relativeError(lossOnly(), refLoss).toExponential(1)} (float32)`,
      before: () => useBackend(backend),
      run(calls) {
        let t = 0;
        for (let i = 0; i < calls; i++) {
          p32.b2[0] = b20 + (i & 15) * 1e-6;
          t += lossOnly();
        }
        return t;
      },
    });
  }
  return out;
}

export async function benchW3(config: BenchConfig): Promise<SectionResult> {
  const data = generateW3();
  const refGrad = w3ZeroParams();
  const refLoss = w3LossAndGradient(data.X, data.labels, data, refGrad, w3Workspace());
  const contenders: Contender[] = [];
  for (const impl of [...handW3(), ...oursW3()]) contenders.push(...implementationContenders(impl, data, refLoss, refGrad));
  if (config.tfjs) contenders.push(...(await tfjsContenders(data, refLoss, refGrad)));
  const m = await interleave(contenders, {
    rounds: scaled(config, 12, 3),
    minRounds: 3,
    targetMs: scaled(config, 40, 20),
    warmupMs: scaled(config, 3000, 500),
    maxMs: scaled(config, 25_000, 6000),
  });
  const names = new Set(contenders.map((c) => c.name));
  const summary: Record<string, number | string> = {
    "hand-written loss+gradient (µs)": m.rows.find((r) => r.name === HAND_LG)?.medianUs ?? Number.NaN,
    "hand-written loss+gradient ÷ loss": m.ratio(HAND_LG, HAND_L).median,
  };
  if (names.has("ours loss+gradient")) summary["ours loss+gradient ÷ hand-written"] = m.ratio("ours loss+gradient", HAND_LG).median;
  for (const backend of ["cpu", "wasm"]) {
    if (!names.has(`tfjs ${backend} loss+gradient (f32)`)) continue;
    summary[`tfjs ${backend} loss+gradient ÷ hand-written`] = m.ratio(`tfjs ${backend} loss+gradient (f32)`, HAND_LG).median;
    summary[`tfjs ${backend} loss ÷ hand-written loss`] = m.ratio(`tfjs ${backend} loss (f32)`, HAND_L).median;
  }
  return {
    id: "w3",
    title: "W3 — one training step, 784→256 relu→10, batch 128",
    tables: [table("loss (+ gradients of W1, b1, W2, b2)", m, HAND_LG)],
    summary,
    notes: [
      `loss ${refLoss} (published ${W3_REFERENCE_LOSS}, relative difference ${relativeError(refLoss, W3_REFERENCE_LOSS).toExponential(1)})`,
      "hand-written: plain loops, inner loops along rows (bench/workloads/w3.ts), float64; tfjs: float32, the batch resident on the backend, parameters uploaded and results read back every call.",
      "ours: the model definition compiled to a tensor program (WebAssembly SIMD matmuls, fused loops); data, parameters and gradients bound in place.",
      "published: naive hand-written ≈ 70 ms, tfjs wasm ≈ 48 ms (loss only ≈ 3.6 ms), tfjs cpu ≈ 340 ms, PyTorch ≈ 3.56 ms f64 / 1.51 ms f32 (loss only ≈ 1.31 ms).",
    ],
  };
}
