import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ElementType, Mode } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { elements, num, startTestServer, type TestServer, WORKED, WORKED_VALUES } from "./helpers.js";

/** The conventions issue 15 asked to make the same over both transports (docs/service.md, "Conventions"). */
let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.close();
});

const MODEL = { input: [3], layers: [{ type: "dense", units: 2, name: "fc" }], loss: "softmax_cross_entropy" };
const DATA = { x: [1, 2, 3, 0, -1, 0.5], y: [1, 0], w: [0.1, -0.2, 0.3, 0.05, -0.1, 0.2], b: [0.01, -0.01] };
const raw = (a: { buffer: ArrayBufferLike }) => new Uint8Array(a.buffer);
const f64 = (shape: number[], values: number[]) => ({ shape, dtype: ElementType.FLOAT64, raw: raw(Float64Array.from(values)) });
const modelTensors = (y: { shape: number[]; dtype: ElementType; raw: Uint8Array }) => ({
  x: f64([2, 3], DATA.x),
  y,
  "fc.weight": f64([3, 2], DATA.w),
  "fc.bias": f64([2], DATA.b),
});

describe("the single-output shortcut", () => {
  it("answers gRPC's `value` as REST's, next to `outputs`, on the fast scalar path and the general one", async () => {
    const g = await s.differentiate({
      function: { source: { case: "expression", value: WORKED.function.expression } },
      point: { values: WORKED.point },
    });
    expect(num(g.result?.value)).toBe(WORKED_VALUES.f);
    expect(num(g.result?.outputs.f)).toBe(WORKED_VALUES.f);
    const vector = await s.differentiate({
      function: { source: { case: "expression", value: "sin(x)" }, inputs: [{ name: "x", shape: [3] }] },
      point: { tensors: { x: { shape: [3], values: [0, 1, 2] } } },
      mode: Mode.VALUE,
    });
    expect(elements(vector.result?.value)).toEqual([0, Math.sin(1), Math.sin(2)]);
    const two = await s.differentiate({
      function: {
        source: {
          case: "expressions",
          value: {
            outputs: [
              { name: "a", text: "x" },
              { name: "b", text: "2*x" },
            ],
          },
        },
      },
      point: { values: { x: 1 } },
      mode: Mode.VALUE,
    });
    expect(two.result?.value).toBeUndefined();
  });
});

describe("integer element types", () => {
  it("takes int32 and int64 labels over gRPC with the same answer as float64 ones", async () => {
    const fn = { source: { case: "model" as const, value: MODEL as never } };
    const asFloat = await s.differentiate({ function: fn, point: { tensors: modelTensors(f64([2], DATA.y)) } });
    for (const [dtype, data] of [
      [ElementType.INT32, raw(Int32Array.from(DATA.y))],
      [ElementType.INT64, raw(BigInt64Array.from(DATA.y.map(BigInt)))],
    ] as const) {
      const answer = await s.differentiate({ function: fn, point: { tensors: modelTensors({ shape: [2], dtype, raw: data }) } });
      expect(num(answer.result?.value)).toBe(num(asFloat.result?.value));
      expect(elements(answer.result?.gradient["fc.weight"])).toEqual(elements(asFloat.result?.gradient["fc.weight"]));
    }
  });

  it("takes them as base64 over REST, and refuses an int64 that float64 cannot hold", async () => {
    const labels = Buffer.from(raw(BigInt64Array.from([1n, 0n]))).toString("base64");
    const point = { x: [DATA.x.slice(0, 3), DATA.x.slice(3)], y: { shape: [2], dtype: "int64", base64: labels } };
    const params = { "fc.weight": [DATA.w.slice(0, 2), DATA.w.slice(2, 4), DATA.w.slice(4)], "fc.bias": DATA.b };
    const ok = await s.post("/v1/differentiate", { function: { model: MODEL }, point: { ...point, ...params } });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    const big = Buffer.from(raw(BigInt64Array.from([2n ** 60n, 0n]))).toString("base64");
    const refused = await s.post("/v1/differentiate", {
      function: { model: MODEL },
      point: { ...point, ...params, y: { shape: [2], dtype: "int64", base64: big } },
    });
    expect(refused.status).toBe(400);
    expect(String(refused.body.detail)).toContain("2^53");
  });
});

describe("the typed model message", () => {
  it("means what the same model means as JSON (and as a Struct): same id, same numbers", async () => {
    const http = await s.post("/v1/differentiate", {
      function: { model: MODEL },
      point: {
        x: [DATA.x.slice(0, 3), DATA.x.slice(3)],
        y: DATA.y,
        "fc.weight": [DATA.w.slice(0, 2), DATA.w.slice(2, 4), DATA.w.slice(4)],
        "fc.bias": DATA.b,
      },
    });
    const typed = await s.differentiate({
      function: {
        source: {
          case: "sequentialModel",
          value: { input: [3], layers: [{ type: "dense", units: 2, name: "fc" }], loss: "softmax_cross_entropy" },
        },
      },
      point: { tensors: modelTensors(f64([2], DATA.y)) },
    });
    expect(typed.id).toBe(http.body.id);
    expect(num(typed.result?.value)).toBe(http.body.value);
  });

  it("reports a bad layer by its index, as for JSON", async () => {
    const bad = s.differentiate({
      function: { source: { case: "sequentialModel", value: { input: [3], layers: [{ type: "dense" }], loss: "mse" } }, batch: 2 },
      point: { tensors: {} },
    });
    await expect(bad).rejects.toMatchObject({ details: expect.stringContaining("model.layers[0]") });
  });
});

describe("negative zero", () => {
  it("keeps its sign over both transports: -0.0 in JSON, −0.0 in gRPC", async () => {
    const fn = { expression: "-x*y" };
    const http = await s.post("/v1/differentiate", { function: fn, point: { x: 0, y: 1 } });
    const text = JSON.stringify(http.body);
    expect(Object.is(http.body.value, -0), text).toBe(true);
    const g = await s.differentiate({
      function: { source: { case: "expression", value: fn.expression } },
      point: { values: { x: 0, y: 1 } },
    });
    expect(Object.is(num(g.result?.value), -0)).toBe(true);
    expect(Object.is((http.body.gradient as Record<string, number>).y, num(g.result?.gradient.y))).toBe(true);
    const vector = await s.post("/v1/differentiate", {
      function: { expression: "-x", inputs: [{ name: "x", shape: [2] }] },
      point: { x: [0, 1] },
      mode: "value",
    });
    expect(Object.is((vector.body.value as { data: number[] }).data[0], -0)).toBe(true);
  });
});

describe("the op manifest", () => {
  it("carries kinks, secondOrder and operands over both transports", async () => {
    const http = await s.get("/v1/ops");
    const ops = http.body.ops as { name: string; operands: string; kinks?: string; secondOrder?: string }[];
    const g = await s.listOps();
    for (const op of ops) {
      const o = g.ops.find((x) => x.name === op.name);
      expect(op.operands.length, op.name).toBeGreaterThan(0);
      expect(o?.operands).toBe(op.operands);
      expect(o?.kinks).toBe(op.kinks ?? "");
      expect(o?.secondOrder).toBe(op.secondOrder ?? "");
    }
    expect(ops.find((o) => o.name === "scatter_add")?.operands).toMatch(/^updates, indices/);
    expect(ops.filter((o) => o.kinks).length).toBeGreaterThan(0);
  });
});

describe("average pooling as torch has it", () => {
  it("counts padding and rounds the extent up when asked, in graphs and in models over both transports", async () => {
    const x = { shape: [1, 1, 3, 3], data: [1, 2, 3, 4, 5, 6, 7, 8, 9] };
    const graph = (attrs: Record<string, unknown>) => ({
      inputs: [{ name: "x", shape: [1, 1, 3, 3] }],
      nodes: [{ id: "p", op: "avg_pool2d", args: ["x"], attrs: { kernel: 2, ...attrs } }],
      outputs: [{ name: "p", node: "p" }],
    });
    const pooled = async (attrs: Record<string, unknown>) => {
      const r = await s.post("/v1/differentiate", { function: { graph: graph(attrs) }, point: { x }, mode: "value" });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return r.body.value as { shape: number[]; data: number[] };
    };
    // torch.nn.functional.avg_pool2d(x, 2, ceil_mode=True): the last window is clipped to the input.
    expect(await pooled({ ceil_mode: true })).toEqual({ shape: [1, 1, 2, 2], data: [3, 4.5, 7.5, 9] });
    expect(await pooled({})).toEqual({ shape: [1, 1, 1, 1], data: [3] });
    // padding 1, stride 1: the corner window holds one element and three zeros of padding.
    expect((await pooled({ padding: 1, stride: 1, count_include_pad: true })).data[0]).toBe(0.25);
    expect((await pooled({ padding: 1, stride: 1 })).data[0]).toBe(1);

    const layers = [{ type: "avg_pool2d", kernel: 2, padding: 1, countIncludePad: true, ceilMode: true }, { type: "flatten" }];
    const model = { input: [1, 3, 3], layers, loss: "mse" };
    const y = { shape: [1, 4], data: [0, 0, 0, 0] };
    const http = await s.post("/v1/differentiate", { function: { model }, point: { x, y } });
    expect(http.status, JSON.stringify(http.body)).toBe(200);
    const typed = await s.differentiate({
      function: {
        source: {
          case: "sequentialModel",
          value: {
            input: [1, 3, 3],
            layers: [{ type: "avg_pool2d", kernel: [2], padding: [1], countIncludePad: true, ceilMode: true }, { type: "flatten" }],
            loss: "mse",
          },
        },
      },
      point: { tensors: { x: { shape: x.shape, values: x.data }, y: { shape: y.shape, values: y.data } } },
    });
    expect(typed.id).toBe(http.body.id);
    expect(num(typed.result?.value)).toBe(http.body.value);
  });
});
