import { describe, expect, it } from "vitest";
import { type ExpressionSource, parseExpressions } from "../../src/ir/expression.js";
import { Graph } from "../../src/ir/graph.js";
import { contentHash } from "../../src/ir/hash.js";
import { readJsonGraph } from "../../src/ir/json-graph.js";
import { decodeDefinition, encodeDefinition } from "../../src/runtime/definition.js";

/**
 * A worker compiles a function from its definition: for expressions, the parser's source, parsed again
 * there. Node ids matter across the two threads (a trace's rows, the plan's fields), so the worker's
 * graph must be the main thread's, node for node.
 */
const plain = (g: Graph) => ({ nodes: g.nodes, inputs: g.inputs, outputs: g.outputs });

describe("a function's definition for the workers", () => {
  it("rebuilds expressions into the same graph, node for node", () => {
    const source: ExpressionSource = {
      inputs: [{ name: "W", shape: [2, 3] }, { name: "x", shape: [3, 1] }, { name: "k" }],
      outputs: [
        { name: "loss", text: "sum(tanh(W @ x)^2) + k*x[0, 0]" },
        { name: "peak", text: "max(x) * exp(-0.5*sum(x^2))" },
      ],
      maxNodes: 1000,
    };
    const here = parseExpressions(source);
    const there = decodeDefinition(encodeDefinition({ expressions: source }));
    expect(plain(there)).toEqual(plain(here));
    expect(contentHash(there)).toBe(contentHash(here));
  });

  it("keeps a graph's constants exactly, −0 and NaN included", () => {
    const graph = readJsonGraph({
      inputs: [{ name: "x", shape: [2] }],
      nodes: [
        { id: "c", op: "const", value: { shape: [2], data: [-0, 0.1] } },
        { id: "y", op: "add", args: ["x", "c"] },
      ],
      outputs: ["y"],
    });
    const there = decodeDefinition(encodeDefinition({ graph }));
    expect(plain(there)).toEqual(plain(graph));
    expect(contentHash(there)).toBe(contentHash(graph));
    const nan = new Graph(
      [{ op: "const", args: [], attrs: undefined, shape: [], dtype: "float", value: Number.NaN }],
      [],
      [{ name: "f", node: 0 }],
    );
    expect(Object.is((decodeDefinition(encodeDefinition({ graph: nan })).nodes[0] as { value: number }).value, Number.NaN)).toBe(true);
  });

  it("is a small fraction of the graph's encoding for a long expression", () => {
    const text = Array.from({ length: 2000 }, (_, i) => `sin(x*${(1 + i / 1e6).toFixed(6)})`).join("+");
    const source: ExpressionSource = { outputs: [{ name: "f", text }] };
    const graph = parseExpressions(source);
    const asSource = encodeDefinition({ expressions: source }).byteLength;
    const asGraph = encodeDefinition({ graph }).byteLength;
    expect(asSource).toBeLessThan(text.length + 200);
    expect(asSource * 5).toBeLessThan(asGraph);
    expect(plain(decodeDefinition(encodeDefinition({ expressions: source })))).toEqual(plain(graph));
  });
});
