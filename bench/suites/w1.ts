import type { Tensor } from "@tensorflow/tfjs";
import { reverse } from "../../src/ad/reverse.js";
import { ScalarProgram } from "../../src/compile/scalar-program.js";
import { CompiledFunction, type Evaluation } from "../../src/engine/compiled-function.js";
import { parseExpression } from "../../src/ir/expression.js";
import { type BenchConfig, scaled, verdict } from "../config.js";
import { type Contender, interleave, maxRelativeError } from "../harness.js";
import { type SectionResult, table } from "../report.js";
import { type Backend, loadTf, perBackend, tidyValue, useBackend } from "../tfjs.js";
import { W1_EXPRESSION, W1_POINT, W1_REFERENCE, w1ValueAndGradient } from "../workloads/w1.js";

const REF = [W1_REFERENCE.f, W1_REFERENCE.x1, W1_REFERENCE.x2];
const check = (got: ArrayLike<number>, tolerance: number): string => {
  const e = maxRelativeError(got, REF);
  return `${e <= tolerance ? "ok" : "MISMATCH"} ${e.toExponential(1)}`;
};
/** The point moves a little on every call (16 values of x1), the same for every contender. */
const x1At = (i: number): number => W1_POINT.x1 + (i & 15) * 1e-3;
const X2 = W1_POINT.x2;

const HAND = "hand-written closed form";
const OURS = "ours: ScalarProgram direct";

export async function benchW1(config: BenchConfig): Promise<SectionResult> {
  const contenders: Contender[] = [];
  const out = new Float64Array(3);
  w1ValueAndGradient(W1_POINT.x1, W1_POINT.x2, out);
  contenders.push({
    name: HAND,
    note: check(out, 1e-15),
    run(n) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        w1ValueAndGradient(x1At(i), X2, out);
        s += out[0] + out[1] + out[2];
      }
      return s;
    },
  });

  // (b) our compiled program, driven directly.
  const compileStart = performance.now();
  const graph = parseExpression(W1_EXPRESSION);
  const r = reverse(graph, { cotangent: "seed" });
  const program = new ScalarProgram(r.graph, [graph.outputs[0].node, ...r.gradients]);
  const compileMs = performance.now() - compileStart;
  const inputs = new Float64Array([W1_POINT.x1, W1_POINT.x2]);
  program.setInputs(inputs);
  program.run();
  contenders.push({
    name: OURS,
    note: `${check([program.output(0), program.output(1), program.output(2)], 4e-16)} (${program.tier})`,
    run(n) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        inputs[0] = x1At(i);
        program.setInputs(inputs);
        program.run();
        s += program.output(0) + program.output(1) + program.output(2);
      }
      return s;
    },
  });

  // (c) the public API: named inputs in, named outputs out.
  const fn = new CompiledFunction(parseExpression(W1_EXPRESSION));
  const request = { mode: "reverse" } as const;
  // Scalar functions give plain numbers (outputs are typed number | tensor since tensors arrived).
  const scalars = (e: Evaluation) => [e.outputs.f, e.gradient?.x1, e.gradient?.x2] as [number, number, number];
  contenders.push({
    name: "ours: CompiledFunction.evaluate",
    note: check(scalars(fn.evaluate(W1_POINT, request)), 4e-16),
    run(n) {
      let s = 0;
      for (let i = 0; i < n; i++) {
        const [f, g1, g2] = scalars(fn.evaluate({ x1: x1At(i), x2: X2 }, request));
        s += f + g1 + g2;
      }
      return s;
    },
  });

  // (d) tfjs valueAndGrads, float32, inputs uploaded and results read back on every call.
  if (config.tfjs) {
    const tf = await loadTf();
    const vg = perBackend(() => tf.valueAndGrads((x1: Tensor, x2: Tensor) => x1.mul(tf.exp(x1.square().add(x2.square()).mul(-0.5)))));
    for (const backend of ["cpu", "wasm"] as Backend[]) {
      await useBackend(backend);
      const call = (x1: number): [number, number, number] =>
        tidyValue(() => {
          const { value, grads } = vg(backend)([tf.scalar(x1), tf.scalar(X2)]);
          return [value.dataSync()[0], grads[0].dataSync()[0], grads[1].dataSync()[0]];
        });
      contenders.push({
        name: `tfjs ${backend} valueAndGrads (f32)`,
        note: check(call(W1_POINT.x1), 1e-6),
        before: () => useBackend(backend),
        run(n) {
          let s = 0;
          for (let i = 0; i < n; i++) {
            const [f, g1, g2] = call(x1At(i));
            s += f + g1 + g2;
          }
          return s;
        },
      });
    }
  }

  const m = await interleave(contenders, {
    rounds: scaled(config, 60, 15),
    targetMs: scaled(config, 4, 2),
    warmupMs: scaled(config, 2000, 500),
    maxMs: scaled(config, 20_000, 5000),
  });
  const ours = m.rows.find((row) => row.name === OURS);
  const summary: Record<string, number | string> = {
    "ours per value+gradient call (µs)": ours?.medianUs ?? Number.NaN,
    "ours ÷ hand-written": m.ratio(OURS, HAND).median,
    "target: ours < 0.1 µs per call": verdict(config, (ours?.medianUs ?? Number.POSITIVE_INFINITY) < 0.1),
    "evaluate API ÷ hand-written": m.ratio("ours: CompiledFunction.evaluate", HAND).median,
    "compile: parse + reverse + ScalarProgram (ms)": compileMs,
  };
  if (config.tfjs) {
    summary["tfjs cpu ÷ ours"] = m.ratio("tfjs cpu valueAndGrads (f32)", OURS).median;
    summary["tfjs wasm ÷ ours"] = m.ratio("tfjs wasm valueAndGrads (f32)", OURS).median;
  }
  return {
    id: "w1",
    title: "W1 — worked example x1·exp(−½(x1²+x2²)), value + gradient per call",
    tables: [table("value + gradient (2 inputs)", m, HAND)],
    summary,
    notes: [
      "x1 steps through 16 values near 2 from call to call, for every contender; each call's three results are summed into a sink.",
      "published (other session, same kind of machine): hand-written ≈ 0.024 µs, PyTorch ≈ 83 µs, tfjs cpu ≈ 200 µs, tfjs wasm ≈ 255 µs.",
    ],
  };
}
