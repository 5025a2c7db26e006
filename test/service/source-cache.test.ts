import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { num, startTestServer, type TestServer } from "./helpers.js";

/**
 * The store finds a function again by a key made from its definition's JSON (runtime/parse-function.ts,
 * sourceKey). JSON.stringify writes −0 as 0: functions that differ only there must not share a key, or
 * the second is answered with the first's function (found so: c·x with c = 0 answered −0.0).
 */
let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.close();
});

/** c·x with the constant c, as a JSON graph's text (−0 written `-0.0`, as JSON can carry it). */
const scaled = (c: string) =>
  `{"function": {"graph": {"inputs": ["x"], "nodes": [{"id": "c", "op": "const", "value": ${c}}, {"id": "f", "op": "mul", "args": ["c", "x"]}], "outputs": ["f"]}}, "point": {"x": 1}}`;

describe("functions that differ only in the sign of a zero", () => {
  it("a constant −0 and a constant 0 over HTTP: each its own id and answer, in either order", async () => {
    const negative = await s.post("/v1/differentiate", scaled("-0.0"));
    const positive = await s.post("/v1/differentiate", scaled("0"));
    const negativeAgain = await s.post("/v1/differentiate", scaled("-0.0"));
    expect(negative.status).toBe(200);
    expect(Object.is(negative.body.value, -0)).toBe(true);
    expect(Object.is(positive.body.value, 0)).toBe(true);
    expect(positive.body.id).not.toBe(negative.body.id);
    expect(negativeAgain.body).toEqual(negative.body);
  });

  it("an inline operand −0 and 0 over gRPC: each its own id and answer", async () => {
    const times = (c: number) =>
      s.differentiate({
        function: {
          source: {
            case: "graph",
            value: {
              inputs: [{ name: "x" }],
              nodes: [{ id: "f", op: "mul", args: [{ arg: { case: "id", value: "x" } }, { arg: { case: "number", value: c } }] }],
              outputs: [{ name: "f", node: "f" }],
            },
          },
        },
        point: { values: { x: 1 } },
      });
    const negative = await times(-0);
    const positive = await times(0);
    expect(Object.is(num(negative.result?.value), -0)).toBe(true);
    expect(Object.is(num(positive.result?.value), 0)).toBe(true);
    expect(positive.id).not.toBe(negative.id);
  });
});
