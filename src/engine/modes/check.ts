import { selectInputs } from "../../ir/select.js";
import { record } from "../../names.js";
import { type InputData, run } from "../run.js";
import type { Value } from "../values.js";
import { gradient } from "./reverse.js";
import { element } from "./shared.js";
import type { CheckEntry, ModeDefinition } from "./types.js";
import { prepareValue } from "./value.js";

/** The documented pass rule of `check`. */
export const CHECK_RULE =
  "central differences with step h = ∛ε·max(1, |x|) (ε = 2⁻⁵²) per input element; passes when |AD − FD| ≤ 1e-6·max(1, |f|, |AD|, |FD|)";

/** Compares the reverse-mode gradient with central finite differences, element by element. */
export const check: ModeDefinition = {
  evaluate(fn, inputs, options) {
    const single = fn.singleOutput();
    const grad = gradient(fn, inputs, {
      wrt: options.wrt,
      precision: options.precision,
      allowNonFinite: options.allowNonFinite,
      budget: options.budget,
    });
    const valueProgram = prepareValue(fn, options.precision ?? "float64", options.budget);
    const outIndex = fn.graph.outputs.indexOf(single);
    const f = (args: InputData[]) => {
      run(valueProgram.program, args);
      return element(valueProgram.program.read(valueProgram.results[outIndex]), 0);
    };
    const f0 = element(grad.outputs[single.name] as number, 0);
    const entries = record<CheckEntry>();
    let passed = true;
    for (const w of selectInputs(fn.graph, options.wrt)) {
      const k = fn.graph.inputs.findIndex((i) => i.name === w.name);
      const worst = worstElement(f, f0, inputs, k, grad.gradient?.[w.name] as Value);
      if (worst) {
        entries[w.name] = worst;
        passed &&= worst.passed;
      }
    }
    return {
      outputs: grad.outputs,
      gradient: grad.gradient ?? record(),
      check: { passed, inputs: entries, rule: CHECK_RULE },
      ...(grad.nonFinite ? { nonFinite: grad.nonFinite } : {}),
    };
  },
};

/** Input k's entry: the element whose discrepancy most exceeds its tolerance (undefined for no elements). */
function worstElement(f: (args: InputData[]) => number, f0: number, inputs: InputData[], k: number, g: Value): CheckEntry | undefined {
  const base = inputs[k];
  const size = typeof base === "number" ? 1 : base.length;
  const adAt = (e: number) => (typeof g === "number" ? g : g.data[e]);
  let worst: CheckEntry | undefined;
  for (let e = 0; e < size; e++) {
    const x = typeof base === "number" ? base : base[e];
    const step = Math.cbrt(Number.EPSILON) * Math.max(1, Math.abs(x));
    const shifted = (delta: number): InputData[] =>
      inputs.map((v, j) => {
        if (j !== k) return v;
        if (typeof v === "number") return v + delta;
        const copy = Float64Array.from(v);
        copy[e] += delta;
        return copy;
      });
    // The step actually taken (x + h − x is not h exactly in floating point).
    const h = x + step - x;
    const fd = (f(shifted(h)) - f(shifted(-h))) / (2 * h);
    const ad = adAt(e);
    const absolute = Math.abs(ad - fd);
    const scale = Math.max(Math.abs(ad), Math.abs(fd));
    const tolerance = 1e-6 * Math.max(1, Math.abs(f0), scale);
    const entry: CheckEntry = {
      ad,
      fd,
      step: h,
      absolute,
      relative: scale === 0 ? 0 : absolute / scale,
      tolerance,
      passed: absolute <= tolerance,
    };
    if (!worst || !(entry.absolute - entry.tolerance <= worst.absolute - worst.tolerance))
      worst = size > 1 ? { ...entry, element: e, elements: size } : entry;
  }
  return worst;
}
