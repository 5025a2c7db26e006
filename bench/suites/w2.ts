import type { Scalar, Tensor1D } from "@tensorflow/tfjs";
import { reverse } from "../../src/ad/reverse.js";
import { TensorProgram } from "../../src/compile/tensor-program.js";
import { parseExpression } from "../../src/ir/expression.js";
import { type BenchConfig, scaled } from "../config.js";
import { type Contender, interleave, maxRelativeError, relativeError } from "../harness.js";
import { type SectionResult, type TableResult, table } from "../report.js";
import { type Backend, loadTf, perBackend, tidyValue, useBackend } from "../tfjs.js";
import { W2_REFERENCE, W2_SIZES, w2Point, w2Value, w2ValueAndGradient } from "../workloads/w2.js";

/**
 * A W2 implementation in float64: the suite supplies the point (nudged every call), checks the results
 * against the hand-written fused loops, and times it interleaved with everyone else.
 */
export interface W2Implementation {
  readonly name: string;
  /** f at x, gradient written to g (length n). */
  readonly valueAndGradient?: (x: Float64Array, g: Float64Array) => number;
  /** f at x. */
  readonly value?: (x: Float64Array) => number;
}

/**
 * Ours: W2 written with tensor ops, compiled once into tensor programs. The program reads x and writes
 * the gradient in place (bound arrays, no copies), as a service does with decoded request memory.
 */
export function oursW2(n: number): W2Implementation[] {
  const graph = parseExpression("sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)", [{ name: "x", shape: [n] }]);
  const f = graph.outputs[0].node;
  const r = reverse(graph, { cotangent: "seed" });
  const both = new TensorProgram(r.graph, [f, r.gradients[0]]);
  const value = new TensorProgram(graph, [f]);
  const bound = new WeakMap<TensorProgram, TypedArrayPair>();
  const bind = (p: TensorProgram, x: Float64Array, g?: Float64Array) => {
    const last = bound.get(p);
    if (last?.x !== x) p.bindInput(0, x);
    if (g && last?.g !== g) p.bindOutput(r.gradients[0], g);
    bound.set(p, { x, g });
  };
  return [
    {
      name: "ours value+gradient",
      valueAndGradient: (x, g) => {
        bind(both, x, g);
        both.run();
        return both.read(f)[0];
      },
    },
    {
      name: "ours value",
      value: (x) => {
        bind(value, x);
        value.run();
        return value.read(f)[0];
      },
    },
  ];
}

interface TypedArrayPair {
  readonly x: Float64Array;
  readonly g: Float64Array | undefined;
}

const HAND_VG = "hand-written fused loop: value+gradient";
const HAND_V = "hand-written fused loop: value";

export function handW2(): W2Implementation[] {
  return [
    { name: HAND_VG, valueAndGradient: w2ValueAndGradient },
    { name: HAND_V, value: w2Value },
  ];
}

function implementationContenders(impl: W2Implementation, n: number, refF: number, refG: Float64Array): Contender[] {
  const out: Contender[] = [];
  const base = w2Point(n);
  const x0 = base[0];
  if (impl.valueAndGradient) {
    const vg = impl.valueAndGradient;
    const x = base.slice();
    const g = new Float64Array(n);
    const f = vg(x, g);
    const ok = relativeError(f, refF) <= 1e-12 && maxRelativeError(g, refG) <= 1e-12;
    out.push({
      name: impl.name.endsWith("value+gradient") ? impl.name : `${impl.name}: value+gradient`,
      note: `${ok ? "ok" : "MISMATCH"} f ${relativeError(f, refF).toExponential(1)} ∇ ${maxRelativeError(g, refG).toExponential(1)}`,
      run(calls) {
        let s = 0;
        for (let i = 0; i < calls; i++) {
          x[0] = x0 + (i & 15) * 1e-6;
          s += vg(x, g) + g[1];
        }
        return s;
      },
    });
  }
  if (impl.value) {
    const v = impl.value;
    const x = base.slice();
    const f = v(x);
    out.push({
      name: impl.name.endsWith("value") ? impl.name : `${impl.name}: value`,
      note: `${relativeError(f, refF) <= 1e-12 ? "ok" : "MISMATCH"} f ${relativeError(f, refF).toExponential(1)}`,
      run(calls) {
        let s = 0;
        for (let i = 0; i < calls; i++) {
          x[0] = x0 + (i & 15) * 1e-6;
          s += v(x);
        }
        return s;
      },
    });
  }
  return out;
}

async function tfjsContenders(n: number, refF: number, refG: Float64Array): Promise<Contender[]> {
  const tf = await loadTf();
  const rosenbrock = (x: Tensor1D): Scalar => {
    const head = x.slice(0, n - 1);
    const tail = x.slice(1, n - 1);
    const d = tail.sub(head.square());
    const e = tf.scalar(1).sub(head);
    return d.square().mul(100).add(e.square()).sum();
  };
  const vg = perBackend(() => tf.valueAndGrad(rosenbrock));
  const out: Contender[] = [];
  for (const backend of ["cpu", "wasm"] as Backend[]) {
    await useBackend(backend);
    const x32 = Float32Array.from(w2Point(n));
    const x0 = x32[0];
    const call = (): { f: number; g: Float32Array } =>
      tidyValue(() => {
        const { value, grad } = vg(backend)(tf.tensor1d(x32));
        return { f: value.dataSync()[0], g: grad.dataSync() as Float32Array };
      });
    const first = call();
    out.push({
      name: `tfjs ${backend} valueAndGrad (f32)`,
      note: `f ${relativeError(first.f, refF).toExponential(1)} ∇ ${maxRelativeError(first.g, refG).toExponential(1)} (float32)`,
      before: () => useBackend(backend),
      run(calls) {
        let s = 0;
        for (let i = 0; i < calls; i++) {
          x32[0] = x0 + (i & 15) * 1e-3;
          const r = call();
          s += r.f + r.g[1];
        }
        return s;
      },
    });
  }
  return out;
}

export async function benchW2(config: BenchConfig): Promise<SectionResult> {
  const tables: TableResult[] = [];
  const summary: Record<string, number | string> = {};
  const notes: string[] = [];
  for (const n of W2_SIZES) {
    const x = w2Point(n);
    const refG = new Float64Array(n);
    const refF = w2ValueAndGradient(x, refG);
    notes.push(
      `n = ${n}: f = ${refF} (published ${W2_REFERENCE[n]}, relative difference ${relativeError(refF, W2_REFERENCE[n]).toExponential(1)})`,
    );
    const contenders: Contender[] = [];
    for (const impl of [...handW2(), ...oursW2(n)]) contenders.push(...implementationContenders(impl, n, refF, refG));
    if (config.tfjs) contenders.push(...(await tfjsContenders(n, refF, refG)));
    const big = n >= 100_000;
    const m = await interleave(contenders, {
      rounds: scaled(config, big ? 15 : 40, big ? 4 : 10),
      targetMs: scaled(config, big ? 20 : 5, big ? 10 : 3),
      warmupMs: scaled(config, 2000, 500),
      maxMs: scaled(config, 30_000, 8000),
    });
    tables.push(table(`n = ${n.toLocaleString("en")}`, m, HAND_VG));
    const names = new Set(contenders.map((c) => c.name));
    const hand = m.rows.find((r) => r.name === HAND_VG);
    summary[`n=${n}: hand-written value+gradient (µs)`] = hand?.medianUs ?? Number.NaN;
    summary[`n=${n}: hand-written value+gradient ÷ value`] = m.ratio(HAND_VG, HAND_V).median;
    if (names.has("ours value+gradient")) summary[`n=${n}: ours v+g ÷ hand-written v+g`] = m.ratio("ours value+gradient", HAND_VG).median;
    for (const backend of ["cpu", "wasm"]) {
      const name = `tfjs ${backend} valueAndGrad (f32)`;
      if (names.has(name)) summary[`n=${n}: tfjs ${backend} ÷ hand-written v+g`] = m.ratio(name, HAND_VG).median;
    }
  }
  notes.push(
    "float64 contenders get x[0] nudged every call (16 values); tfjs uploads x as float32 and reads f and ∇f back on every call.",
    "ours: the expression compiled to tensor programs (fused loops, zero padding read in place, the gradient's sum written by accumulation); x and ∇f bound in place.",
    "published, n = 100,000: hand-written ≈ 0.43 ms, PyTorch ≈ 3.96 ms, tfjs wasm ≈ 4.55 ms, tfjs cpu ≈ 81 ms; n = 1,000: hand-written ≈ 2.6 µs, PyTorch ≈ 193 µs.",
  );
  return { id: "w2", title: "W2 — extended Rosenbrock, value + gradient", tables, summary, notes };
}
