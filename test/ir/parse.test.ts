import { describe, expect, it } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { AdjointError } from "../../src/errors.js";
import { parseExpression } from "../../src/ir/expression.js";
import { contentHash } from "../../src/ir/hash.js";
import { readJsonGraph } from "../../src/ir/json-graph.js";
import { evaluator } from "../support/numeric.js";

const value = (text: string, x: number[] = []) => evaluator(parseExpression(text))(x);

describe("the expression parser", () => {
  it("follows math precedence: ^ is right-associative and binds tighter than unary minus", () => {
    expect(value("2^3^2")).toBe(512);
    expect(value("-2^2")).toBe(-4);
    expect(value("(-2)^2")).toBe(4);
    expect(value("2^-1")).toBe(0.5);
    expect(value("2**3")).toBe(8);
    expect(value("1 - 2 - 3")).toBe(-4);
    expect(value("12 / 3 / 2")).toBe(2);
    expect(value("2 + 3 * 4")).toBe(14);
    expect(value("-x^2", [3])).toBe(-9);
    expect(value("2*-x", [3])).toBe(-6);
  });

  it("reads numbers with exponents, the constants pi and e, and functions of several arguments", () => {
    expect(value("1.5e3 + .5 + 2E-1")).toBe(1500.7);
    expect(value("pi")).toBe(Math.PI);
    expect(value("e")).toBe(Math.E);
    expect(value("atan2(1, -1)")).toBe((3 * Math.PI) / 4);
    expect(value("max(theta_2, lr)", [1, 2])).toBe(2);
    expect(value("where(x > 0, x, -x)", [-3])).toBe(3);
    expect(value("(x <= 1) + (x != 1)", [1])).toBe(1);
  });

  it("takes inputs in order of appearance, or as declared", () => {
    expect(parseExpression("b + a").inputs.map((i) => i.name)).toEqual(["b", "a"]);
    expect(parseExpression("b + a", [{ name: "a" }, { name: "b" }, { name: "c" }]).inputs.map((i) => i.name)).toEqual(["a", "b", "c"]);
  });

  it("shares common subexpressions", () => {
    const g = parseExpression("sin(x*y) + cos(x*y) + sin(x*y)");
    expect(g.nodes.filter((n) => n.op === "mul")).toHaveLength(1);
    expect(g.nodes.filter((n) => n.op === "sin")).toHaveLength(1);
  });

  const errors: [string, RegExp, number][] = [
    ["x1*(2", /expected '\)' to close the parenthesis opened at column 4/, 6],
    ["x1 + * 2", /unexpected '\*'/, 6],
    ["2x", /unexpected 'x'/, 2],
    ["x $ y", /unexpected character '\$'/, 3],
    ["foo(x)", /unknown function foo/, 1],
    ["sin", /sin is a function/, 1],
    ["atan2(x)", /expects 2 operands, got 1/, 1],
    ["", /empty expression/, 1],
    ["a < b < c", /comparisons do not chain/, 7],
    ["sin(x, y)", /expects 1 operand, got 2/, 1],
  ];
  it.each(errors)("reports %j with its position and a caret", (text, message, column) => {
    let error: unknown;
    try {
      parseExpression(text);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(AdjointError);
    const e = error as AdjointError;
    expect(e.kind).toBe("invalid_argument");
    expect(e.message).toMatch(message);
    expect(e.message).toContain(`at column ${column}`);
    expect(e.location.position).toBe(column);
    const lines = e.message.split("\n");
    expect(lines[1]).toBe(`  ${text}`);
    expect(lines[2]).toBe(`  ${" ".repeat(column - 1)}^`);
  });

  it("refuses absurdly deep nesting with an error instead of exhausting the stack", () => {
    expect(() => parseExpression(`${"(".repeat(20_000)}x${")".repeat(20_000)}`)).toThrow(/nests deeper than 500 levels at column 501/);
    expect(() => parseExpression(`${"-".repeat(50_000)}x`)).toThrow(/nests deeper than 500 levels/);
    expect(value(`${"(".repeat(400)}2${")".repeat(400)}`)).toBe(2);
  });

  it("rejects a variable that is not declared, naming the declared ones", () => {
    expect(() => parseExpression("x + z", [{ name: "x" }, { name: "y" }])).toThrow(/unknown variable z; the declared inputs are x, y/);
  });
});

const worked = {
  inputs: ["x1", "x2"],
  nodes: [
    { id: "a", op: "square", args: ["x1"] },
    { id: "b", op: "square", args: ["x2"] },
    { id: "r", op: "add", args: ["a", "b"] },
    { id: "m", op: "mul", args: [-0.5, "r"] },
    { id: "g", op: "exp", args: ["m"] },
    { id: "f", op: "mul", args: ["x1", "g"] },
  ],
  outputs: ["f"],
};

function graphError(graph: unknown): AdjointError {
  try {
    readJsonGraph(graph);
  } catch (e) {
    if (e instanceof AdjointError) return e;
    throw e;
  }
  throw new Error("expected the graph to be rejected");
}

describe("JSON graphs", () => {
  it("evaluate like the expression", () => {
    expect(evaluator(readJsonGraph(worked))([2, 0.5])).toBe(evaluator(parseExpression("x1*exp(-0.5*(x1^2+x2^2))"))([2, 0.5]));
  });

  it("accept nodes in any order", () => {
    const shuffled = { ...worked, nodes: [...worked.nodes].reverse() };
    expect(evaluator(readJsonGraph(shuffled))([2, 0.5])).toBe(evaluator(readJsonGraph(worked))([2, 0.5]));
  });

  it("reject a cycle, naming the nodes on it", () => {
    const e = graphError({
      inputs: ["x"],
      nodes: [
        { id: "p", op: "sin", args: ["q"] },
        { id: "q", op: "cos", args: ["p"] },
      ],
      outputs: ["p"],
    });
    expect(e.message).toMatch(/cycle: (p → q → p|q → p → q)/);
    expect(e.location.node).toMatch(/^[pq]$/);
  });

  it("reject a dangling id", () => {
    const e = graphError({ inputs: ["x"], nodes: [{ id: "p", op: "sin", args: ["y"] }], outputs: ["p"] });
    expect(e.message).toBe("node p: operand 0 refers to unknown id y");
    expect(e.location).toEqual({ node: "p", field: "nodes[0].args[0]" });
  });

  it("reject an unknown op with a suggestion", () => {
    const e = graphError({ inputs: ["x"], nodes: [{ id: "p", op: "sinn", args: ["x"] }], outputs: ["p"] });
    expect(e.message).toMatch(/node p: unknown op sinn; did you mean .*sin/);
  });

  it("reject the wrong number of operands", () => {
    const e = graphError({ inputs: ["x"], nodes: [{ id: "p", op: "mul", args: ["x"] }], outputs: ["p"] });
    expect(e.message).toBe("node p (mul): expects 2 operands, got 1");
    expect(e.location.node).toBe("p");
  });

  it("reject duplicate ids, including an id that repeats an input's name", () => {
    expect(
      graphError({
        inputs: ["x"],
        nodes: [
          { id: "p", op: "sin", args: ["x"] },
          { id: "p", op: "cos", args: ["x"] },
        ],
        outputs: ["p"],
      }).message,
    ).toBe("node p: duplicate id (also nodes[0])");
    expect(graphError({ inputs: ["x"], nodes: [{ id: "x", op: "sin", args: ["x"] }], outputs: ["x"] }).message).toMatch(
      /node x: the id is already used by an input/,
    );
  });

  it("reject non-finite constants", () => {
    const e = graphError({ inputs: ["x"], nodes: [{ id: "c", op: "const", value: "Infinity" }], outputs: ["c"] });
    expect(e.message).toMatch(/node c: a constant is a number/);
    expect(graphError({ inputs: ["x"], nodes: [{ id: "c", op: "const", value: [1, Number.NaN] }], outputs: ["c"] }).message).toMatch(
      /node c: value\[1\]: a constant element must be a finite number, got null/,
    );
    expect(
      graphError({ inputs: ["x"], nodes: [{ id: "p", op: "mul", args: ["x", Number.POSITIVE_INFINITY] }], outputs: ["p"] }).message,
    ).toMatch(/node p: operand 1 is not a finite number/);
  });

  it("reject attributes an op does not take, and outputs that name nothing", () => {
    expect(graphError({ inputs: ["x"], nodes: [{ id: "p", op: "sin", args: ["x"], attrs: { axis: 1 } }], outputs: ["p"] }).message).toMatch(
      /node p \(sin\): takes no attributes, got axis/,
    );
    expect(graphError({ inputs: ["x"], nodes: [], outputs: ["q"] }).message).toMatch(/outputs\[0\]: output q refers to unknown id q/);
  });
});

describe("the content hash", () => {
  const hash = (text: string) => contentHash(parseExpression(text));
  it("is the same for the same function, however it is written", () => {
    const fromGraph = contentHash(readJsonGraph(worked));
    expect(hash("x1*exp(-0.5*(x1^2+x2^2))")).toBe(fromGraph);
    expect(hash("x1 * exp(-0.5 * (x1^2 + x2^2))")).toBe(fromGraph);
    expect(hash("x1*exp((x2^2+x1^2)*-0.5)")).toBe(fromGraph);
    expect(contentHash(readJsonGraph({ ...worked, nodes: [...worked.nodes].reverse() }))).toBe(fromGraph);
    const renamed = JSON.parse(JSON.stringify(worked).replaceAll('"a"', '"sq1"').replaceAll('"g"', '"gauss"'));
    expect(contentHash(readJsonGraph(renamed))).toBe(fromGraph);
  });
  it("differs for different functions, inputs or outputs", () => {
    const base = hash("x1*exp(-0.5*(x1^2+x2^2))");
    expect(hash("x1*exp(-0.5*(x1^2+x2^3))")).not.toBe(base);
    expect(hash("x2*exp(-0.5*(x1^2+x2^2))")).not.toBe(base);
    expect(hash("x1 - x2")).not.toBe(hash("x2 - x1"));
    expect(contentHash(readJsonGraph({ ...worked, outputs: [{ name: "g", node: "f" }] }))).not.toBe(base);
  });
});

describe("tensor expressions", () => {
  const run = (text: string, shape: number[], data: number[]) => {
    const g = parseExpression(text, [{ name: "x", shape }]);
    const r = new CompiledFunction(g).evaluate({ x: { shape, data } }, { mode: "value" });
    const v = r.outputs.f;
    return typeof v === "number" ? v : Array.from(v.data);
  };
  it("index and slice with Python semantics", () => {
    expect(run("x[1:]", [4], [1, 2, 3, 4])).toEqual([2, 3, 4]);
    expect(run("x[:-1]", [4], [1, 2, 3, 4])).toEqual([1, 2, 3]);
    expect(run("x[::2]", [5], [1, 2, 3, 4, 5])).toEqual([1, 3, 5]);
    expect(run("x[-1]", [3], [7, 8, 9])).toBe(9);
    expect(run("x[1, :]", [2, 2], [1, 2, 3, 4])).toEqual([3, 4]);
    expect(run("x[:, 0]", [2, 2], [1, 2, 3, 4])).toEqual([1, 3]);
  });
  it("take reductions with keyword axes, and max/min of one operand as reductions", () => {
    expect(run("sum(x, axis=0)", [2, 2], [1, 2, 3, 4])).toEqual([4, 6]);
    expect(run("sum(x, axes=[0, 1])", [2, 2], [1, 2, 3, 4])).toBe(10);
    expect(run("max(x, axis=1)", [2, 2], [1, 5, 3, 4])).toEqual([5, 4]);
    expect(run("min(x)", [3], [2, -1, 3])).toBe(-1);
    expect(run("mean(x)", [4], [1, 2, 3, 4])).toBe(2.5);
    expect(run("x @ transpose(x)", [1, 2], [1, 2])).toEqual([5]);
  });
  it("report shape errors with both shapes", () => {
    expect(() =>
      parseExpression("x + y", [
        { name: "x", shape: [2, 3] },
        { name: "y", shape: [4] },
      ]),
    ).toThrow(/shapes \[2, 3\] and \[4\] cannot be broadcast together/);
    expect(() =>
      parseExpression("x @ y", [
        { name: "x", shape: [2, 3] },
        { name: "y", shape: [2, 3] },
      ]),
    ).toThrow(/inner dimensions differ: \[2, 3\] · \[2, 3\]/);
    expect(() => parseExpression("sum(x, axis=2)", [{ name: "x", shape: [2, 3] }])).toThrow(/axis 2 is out of range for rank 2/);
  });
});
