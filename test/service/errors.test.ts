import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { grpcNodes, startTestServer, type TestServer, WORKED } from "./helpers.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ bodyLimit: 100_000, grpcMaxMessage: 100_000, maxNodes: 1000 });
});
afterAll(async () => {
  await s?.close();
});

type GrpcRequest = Parameters<TestServer["differentiate"]>[0];

/** The HTTP problem for a body, checked for its form. */
async function problem(body: unknown, headers?: Record<string, string>) {
  const res = await fetch(`${s.base}/v1/differentiate`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  const p = (await res.json()) as Record<string, unknown>;
  expect(p).toMatchObject({ status: res.status, type: expect.stringMatching(/^urn:adjoint:problem:/), title: expect.any(String) });
  return { status: res.status, ...p } as { status: number; detail: string; kind: string; field?: string; node?: string; input?: string };
}

async function grpcError(req: GrpcRequest): Promise<grpc.ServiceError> {
  try {
    await s.differentiate(req);
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error("expected an error");
}

const expr = (value: string) => ({ source: { case: "expression" as const, value } });
type NodeSpec = { id: string; op: string; args?: (string | number)[]; attrs?: Record<string, unknown> };
const graphOf = (nodes: NodeSpec[]) => ({
  inputs: ["x"],
  nodes,
  outputs: [nodes[nodes.length - 1].id],
});
const grpcGraph = (g: ReturnType<typeof graphOf>) => ({
  source: {
    case: "graph" as const,
    value: {
      inputs: g.inputs.map((name) => ({ name })),
      nodes: grpcNodes(g.nodes),
      outputs: g.outputs.map((o) => ({ name: o, node: o })),
    },
  },
});

describe("every error class, with its status and a message that names the fault", () => {
  it("malformed JSON", async () => {
    const p = await problem('{"function": {"expression": "x"}, "point": {"x": 1,}}');
    expect(p.status).toBe(400);
    expect(p.detail).toMatch(/not valid JSON.*position/);
  });

  it("schema violations name the field", async () => {
    const unknown = await problem({ ...WORKED, colour: "red" });
    expect(unknown).toMatchObject({ status: 400, field: "colour" });
    expect(unknown.detail).toMatch(/colour: unknown field/);
    const wrongType = await problem({ function: { expression: 42 }, point: { x: 1 } });
    expect(wrongType).toMatchObject({ status: 400, field: "function.expression" });
    const badValue = await problem({ function: { expression: "x" }, point: { x: "one" } });
    expect(badValue).toMatchObject({ status: 400, field: "point.x" });
    expect(badValue.detail).toMatch(/point\.x: must be a number/);
    const twoForms = await problem({ ...WORKED, points: [WORKED.point] });
    expect(twoForms.detail).toMatch(/exactly one of point, points and columns/);
    const noPoint = await problem({ function: WORKED.function, mode: "hessian" });
    expect(noPoint).toMatchObject({ status: 400, field: "point" });
    expect(noPoint.detail).toBe("give exactly one of point, points and columns");
    const threeForms = await problem({ ...WORKED, points: [WORKED.point], columns: { x1: [2], x2: [0.5] }, mode: "jacobian" });
    expect(threeForms).toMatchObject({ status: 400, field: "points" });
    expect(threeForms.detail).toBe("give exactly one of point, points and columns, got point, points and columns");
    const twoSources = await problem({ function: { expression: "x", id: "fn_x" }, point: { x: 1 } });
    expect(twoSources).toMatchObject({ status: 400, field: "function" });
    expect(twoSources.detail).toMatch(/exactly one of expression, expressions, graph, model and id, got expression and id/);
    const noSource = await problem({ function: {}, point: { x: 1 } });
    expect(noSource).toMatchObject({ status: 400, field: "function" });
    expect(noSource.detail).toMatch(/exactly one of expression, expressions, graph, model and id/);
    const mode = await problem({ ...WORKED, mode: "sideways" });
    expect(mode).toMatchObject({ status: 400, field: "mode" });
    expect(mode.detail).toMatch(/"value", "reverse", "forward"/);
  });

  it("unknown op", async () => {
    const p = await problem({ function: { graph: graphOf([{ id: "y", op: "sine", args: ["x"] }]) }, point: { x: 1 } });
    expect(p).toMatchObject({ status: 400, kind: "invalid_argument", node: "y", field: "function.graph.nodes[0].op" });
    expect(p.detail).toMatch(/node y: unknown op sine/);
    const inExpr = await problem({ function: { expression: "sine(x)" }, point: { x: 1 } });
    expect(inExpr).toMatchObject({ status: 400, field: "function.expression", position: 1 });
    const e = await grpcError({ function: grpcGraph(graphOf([{ id: "y", op: "sine", args: ["x"] }])), point: { values: { x: 1 } } });
    expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(e.details).toMatch(/node y: unknown op sine/);
    expect(e.metadata.get("adjoint-node")).toEqual(["y"]);
  });

  it("a cycle", async () => {
    const g = graphOf([
      { id: "a", op: "add", args: ["x", "b"] },
      { id: "b", op: "sin", args: ["a"] },
    ]);
    const p = await problem({ function: { graph: g }, point: { x: 1 } });
    expect(p.status).toBe(400);
    expect(p.detail).toMatch(/cycle: a → b → a|cycle: b → a → b/);
    const e = await grpcError({ function: grpcGraph(g), point: { values: { x: 1 } } });
    expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(e.details).toMatch(/cycle/);
  });

  it("shape mismatches: operand shapes, arity and attributes, and input shapes", async () => {
    const broadcast = await problem({
      function: {
        expression: "sum(a+b)",
        inputs: [
          { name: "a", shape: [2] },
          { name: "b", shape: [3] },
        ],
      },
      point: { a: [1, 2], b: [1, 2, 3] },
    });
    expect(broadcast.status).toBe(400);
    expect(broadcast.detail).toMatch(/\[2\].*\[3\].*cannot be broadcast/);
    const attrs = await problem({
      function: { graph: graphOf([{ id: "y", op: "sin", args: ["x"], attrs: { axis: 1 } }]) },
      point: { x: 1 },
    });
    expect(attrs).toMatchObject({ status: 400, node: "y" });
    expect(attrs.detail).toMatch(/node y \(sin\): takes no attributes, got axis/);
    const arity = await problem({ function: { graph: graphOf([{ id: "y", op: "sin", args: ["x", "x"] }]) }, point: { x: 1 } });
    expect(arity.detail).toMatch(/node y \(sin\): expects 1 operand, got 2/);
    const input = await problem({ function: { expression: "sum(w*w)", inputs: [{ name: "w", shape: [3] }] }, point: { w: [1, 2] } });
    expect(input).toMatchObject({ status: 400, field: "point.w" });
    expect(input.detail).toMatch(/point\.w has shape \[2\], but the function declares \[3\]/);
    const e = await grpcError({
      function: { ...expr("sum(w*w)"), inputs: [{ name: "w", shape: [3] }] },
      point: { tensors: { w: { shape: [2], values: [1, 2] } } },
    });
    expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(e.details).toMatch(/has shape \[2\], but the function declares \[3\]/);
  });

  it("a missing input, and an unknown one", async () => {
    const p = await problem({ function: WORKED.function, point: { x1: 2 } });
    expect(p).toMatchObject({ status: 400, field: "point.x2", input: "x2", detail: "point.x2 is missing" });
    const extra = await problem({ function: WORKED.function, point: { ...WORKED.point, x3: 1 } });
    expect(extra).toMatchObject({ status: 400, input: "x3" });
    expect(extra.detail).toMatch(/no input is named x3; the inputs are x1, x2/);
    const e = await grpcError({ function: expr(WORKED.function.expression), point: { values: { x1: 2 } } });
    expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(e.details).toBe("point.x2 is missing");
    expect(e.metadata.get("adjoint-input")).toEqual(["x2"]);
  });

  it("non-finite inputs are refused unless allowed; non-finite results likewise", async () => {
    const p = await problem({ function: WORKED.function, point: { x1: "NaN", x2: 0.5 } });
    expect(p).toMatchObject({ status: 400, field: "point.x1" });
    expect(p.detail).toMatch(/point\.x1 is NaN; non-finite values are rejected unless the request sets allowNonFinite/);
    const allowed = await s.post("/v1/differentiate", {
      function: WORKED.function,
      point: { x1: "Infinity", x2: 0.5 },
      allowNonFinite: true,
    });
    expect(allowed.status).toBe(200);
    expect(allowed.body.value).toBe("NaN");
    expect(allowed.body.nonFinite).toMatchObject({ pass: "forward", node: "x1", value: "Infinity" });
    const e = await grpcError({ function: expr(WORKED.function.expression), point: { values: { x1: Number.NaN, x2: 0.5 } } });
    expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(e.details).toMatch(/point\.x1 is NaN/);
    const g = await s.differentiate({ function: expr("log(x)"), point: { values: { x: 0 } }, allowNonFinite: true });
    expect(g.result?.outputs.f.values[0]).toBe(Number.NEGATIVE_INFINITY);

    const result = await problem({ function: { expression: "log(x)" }, point: { x: 0 } });
    expect(result).toMatchObject({ status: 400, field: "point" });
    expect(result.detail).toMatch(/the result is not finite \(-Infinity first appears in the forward pass at node .*log/);
  });

  it("an oversize body or message", async () => {
    const big = { function: { expression: `x+${"1+".repeat(60_000)}1` }, point: { x: 1 } };
    const p = await problem(big);
    expect(p).toMatchObject({ status: 413, kind: "resource_exhausted" });
    expect(p.detail).toMatch(/larger than the limit of 100000 bytes \(ADJOINT_BODY_LIMIT\)/);
    const e = await grpcError({ function: expr(big.function.expression), point: { values: { x: 1 } } });
    expect(e.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(e.details).toMatch(/larger than max|exceeds|too large/i);
  });

  it("too many nodes", async () => {
    const text = Array.from({ length: 600 }, (_, i) => `sin(x*${i + 2})`).join("+");
    const p = await problem({ function: { expression: text }, point: { x: 1 } });
    expect(p).toMatchObject({ status: 413, kind: "resource_exhausted", field: "function.expression" });
    expect(p.detail).toMatch(/the function has \d+ nodes; the limit is 1000 \(ADJOINT_MAX_NODES\)/);
    const e = await grpcError({ function: expr(text), point: { values: { x: 1 } } });
    expect(e.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(e.details).toMatch(/limit is 1000/);
  });

  it("an unknown id", async () => {
    const p = await problem({ function: { id: "fn_00000000000000000000000000000000" }, point: { x: 1 } });
    expect(p).toMatchObject({ status: 404, kind: "not_found", field: "function.id" });
    expect(p.detail).toMatch(/no function has id fn_0+; register it first/);
    const missing = await s.get("/v1/functions/fn_nope");
    expect(missing.status).toBe(404);
    const e = await grpcError({ function: { source: { case: "id", value: "fn_nope" } }, point: { values: { x: 1 } } });
    expect(e.code).toBe(grpc.status.NOT_FOUND);
    await expect(s.getFunction("fn_nope")).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  });

  it("bad models, unsupported media types, unknown routes", async () => {
    const model = { input: [3], layers: [{ type: "dense", units: 2 }, { type: "wobble" }], loss: "softmax_cross_entropy" };
    const noBatch = await problem({ function: { model }, point: { x: 1 } });
    expect(noBatch).toMatchObject({ status: 400, field: "function.batch" });
    expect(noBatch.detail).toMatch(/depends on the batch size/);
    const layer = await problem({ function: { model, batch: 2 }, point: { x: 1 } });
    expect(layer).toMatchObject({ status: 400, field: "function.model.layers[1].type" });
    expect(layer.detail).toMatch(/unknown layer type wobble/);
    const csv = await problem("x,y", { "content-type": "text/csv" });
    expect(csv.status).toBe(415);
    const route = await s.get("/v2/differentiate");
    expect(route.status).toBe(404);
    const frame = await problem("{}", { "content-type": "application/vnd.adjoint+binary" });
    expect(frame).toMatchObject({ status: 400, field: "adjoint-header-length" });
  });
});

describe("hostile nesting", () => {
  it("answers 400 for arrays nested absurdly deep, and stays up", async () => {
    const s = await startTestServer();
    try {
      let deep = "1";
      for (let i = 0; i < 100_000; i++) deep = `[${deep}]`;
      for (const body of [
        `{"function": {"expression": "sum(x)", "inputs": [{"name": "x", "shape": [1]}]}, "point": {"x": ${deep}}}`,
        `{"function": {"graph": {"inputs": ["x"], "nodes": [{"id": "c", "op": "const", "value": ${deep}}], "outputs": ["c"]}}, "point": {"x": 1}}`,
        `{"function": {"expression": "${"(".repeat(5000)}x${")".repeat(5000)}"}, "point": {"x": 1}}`,
      ]) {
        const r = await fetch(`${s.base}/v1/differentiate`, { method: "POST", headers: { "content-type": "application/json" }, body });
        expect(r.status).toBe(400);
        expect(((await r.json()) as { detail: string }).detail).toMatch(
          /nested deeper than 32 levels|nests deeper than 500 levels|nested too deeply/,
        );
      }
      expect((await fetch(`${s.base}/healthz`)).status).toBe(200);
    } finally {
      await s.close();
    }
  });
});

describe("defaults from the environment", () => {
  it("take one worker per CPU the container may use", async () => {
    const { defaultWorkers } = await import("../../src/service/config.js");
    const { availableParallelism } = await import("node:os");
    expect(defaultWorkers("max 100000")).toBe(availableParallelism());
    expect(defaultWorkers("50000 100000")).toBe(1);
    expect(defaultWorkers("100000 100000\n")).toBe(1);
    expect(defaultWorkers(`${100000 * 64} 100000`)).toBe(availableParallelism());
    expect(defaultWorkers(undefined)).toBe(availableParallelism());
  });
});
