import { describe, expect, it } from "vitest";
import { forward } from "../../src/ad/forward.js";
import { reverse } from "../../src/ad/reverse.js";
import { ScalarProgram } from "../../src/compile/scalar-program.js";
import { GraphBuilder } from "../../src/ir/builder.js";
import { Graph } from "../../src/ir/graph.js";
import { allOps } from "../../src/ops/registry.js";
import { arityRange, type OpDef } from "../../src/ops/types.js";
import { centralGradient, evaluator, reverseGradient, rng } from "../support/numeric.js";

const elementwise = allOps().filter((d) => d.kind === "elementwise");

/** y = op(a0, a1, …) over fresh scalar inputs. */
function opGraph(def: OpDef): Graph {
  const b = new GraphBuilder();
  const n = arityRange(def).min;
  const args = Array.from({ length: n }, (_, i) => b.input(`a${i}`));
  return b.build([{ name: "y", node: b.op(def.name, args) }]);
}

function samplePoint(def: OpDef, next: () => number): number[] {
  return (def.domain ?? []).map(([lo, hi]) => lo + (hi - lo) * next());
}

function ulps(a: number, b: number): number {
  if (Object.is(a, b) || a === b) return 0;
  const v = new DataView(new ArrayBuffer(16));
  v.setFloat64(0, a);
  v.setFloat64(8, b);
  return Math.abs(Number(v.getBigInt64(0) - v.getBigInt64(8)));
}

const differentiable = (def: OpDef) => elementwiseArgs(def).some((k) => def.differentiable?.[k] !== false);
const elementwiseArgs = (def: OpDef) => Array.from({ length: arityRange(def).min }, (_, k) => k);

describe.each(elementwise.map((d) => [d.name, d] as const))("op %s", (_name, def) => {
  it("has a domain for every operand, so that tests can sample it", () => {
    expect(def.domain?.length).toBe(arityRange(def).min);
  });

  it("reproduces its closed-form examples", () => {
    const f = evaluator(opGraph(def));
    for (const ex of def.examples ?? []) {
      const got = f(ex.args);
      expect(ulps(got, ex.value), `${def.name}(${ex.args.join(", ")}) = ${got}, expected ${ex.value}`).toBeLessThanOrEqual(2);
    }
  });

  it.skipIf(!differentiable(def))("reverse mode matches central differences at random points", () => {
    const g = opGraph(def);
    const f = evaluator(g);
    const grad = reverseGradient(g);
    const next = rng(def.name.length * 7919);
    for (let trial = 0; trial < 8; trial++) {
      const x = samplePoint(def, next);
      const ad = grad(x);
      const fd = centralGradient(f, x);
      ad.forEach((d, k) => {
        if (def.differentiable?.[k] === false) return;
        expect(Math.abs(d - fd[k]), `∂${def.name}/∂a${k} at ${x}: AD ${d}, FD ${fd[k]}`).toBeLessThanOrEqual(1e-6 * (1 + Math.abs(fd[k])));
      });
    }
  });

  it.skipIf(!differentiable(def))("forward and reverse agree: vᵀ(J u) = (vᵀJ) u", () => {
    const g = opGraph(def);
    const fwd = forward(g);
    const jvp = new ScalarProgram(fwd.graph, fwd.outputTangents);
    const grad = reverseGradient(g);
    const next = rng(def.name.length * 104729);
    for (let trial = 0; trial < 8; trial++) {
      const x = samplePoint(def, next);
      const u = x.map(() => next() * 2 - 1);
      jvp.setInputs([...x, ...u]);
      jvp.run();
      const viaReverse = grad(x).reduce((s, d, k) => s + d * u[k], 0);
      expect(Math.abs(jvp.output(0) - viaReverse)).toBeLessThanOrEqual(1e-12 * (1 + Math.abs(viaReverse)));
    }
  });

  it.skipIf(!differentiable(def))(
    "its derivative rules differentiate again: reverse-over-reverse matches differences of the gradient",
    () => {
      const g = opGraph(def);
      const first = reverse(g, { cotangent: "seed" });
      const n = g.inputs.length;
      const next = rng(def.name.length * 31337);
      for (let k = 0; k < n; k++) {
        if (def.differentiable?.[k] === false) continue;
        // The k-th partial as a function of its own: differentiate its graph once more.
        const partial = first.graph;
        const second = reverse(new Graph(partial.nodes, partial.inputs, [{ name: "d", node: first.gradients[k] }]), { cotangent: "seed" });
        const hessRow = new ScalarProgram(second.graph, second.gradients);
        const dk = new ScalarProgram(partial, [first.gradients[k]]);
        const dkAt = (x: readonly number[]) => {
          dk.setInputs(x);
          dk.run();
          return dk.output(0);
        };
        for (let trial = 0; trial < 4; trial++) {
          const x = samplePoint(def, next);
          hessRow.setInputs(x);
          hessRow.run();
          const fd = centralGradient(dkAt, x);
          fd.forEach((h, j) => {
            if (def.differentiable?.[j] === false) return;
            const ad = hessRow.output(j);
            expect(Math.abs(ad - h), `∂²${def.name}/∂a${k}∂a${j} at ${x}: AD ${ad}, FD ${h}`).toBeLessThanOrEqual(2e-5 * (1 + Math.abs(h)));
          });
        }
      }
    },
  );

  it.skipIf(!def.kinks?.cases?.length)("takes its documented one-sided derivative at non-differentiable points", () => {
    const g = opGraph(def);
    const grad = reverseGradient(g);
    const fwd = forward(g);
    const jvp = new ScalarProgram(fwd.graph, fwd.outputTangents);
    for (const c of def.kinks?.cases ?? []) {
      const ad = grad(c.args);
      c.partials.forEach((p, k) => {
        expect(ad[k], `reverse ∂${def.name}/∂a${k} at ${c.args}`).toBe(p);
        const unit = c.args.map((_, j) => (j === k ? 1 : 0));
        jvp.setInputs([...c.args, ...unit]);
        jvp.run();
        expect(jvp.output(0), `forward ∂${def.name}/∂a${k} at ${c.args}`).toBe(p);
      });
    }
  });

  it("evaluates identically in the interpreter and in generated code, in float64 and float32", () => {
    const g = opGraph(def);
    const next = rng(def.name.length * 17);
    for (const precision of ["float64", "float32"] as const) {
      const interp = new ScalarProgram(g, [g.outputs[0].node], { precision, tier: "interpreter" });
      const gen = new ScalarProgram(g, [g.outputs[0].node], { precision, tier: "codegen" });
      for (let trial = 0; trial < 8; trial++) {
        const x = samplePoint(def, next);
        interp.setInputs(x);
        interp.run();
        gen.setInputs(x);
        gen.run();
        expect(gen.output(0)).toBe(interp.output(0));
        if (precision === "float32") expect(gen.output(0)).toBe(Math.fround(gen.output(0)));
      }
    }
  });
});

describe("numerically stable forms", () => {
  const at = (name: string, ...x: number[]) => evaluator(opGraph(elementwise.find((d) => d.name === name) as OpDef))(x);
  it("sigmoid and softplus stay finite and exact for large |x|", () => {
    expect(at("sigmoid", 1e4)).toBe(1);
    expect(at("sigmoid", -1e4)).toBe(0);
    expect(at("softplus", 1e4)).toBe(1e4);
    expect(at("softplus", -745)).toBeGreaterThanOrEqual(0);
    expect(at("softplus", -30)).toBeCloseTo(Math.exp(-30), 25);
  });
  it("log1p and expm1 keep full precision near 0", () => {
    // Series: log1p(x) = x − x²/2 + …, expm1(x) = x + x²/2 + …; log(1 + x) would be off by 11%.
    expect(ulps(at("log1p", 1e-15), 1e-15 - 5e-31)).toBeLessThanOrEqual(2);
    expect(ulps(at("expm1", 1e-15), 1e-15 + 5e-31)).toBeLessThanOrEqual(2);
  });
  it("pow takes negative bases with integer exponents, and its derivative there", () => {
    expect(at("pow", -3, 3)).toBe(-27);
    const g = opGraph(elementwise.find((d) => d.name === "pow") as OpDef);
    expect(reverseGradient(g)([-3, 3])[0]).toBe(27);
  });
});
