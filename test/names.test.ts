import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CompiledFunction } from "../src/engine/compiled-function.js";
import { everySectionValue, fieldValue, mapSections, setField } from "../src/engine/sections.js";
import type { AdjointError } from "../src/errors.js";
import { parseExpression, parseExpressions } from "../src/ir/expression.js";
import { readJsonGraph } from "../src/ir/json-graph.js";
import { compileModel, initializeParameters } from "../src/ir/model.js";
import { checkName, own, RECORD_PROTOTYPE, record } from "../src/names.js";
import { DecodeContext, decodeValues } from "../src/service/tensor.js";

const RESERVED = ["__proto__", "constructor", "prototype"] as const;
const INHERITED = ["toString", "hasOwnProperty", "valueOf", "isPrototypeOf", "__defineGetter__"] as const;

/** Object.prototype's own keys, to see that nothing was written onto it. */
let before: string[];
beforeEach(() => {
  before = Object.getOwnPropertyNames(Object.prototype).sort();
});
afterEach(() => {
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(before);
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
});

function thrown(f: () => unknown): AdjointError {
  try {
    f();
  } catch (e) {
    return e as AdjointError;
  }
  throw new Error("expected an error");
}

describe("answer sections keyed by client names", () => {
  it("keep every name as an own key, in maps and nested maps", () => {
    for (const name of [...RESERVED, ...INHERITED]) {
      const row: Record<string, unknown> = {};
      setField(row, { section: "outputs", name }, 1.5);
      setField(row, { section: "jacobian", name, key: name }, { polluted: true });
      setField(row, { section: "jacobian", name, key: "x" }, 2.5);
      setField(row, { section: "derivative", name: "derivative" }, 7);
      const outputs = row.outputs as Record<string, unknown>;
      const jacobian = row.jacobian as Record<string, Record<string, unknown>>;
      expect(Object.keys(outputs)).toEqual([name]);
      expect(Object.hasOwn(outputs, name) && outputs[name]).toBe(1.5);
      expect(Object.keys(jacobian)).toEqual([name]);
      expect(Object.keys(jacobian[name])).toEqual([name, "x"]);
      expect(jacobian[name].x).toBe(2.5);
      expect(row.derivative).toBe(7);
      // Read back through the engine's own accessor, and through the converters.
      const evaluation = row as never;
      expect(fieldValue(evaluation, { section: "outputs", name })).toBe(1.5);
      expect(fieldValue(evaluation, { section: "jacobian", name, key: "x" })).toBe(2.5);
      for (const other of [...RESERVED, ...INHERITED]) {
        if (other !== name) expect(fieldValue(evaluation, { section: "outputs", name: other })).toBeUndefined();
      }
      const doubled = mapSections<number, number>({ outputs: { [name]: 3 } }, (v) => 2 * v);
      expect(Object.entries(doubled.outputs as object)).toEqual([[name, 6]]);
      const seen: number[] = [];
      const answer = { outputs: { [name]: 3, y: 4 }, derivative: 5 };
      expect(everySectionValue<number>(answer, (v) => seen.push(v) > 0)).toBe(true);
      expect(seen).toEqual([3, 4, 5]);
      expect(everySectionValue<number>(answer, (v) => v !== 4)).toBe(false);
    }
  });

  it("never read what a record inherits", () => {
    const values = record<number>();
    values.x = 1;
    for (const name of INHERITED) expect(own(values, name)).toBeUndefined();
    expect(own({ x: 1 } as Record<string, number>, "toString")).toBeUndefined();
    expect(own(JSON.parse('{"__proto__": 4}'), "__proto__")).toBe(4);
  });

  it("decode a point whose keys are any names into a prototype-free record", () => {
    const parsed = JSON.parse('{"__proto__": 4, "toString": 5, "x": [1, 2]}');
    const decoded = decodeValues(parsed, "point", new DecodeContext(false, 100));
    expectRecord(decoded);
    expect(Object.keys(decoded)).toEqual(["__proto__", "toString", "x"]);
    expect(Object.getOwnPropertyDescriptor(decoded, "__proto__")?.value).toBe(4);
    expect(decoded.toString).toBe(5);
    expect(decoded.x).toMatchObject({ shape: [2] });
  });
});

describe("reserved names where a function is defined", () => {
  it("checkName refuses exactly the reserved names, naming the field", () => {
    for (const name of RESERVED) {
      const e = thrown(() => checkName(name, "outputs[0].name"));
      expect(e.kind).toBe("invalid_argument");
      expect(e.location.field).toBe("outputs[0].name");
      expect(e.message).toContain(`the name ${name} is reserved`);
    }
    for (const name of INHERITED) expect(checkName(name, "f")).toBe(name);
  });

  it("expressions refuse reserved identifiers, declared inputs and output names", () => {
    for (const name of RESERVED) {
      expect(thrown(() => parseExpression(`${name} + 1`)).message).toContain(`the name ${name} is reserved`);
      expect(thrown(() => parseExpression(`${name} + 1`)).location.position).toBe(1);
      expect(thrown(() => parseExpression("x + 1", [{ name }, { name: "x" }])).location.field).toBe("inputs[0]");
      expect(thrown(() => parseExpressions({ outputs: [{ name, text: "x" }] })).location.field).toBe(`outputs.${name}`);
    }
  });

  it("JSON graphs refuse reserved input names, node ids, output names and attribute keys", () => {
    const graph = (over: Record<string, unknown>) => ({
      inputs: ["x"],
      nodes: [{ id: "y", op: "sin", args: ["x"] }],
      outputs: ["y"],
      ...over,
    });
    for (const name of RESERVED) {
      expect(thrown(() => readJsonGraph(graph({ inputs: [name] }))).location.field).toBe("inputs[0]");
      expect(thrown(() => readJsonGraph(graph({ inputs: [{ name }] }))).location.field).toBe("inputs[0].name");
      expect(thrown(() => readJsonGraph(graph({ nodes: [{ id: name, op: "sin", args: ["x"] }] }))).location.field).toBe("nodes[0].id");
      expect(thrown(() => readJsonGraph(graph({ outputs: [{ name, node: "y" }] }))).location.field).toBe("outputs[0].name");
      const attrs = JSON.parse(`{"${name}": 1}`);
      expect(thrown(() => readJsonGraph(graph({ nodes: [{ id: "y", op: "sum", args: ["x"], attrs }] }))).location.field).toBe(
        `nodes[0].attrs.${name}`,
      );
    }
  });

  it("models refuse reserved layer names and carry the others in parameter names", () => {
    const model = (name: string) => ({ input: [2], layers: [{ type: "dense" as const, units: 1, name }], loss: "mse" as const });
    for (const name of RESERVED) expect(thrown(() => compileModel(model(name), 1)).location.field).toBe("model.layers[0].name");
    const compiled = compileModel(model("toString"), 1);
    expect(compiled.parameters.map((p) => p.name)).toEqual(["toString.weight", "toString.bias"]);
    const drawn = initializeParameters(compiled.parameters, 1);
    expectRecord(drawn);
    expect(Object.keys(drawn)).toEqual(["toString.weight", "toString.bias"]);
  });
});

describe("functions over inherited names", () => {
  it("an input named like an Object.prototype method is an input: toString*2 at toString=3", () => {
    for (const name of INHERITED) {
      const fn = new CompiledFunction(parseExpression(`${name}*2`));
      expect(fn.inputNames).toEqual([name]);
      const r = fn.evaluate({ [name]: 3 }, { mode: "reverse" });
      expect(r.outputs.f).toBe(6);
      expect(Object.entries(r.gradient ?? {})).toEqual([[name, 2]]);
    }
  });

  it("a missing input is missing, not the inherited method", () => {
    const fn = new CompiledFunction(parseExpression("toString*y"));
    const e = thrown(() => fn.evaluate({ y: 1 }, { mode: "reverse" }));
    expect(e.message).toBe("point.toString is missing");
    expect(e.location).toEqual({ field: "point.toString", input: "toString" });
  });

  it("answers Jacobians and Hessians keyed by these names: f = a²·b", () => {
    const fn = new CompiledFunction(parseExpressions({ outputs: [{ name: "valueOf", text: "toString^2*hasOwnProperty" }] }));
    const point = { toString: 3, hasOwnProperty: 2 };
    const j = fn.evaluate(point, { mode: "jacobian" });
    expect(j.jacobian?.valueOf).toEqual({ toString: 12, hasOwnProperty: 9 });
    const h = fn.evaluate(point, { mode: "hessian" });
    expect(h.outputs.valueOf).toBe(18);
    expect(h.hessian?.toString).toEqual({ toString: 4, hasOwnProperty: 6 });
    expect(h.hessian?.hasOwnProperty).toEqual({ toString: 6, hasOwnProperty: 0 });
    const vjp = fn.evaluate(point, { mode: "reverse", cotangent: { valueOf: 2 } });
    expect(vjp.vjp).toEqual({ toString: 24, hasOwnProperty: 18 });
    const jvp = fn.evaluate(point, { mode: "forward", tangent: { toString: 1, hasOwnProperty: 0 } });
    expect(jvp.jvp).toEqual({ valueOf: 12 });
    // A cotangent that names nothing of the function, even an inherited name, is refused.
    expect(thrown(() => fn.evaluate(point, { mode: "reverse", cotangent: { valueOf: 1, constructor: 1 } })).location.field).toBe(
      "cotangent.constructor",
    );
  });
});

/** A record inherits nothing: its prototype is the empty, frozen, prototype-less RECORD_PROTOTYPE. */
function expectRecord(value: object): void {
  expect(Object.getPrototypeOf(value)).toBe(RECORD_PROTOTYPE);
  expect(Object.getPrototypeOf(RECORD_PROTOTYPE)).toBeNull();
  expect(Reflect.ownKeys(RECORD_PROTOTYPE)).toEqual([]);
  expect(Object.isFrozen(RECORD_PROTOTYPE)).toBe(true);
}
