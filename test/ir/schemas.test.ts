import { readFileSync } from "node:fs";
import Ajv2020 from "ajv/dist/2020.js";
import { describe, expect, it } from "vitest";
import { readJsonGraph } from "../../src/ir/json-graph.js";
import { compileModel, type ModelDefinition } from "../../src/ir/model.js";

const load = (path: string) => JSON.parse(readFileSync(new URL(`../../${path}`, import.meta.url), "utf8"));
const ajv = new Ajv2020.default({ allErrors: true, strict: false });

describe("the documented JSON schemas", () => {
  const graphSchema = ajv.compile(load("docs/graph.schema.json"));
  const modelSchema = ajv.compile(load("docs/model.schema.json"));

  it("accept the examples, which the readers accept too", () => {
    const graph = load("examples/worked-example.graph.json");
    expect(graphSchema(graph), JSON.stringify(graphSchema.errors)).toBe(true);
    expect(readJsonGraph(graph).outputs[0].name).toBe("f");
    for (const file of ["examples/mlp.model.json", "examples/cnn.model.json"]) {
      const model = load(file) as ModelDefinition;
      expect(modelSchema(model), `${file}: ${JSON.stringify(modelSchema.errors)}`).toBe(true);
    }
    expect(compileModel(load("examples/mlp.model.json"), 4).parameters).toHaveLength(4);
  });

  it("reject what the readers reject for the same reason", () => {
    const bad = { inputs: ["x"], nodes: [{ id: "p", op: "sin", args: ["x"], colour: "red" }], outputs: ["p"] };
    expect(graphSchema(bad)).toBe(false);
    expect(() => readJsonGraph(bad)).toThrow(/node p: unknown field colour/);
    for (const name of ["__proto__", "constructor", "prototype"]) {
      const graphs = [
        { inputs: [name], nodes: [{ id: "p", op: "sin", args: [name] }], outputs: ["p"] },
        { inputs: ["x"], nodes: [{ id: name, op: "sin", args: ["x"] }], outputs: [name] },
        { inputs: ["x"], nodes: [{ id: "p", op: "sin", args: ["x"] }], outputs: [{ name, node: "p" }] },
        { inputs: ["x"], nodes: [{ id: "p", op: "sum", args: ["x"], attrs: JSON.parse(`{"${name}": 0}`) }], outputs: ["p"] },
      ];
      for (const g of graphs) {
        expect(graphSchema(g), JSON.stringify(g)).toBe(false);
        expect(() => readJsonGraph(g)).toThrow(`the name ${name} is reserved`);
      }
      const model = { input: [3], layers: [{ type: "dense" as const, units: 1, name }], loss: "mse" as const };
      expect(modelSchema(model)).toBe(false);
      expect(() => compileModel(model, 2)).toThrow(`the name ${name} is reserved`);
    }
    expect(modelSchema({ input: [3], layers: [{ type: "dense" }], loss: "mse" })).toBe(false);
    expect(() => compileModel({ input: [3], layers: [{ type: "dense" } as never], loss: "mse" }, 2)).toThrow(
      /units must be a positive integer/,
    );
  });
});
