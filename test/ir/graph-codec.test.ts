import { describe, expect, it } from "vitest";
import { parseExpressions } from "../../src/ir/expression.js";
import { Graph, type IrNode } from "../../src/ir/graph.js";
import { decodeGraph, encodeGraph } from "../../src/ir/graph-codec.js";
import { contentHash } from "../../src/ir/hash.js";
import { readJsonGraph } from "../../src/ir/json-graph.js";

/** A graph crossing between threads (a worker's parse, a definition) comes back node for node. */
function roundTrip(graph: Graph): Graph {
  const back = decodeGraph(encodeGraph(graph));
  expect(back.nodes).toEqual(graph.nodes);
  expect(back.inputs).toEqual(graph.inputs);
  expect(back.outputs).toEqual(graph.outputs);
  expect(contentHash(back)).toBe(contentHash(graph));
  return back;
}

describe("the graph codec", () => {
  it("keeps expressions' graphs: shapes, types, attributes and constants", () => {
    roundTrip(
      parseExpressions({
        inputs: [
          { name: "W", shape: [2, 3] },
          { name: "x", shape: [3, 1] },
          { name: "k", dtype: "int" },
        ],
        outputs: [
          { name: "loss", text: "sum(tanh(W @ x)^2, axis=0) + k*x[0, 0] + 1e-300" },
          { name: "peak", text: "max(x) * exp(-0.5*sum(x^2))" },
        ],
      }),
    );
  });

  it("keeps a JSON graph's labels and tensor constants exactly, −0 and NaN included", () => {
    const graph = readJsonGraph({
      inputs: [{ name: "x", shape: [3] }],
      nodes: [
        { id: "c", op: "const", value: { shape: [3], data: [-0, 0.1, 5e-324] } },
        { id: "y", op: "add", args: ["x", "c"] },
        { id: "z", op: "sum", args: ["y"] },
      ],
      outputs: ["z"],
    });
    const back = roundTrip(graph);
    expect(Object.is(back.nodes.find((n) => n.label === "c")?.data?.[0], -0)).toBe(true);
    const scalar = (value: number): IrNode => ({ op: "const", args: [], attrs: undefined, shape: [], dtype: "float", value });
    const consts = roundTrip(new Graph([scalar(Number.NaN), scalar(-0), scalar(Number.NEGATIVE_INFINITY)], [], [{ name: "f", node: 0 }]));
    expect(consts.nodes.map((n) => n.value)).toEqual([Number.NaN, -0, Number.NEGATIVE_INFINITY]);
    expect(Object.is(consts.nodes[1].value, -0)).toBe(true);
  });

  it("keeps a graph without nodes, and one of many", () => {
    roundTrip(new Graph([], [], []));
    const text = Array.from({ length: 3000 }, (_, i) => `sin(x*${i + 1})`).join("+");
    expect(roundTrip(parseExpressions({ outputs: [{ name: "f", text }] })).size).toBeGreaterThan(9000);
  });
});
