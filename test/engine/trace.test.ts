import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { parseExpression } from "../../src/ir/expression.js";
import { builtFile } from "../build-output.js";

const E = Math.exp(-2.125);
const worked = () => new CompiledFunction(parseExpression("x1*exp(-0.5*(x1^2+x2^2))"));

describe("the trace of the worked example", () => {
  it("shows the textbook reverse sweep: inputs, intermediates, f last; seed 1 at f; adjoints of the inputs are the gradient", () => {
    const r = worked().evaluate({ x1: 2, x2: 0.5 }, { mode: "reverse", trace: true });
    const rows = r.trace?.rows ?? [];
    expect(rows.map((row) => [row.id, row.op, row.args])).toEqual([
      ["x1", "input", []],
      ["x2", "input", []],
      ["v1", "square", ["x1"]],
      ["v2", "square", ["x2"]],
      ["v3", "add", ["v1", "v2"]],
      ["v4", "mul", [-0.5, "v3"]],
      ["v5", "exp", ["v4"]],
      ["f", "mul", ["x1", "v5"]],
    ]);
    const byId = Object.fromEntries(rows.map((row) => [row.id, row]));
    expect(byId.v3.value).toBe(4.25);
    expect(byId.v4.value).toBe(-2.125);
    expect(byId.v5.value).toBe(E);
    expect(byId.f.value).toBe(r.outputs.f);
    expect(byId.f.output).toBe("f");
    // ū_f = 1, ū_v5 = x1, ū_v4 = x1·e^v4, ū_v3 = −½ ū_v4, ū_v1 = ū_v2 = ū_v3.
    expect(r.trace?.seed).toEqual({ id: "f", adjoint: 1 });
    expect(byId.f.adjoint).toBe(1);
    expect(byId.v5.adjoint).toBe(2);
    expect(byId.v4.adjoint).toBe(2 * E);
    expect(byId.v3.adjoint).toBe(-E);
    expect(byId.x1.adjoint).toBe(r.gradient?.x1);
    expect(byId.x2.adjoint).toBe(r.gradient?.x2);
    expect(byId.x1.adjoint).toBeCloseTo(-3 * E, 15);
  });

  it("shows tangents in forward mode, one column per input swept", () => {
    const r = worked().evaluate({ x1: 2, x2: 0.5 }, { mode: "forward", trace: true });
    const byId = Object.fromEntries((r.trace?.rows ?? []).map((row) => [row.id, row]));
    expect(byId.x1.tangent).toEqual({ x1: 1, x2: 0 });
    expect(byId.v2.tangent).toEqual({ x1: 0, x2: 1 });
    expect(byId.f.tangent).toEqual(r.gradient);
  });

  it("shows the tangent along a given direction for a Jacobian-vector product", () => {
    const r = worked().evaluate({ x1: 2, x2: 0.5 }, { mode: "forward", tangent: { x1: 1, x2: 1 }, trace: true });
    const f = r.trace?.rows.at(-1);
    expect(f?.tangent).toBe(r.jvp?.f);
  });
});

describe("non-finite provenance", () => {
  it("names the node where a NaN first appears in the forward pass", () => {
    const fn = new CompiledFunction(parseExpression("y * log(x) + y"));
    const r = fn.evaluate({ x: -1, y: 2 }, { mode: "reverse" });
    expect(r.outputs.f).toBeNaN();
    expect(r.nonFinite).toMatchObject({ pass: "forward", node: "v1", op: "log", value: "NaN" });
    expect(r.nonFinite?.message).toMatch(/forward pass at node v1 = log\(x\) with x = -1/);
  });

  it("names the rule where a non-finite adjoint first appears in the reverse pass, the value itself being finite", () => {
    const fn = new CompiledFunction(parseExpression("sqrt(x^2 + y^2)"));
    const r = fn.evaluate({ x: 0, y: 0 }, { mode: "reverse" });
    expect(r.outputs.f).toBe(0);
    expect(r.gradient?.x).toBeNaN();
    expect(r.nonFinite).toMatchObject({ pass: "reverse", node: "f", op: "sqrt", value: "Infinity" });
  });

  it("ignores a NaN that a select discarded", () => {
    const fn = new CompiledFunction(parseExpression("where(x > 0, log(x), 0) + 0*x"));
    const r = fn.evaluate({ x: -1 }, { mode: "value" });
    expect(r.outputs.f).toBe(0);
    expect(r.nonFinite).toBeUndefined();
  });
});

describe("the command line", () => {
  const cli = (...args: string[]) => {
    // bin/adjoint.js forwards to the build and exits 2 without it, which reads like a failed command.
    builtFile("dist/src/cli/main.js");
    return spawnSync(process.execPath, ["bin/adjoint.js", ...args], { encoding: "utf8" });
  };

  it("prints the worked example's value and gradient as JSON", () => {
    for (const mode of ["reverse", "forward"]) {
      const r = cli("grad", "--expr", "x1*exp(-0.5*(x1^2+x2^2))", "--at", "x1=2,x2=0.5", "--mode", mode);
      expect(r.status).toBe(0);
      const out = JSON.parse(r.stdout);
      expect(out.value).toBeCloseTo(0.23886593653343924, 15);
      expect(out.gradient.x1).toBeCloseTo(-0.35829890480015886, 15);
      expect(out.gradient.x2).toBeCloseTo(-0.11943296826671962, 15);
      expect(out.trace).toBeUndefined();
    }
  });

  it("reads a graph file and prints the trace when asked", () => {
    const r = cli("grad", "--graph", "examples/worked-example.graph.json", "--at", "x1=2,x2=0.5", "--trace");
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out.gradient.x2).toBeCloseTo(-0.11943296826671962, 15);
    expect(out.trace.rows.at(-1)).toMatchObject({ id: "f", adjoint: 1 });
  });

  it("reports errors on stderr with a non-zero exit code", () => {
    const parse = cli("grad", "--expr", "x1*(", "--at", "x1=1");
    expect(parse.status).toBe(2);
    expect(parse.stdout).toBe("");
    expect(parse.stderr).toMatch(/unexpected end of expression at column 5/);
    const missing = cli("grad", "--expr", "x1*x2", "--at", "x1=1");
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/point\.x2 is missing/);
    const usage = cli("grad", "--expr", "x", "--at", "x=abc");
    expect(usage.status).toBe(2);
    expect(usage.stderr).toMatch(/cannot read "x=abc"/);
  });
});
