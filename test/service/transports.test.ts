import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DifferentiateRequestSchema, Mode } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { elements, num, startTestServer, streamAnswers, type TestServer, WORKED, WORKED_VALUES } from "./helpers.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer();
});
afterAll(async () => {
  await s?.close();
});

describe("the worked example", () => {
  it("answers exactly the documented request over HTTP", async () => {
    const r = await s.post("/v1/differentiate", WORKED);
    expect(r.status).toBe(200);
    expect(r.body.value).toBeCloseTo(0.2388659365334392, 15);
    expect((r.body.gradient as Record<string, number>).x1).toBeCloseTo(-0.35829890480015886, 15);
    expect((r.body.gradient as Record<string, number>).x2).toBeCloseTo(-0.11943296826671962, 15);
    expect(r.body.id).toMatch(/^fn_[0-9a-f]{32}$/);
    expect(r.body.mode).toBe("reverse");
    expect(r.headers.get("content-type")).toMatch(/^application\/json/);
  });

  it("gives identical numbers over HTTP and gRPC, in every mode", async () => {
    for (const [mode, grpcMode] of [
      ["value", Mode.VALUE],
      ["reverse", Mode.REVERSE],
      ["forward", Mode.FORWARD],
    ] as const) {
      const http = await s.post("/v1/differentiate", { ...WORKED, mode });
      const g = await s.differentiate({
        function: { source: { case: "expression", value: WORKED.function.expression } },
        point: { values: WORKED.point },
        mode: grpcMode,
      });
      expect(g.id).toBe(http.body.id);
      expect(num(g.result?.outputs.f)).toBe(http.body.value);
      expect(num(g.result?.outputs.f)).toBeCloseTo(WORKED_VALUES.f, 15);
      if (mode !== "value") {
        const grad = http.body.gradient as Record<string, number>;
        expect(num(g.result?.gradient.x1)).toBe(grad.x1);
        expect(num(g.result?.gradient.x2)).toBe(grad.x2);
        expect(grad.x1).toBeCloseTo(WORKED_VALUES.x1, 15);
      }
    }
  });

  it("carries the trace through both transports", async () => {
    const http = await s.post("/v1/differentiate", { ...WORKED, trace: true });
    const trace = http.body.trace as { mode: string; rows: { id: string; op: string; value: number; adjoint: number }[]; seed: unknown };
    expect(trace.mode).toBe("reverse");
    expect(trace.rows.map((r) => r.op)).toEqual(["input", "input", "square", "square", "add", "mul", "exp", "mul"]);
    expect(trace.rows[0]).toMatchObject({ id: "x1", value: 2 });
    expect(trace.rows[0].adjoint).toBeCloseTo(WORKED_VALUES.x1, 15);
    expect(trace.seed).toEqual({ id: "f", adjoint: 1 });

    const g = await s.differentiate({
      function: { source: { case: "expression", value: WORKED.function.expression } },
      point: { values: WORKED.point },
      trace: true,
    });
    const rows = g.result?.trace?.rows ?? [];
    expect(rows.map((r) => r.op)).toEqual(trace.rows.map((r) => r.op));
    rows.forEach((row, i) => {
      expect(num(row.value)).toBe(trace.rows[i].value);
      expect(num(row.adjoint)).toBe(trace.rows[i].adjoint);
    });
    expect(rows[5].args.map((a) => a.arg.value)).toEqual([-0.5, "v3"]);
  });

  it("takes the function as a JSON graph, and gives it the same id", async () => {
    const graph = {
      inputs: ["x1", "x2"],
      nodes: [
        { id: "x1_sq", op: "square", args: ["x1"] },
        { id: "x2_sq", op: "square", args: ["x2"] },
        { id: "r2", op: "add", args: ["x1_sq", "x2_sq"] },
        { id: "expo", op: "mul", args: [-0.5, "r2"] },
        { id: "gauss", op: "exp", args: ["expo"] },
        { id: "f", op: "mul", args: ["x1", "gauss"] },
      ],
      outputs: ["f"],
    };
    const byExpr = await s.post("/v1/differentiate", WORKED);
    const byGraph = await s.post("/v1/differentiate", { function: { graph }, point: WORKED.point });
    expect(byGraph.status).toBe(200);
    expect(byGraph.body.id).toBe(byExpr.body.id);
    expect(byGraph.body.gradient).toEqual(byExpr.body.gradient);
    const g = await s.differentiate({
      function: {
        source: {
          case: "graph",
          value: {
            inputs: [{ name: "x1" }, { name: "x2" }],
            nodes: graph.nodes.map((n) => ({
              id: n.id,
              op: n.op,
              args: n.args.map((a) => ({
                arg: typeof a === "number" ? { case: "number" as const, value: a } : { case: "id" as const, value: a },
              })),
            })),
            outputs: [{ name: "f", node: "f" }],
          },
        },
      },
      point: { values: WORKED.point },
    });
    expect(g.id).toBe(byExpr.body.id);
    expect(num(g.result?.gradient.x1)).toBe((byExpr.body.gradient as Record<string, number>).x1);
  });
});

describe("registered functions", () => {
  it("registers once, describes, and evaluates by id over both transports", async () => {
    const first = await fetch(`${s.base}/v1/functions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ function: { expressions: { f: "x*y", g: "x+sin(y)" } } }),
    });
    const info = (await first.json()) as { id: string; inputs: { name: string }[]; outputs: { name: string }[]; nodeCount: number };
    expect([200, 201]).toContain(first.status);
    expect(info.inputs.map((i) => i.name)).toEqual(["x", "y"]);
    expect(info.outputs.map((o) => o.name)).toEqual(["f", "g"]);
    const again = await s.post("/v1/functions", { function: { expressions: { f: "x*y", g: "x+sin(y)" } } });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(info.id);

    const described = await s.get(`/v1/functions/${info.id}`);
    expect(described.status).toBe(200);
    expect(described.body).toMatchObject({ id: info.id, nodeCount: info.nodeCount });

    const http = await s.post("/v1/differentiate", {
      function: { id: info.id },
      point: { x: 2, y: 3 },
      mode: "reverse",
      cotangent: { f: 1, g: 0 },
    });
    expect(http.status).toBe(200);
    expect(http.body.outputs).toEqual({ f: 6, g: 2 + Math.sin(3) });
    expect(http.body.vjp).toEqual({ x: 3, y: 2 });

    const viaGrpc = await s.register({
      source: {
        case: "expressions",
        value: {
          outputs: [
            { name: "f", text: "x*y" },
            { name: "g", text: "x+sin(y)" },
          ],
        },
      },
    });
    expect(viaGrpc.id).toBe(info.id);
    expect((await s.getFunction(info.id)).outputs.map((o) => o.name)).toEqual(["f", "g"]);
    const g = await s.differentiate({
      function: { source: { case: "id", value: info.id } },
      point: { values: { x: 2, y: 3 } },
      mode: Mode.FORWARD,
      tangent: { values: { x: 1, y: 0 } },
    });
    expect(num(g.result?.jvp.f)).toBe(3);
    expect(num(g.result?.jvp.g)).toBe(1);
  });
});

describe("batches", () => {
  const fn = { expression: "x1*exp(-0.5*(x1^2+x2^2))" };
  const points = Array.from({ length: 50 }, (_, i) => ({ x1: i / 10, x2: 1 - i / 25 }));

  it("answers a batch of points in order, the same as one point at a time", async () => {
    const batch = await s.post("/v1/differentiate", { function: fn, points });
    expect(batch.status).toBe(200);
    const results = batch.body.results as { value: number; gradient: Record<string, number> }[];
    expect(results).toHaveLength(points.length);
    for (const i of [0, 17, 49]) {
      const one = await s.post("/v1/differentiate", { function: fn, point: points[i] });
      expect(results[i].value).toBe(one.body.value);
      expect(results[i].gradient).toEqual(one.body.gradient);
    }
    const g = await s.differentiate({
      function: { source: { case: "expression", value: fn.expression } },
      points: points.map((p) => ({ values: p })),
    });
    expect(g.results).toHaveLength(points.length);
    expect(num(g.results[17].gradient.x2)).toBe(results[17].gradient.x2);
  });

  it("answers columns with columns, including base64 and the binary framing", async () => {
    const x1 = points.map((p) => p.x1);
    const x2 = points.map((p) => p.x2);
    const rows = (await s.post("/v1/differentiate", { function: fn, points })).body.results as {
      value: number;
      gradient: Record<string, number>;
    }[];
    const json = await s.post("/v1/differentiate", { function: fn, columns: { x1, x2 } });
    expect(json.status).toBe(200);
    const cols = json.body.columns as { value: { shape: number[]; data: number[] }; gradient: Record<string, { data: number[] }> };
    expect(cols.value.shape).toEqual([50]);
    expect(cols.value.data).toEqual(rows.map((r) => r.value));
    expect(cols.gradient.x2.data).toEqual(rows.map((r) => r.gradient.x2));

    const b64 = (a: number[]) => Buffer.from(Float64Array.from(a).buffer).toString("base64");
    const viaBase64 = await s.post("/v1/differentiate", {
      function: fn,
      columns: { x1: { shape: [50], dtype: "float64", base64: b64(x1) }, x2: { shape: [50], base64: b64(x2) } },
    });
    expect((viaBase64.body.columns as typeof cols).value.data).toEqual(cols.value.data);

    const header = JSON.stringify({
      function: fn,
      columns: {
        x1: { shape: [50], dtype: "float64", binary: { offset: 0, length: 400 } },
        x2: { shape: [50], binary: { offset: 400, length: 400 } },
      },
    });
    const body = Buffer.concat([Buffer.from(header), Buffer.from(Float64Array.from([...x1, ...x2]).buffer)]);
    const res = await fetch(`${s.base}/v1/differentiate`, {
      method: "POST",
      headers: {
        "content-type": "application/vnd.adjoint+binary",
        "adjoint-header-length": String(Buffer.byteLength(header)),
        accept: "application/vnd.adjoint+binary",
      },
      body,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/vnd.adjoint+binary");
    const bytes = Buffer.from(await res.arrayBuffer());
    const n = Number(res.headers.get("adjoint-header-length"));
    const answer = JSON.parse(bytes.subarray(0, n).toString()) as { columns: { value: { binary: { offset: number; length: number } } } };
    const ref = answer.columns.value.binary;
    const data = new Float64Array(bytes.buffer.slice(bytes.byteOffset + n + ref.offset, bytes.byteOffset + n + ref.offset + ref.length));
    expect(Array.from(data)).toEqual(cols.value.data);

    const g = await s.differentiate({
      function: { source: { case: "expression", value: fn.expression } },
      columns: { x1: { shape: [50], values: x1 }, x2: { shape: [50], raw: new Uint8Array(Float64Array.from(x2).buffer) } },
    });
    expect(elements(g.columns?.outputs.f)).toEqual(cols.value.data);
    expect(elements(g.columns?.gradient.x1)).toEqual(cols.gradient.x1.data);
  });

  it("splits a big batch across the pool with the same answers as inline", async () => {
    // Forward mode without a tangent goes point by point (it does not vectorise): enough work for the pool.
    const many = Array.from({ length: 4000 }, (_, i) => ({ x1: Math.sin(i), x2: Math.cos(i) }));
    const big = await s.post("/v1/differentiate", { function: fn, points: many, mode: "forward" });
    expect(big.status).toBe(200);
    const results = big.body.results as { value: number; gradient: Record<string, number> }[];
    const vectorised = (await s.post("/v1/differentiate", { function: fn, points: many })).body.results as typeof results;
    for (const i of [0, 1234, 3999]) {
      expect(vectorised[i].value).toBe(results[i].value);
      expect(vectorised[i].gradient.x1).toBeCloseTo(results[i].gradient.x1, 15);
      const one = await s.post("/v1/differentiate", { function: fn, point: many[i], mode: "forward" });
      expect(results[i]).toEqual({ value: one.body.value, gradient: one.body.gradient });
    }
    const metrics = (await s.get("/metrics")).text;
    expect(metrics).toMatch(/adjoint_jobs_total\{where="pool"\} [1-9]/);
    expect(metrics).toMatch(/adjoint_jobs_total\{where="inline"\} [1-9]/);
  });
});

describe("the gRPC stream", () => {
  it("answers 1,000 points in order on one function compiled once", async () => {
    const call = s.client.differentiateStream();
    const done = streamAnswers(call);
    const point = (i: number) => ({ values: { x1: i / 500, x2: 0.5 } });
    call.write(
      create(DifferentiateRequestSchema, {
        function: { source: { case: "expression", value: WORKED.function.expression } },
        point: point(0),
      }),
    );
    for (let i = 1; i < 1000; i++) call.write(create(DifferentiateRequestSchema, { point: point(i) }));
    call.end();
    const answers = await done;
    expect(answers).toHaveLength(1000);
    answers.forEach((a, i) => {
      expect(Number(a.sequence)).toBe(i);
    });
    const x1 = 1.2;
    const expected = x1 * Math.exp(-0.5 * (x1 * x1 + 0.25));
    expect(num(answers[600].result?.outputs.f)).toBeCloseTo(expected, 14);
    expect(num(answers[600].result?.gradient.x1)).toBeCloseTo((1 - x1 * x1) * Math.exp(-0.5 * (x1 * x1 + 0.25)), 14);
    expect(new Set(answers.map((a) => a.id)).size).toBe(1);
  });

  it("ends the stream with INVALID_ARGUMENT when the first message names no function", async () => {
    const call = s.client.differentiateStream();
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      call.on("error", resolve);
      call.on("data", () => {});
      call.write(create(DifferentiateRequestSchema, { point: { values: { x: 1 } } }));
      call.end();
    });
    expect(err.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(err.details).toMatch(/first message of a stream must name the function/);
  });
});

describe("tensors", () => {
  it("accepts tensor inputs in every form and answers tensors", async () => {
    const fn = {
      expression: "sum(w*x)",
      inputs: [
        { name: "w", shape: [3] },
        { name: "x", shape: [3] },
      ],
    };
    const forms = [
      [1, 2, 3],
      { shape: [3], data: [1, 2, 3] },
      { shape: [3], dtype: "float64", base64: Buffer.from(Float64Array.of(1, 2, 3).buffer).toString("base64") },
      { shape: [3], dtype: "float32", base64: Buffer.from(Float32Array.of(1, 2, 3).buffer).toString("base64") },
    ];
    for (const w of forms) {
      const r = await s.post("/v1/differentiate", { function: fn, point: { w, x: [4, 5, 6] } });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      expect(r.body.value).toBe(32);
      expect(r.body.gradient).toEqual({ w: { shape: [3], data: [4, 5, 6] }, x: { shape: [3], data: [1, 2, 3] } });
    }
    const g = await s.differentiate({
      function: { source: { case: "expression", value: fn.expression }, inputs: fn.inputs },
      point: { tensors: { w: { shape: [3], values: [1, 2, 3] }, x: { shape: [3], raw: new Uint8Array(Float64Array.of(4, 5, 6).buffer) } } },
    });
    expect(num(g.result?.outputs.f)).toBe(32);
    expect(elements(g.result?.gradient.w)).toEqual([4, 5, 6]);
    expect(g.result?.gradient.w.shape).toEqual([3]);
  });
});

describe("models", () => {
  it("differentiates a model's loss with respect to its parameters, over both transports", async () => {
    const model = { input: [3], layers: [{ type: "dense", units: 2, name: "fc" }], loss: "softmax_cross_entropy" };
    const point = {
      x: [
        [1, 2, 3],
        [0, -1, 0.5],
      ],
      y: [1, 0],
      "fc.weight": [
        [0.1, -0.2],
        [0.3, 0.05],
        [-0.1, 0.2],
      ],
      "fc.bias": [0.01, -0.01],
    };
    const http = await s.post("/v1/differentiate", { function: { model }, point });
    expect(http.status, JSON.stringify(http.body)).toBe(200);
    const gradient = http.body.gradient as Record<string, { shape: number[]; data: number[] }>;
    expect(Object.keys(gradient)).toEqual(["fc.weight", "fc.bias"]);
    expect(gradient["fc.weight"].shape).toEqual([3, 2]);
    // Softmax cross-entropy: the bias gradient is the mean over the batch of softmax(logits) − onehot(y).
    const logits = point.x.map((row) => [0, 1].map((j) => row.reduce((a, v, i) => a + v * point["fc.weight"][i][j], point["fc.bias"][j])));
    const soft = logits.map((l) => l.map((v) => Math.exp(v) / l.reduce((a, u) => a + Math.exp(u), 0)));
    const expected = [0, 1].map((j) => (soft[0][j] - (point.y[0] === j ? 1 : 0) + soft[1][j] - (point.y[1] === j ? 1 : 0)) / 2);
    gradient["fc.bias"].data.forEach((g, j) => {
      expect(g).toBeCloseTo(expected[j], 14);
    });

    const tensor = (shape: number[], values: number[]) => ({ shape, values });
    const g = await s.differentiate({
      function: { source: { case: "model", value: model as never } },
      point: {
        tensors: {
          x: tensor([2, 3], point.x.flat()),
          y: tensor([2], point.y),
          "fc.weight": tensor([3, 2], point["fc.weight"].flat()),
          "fc.bias": tensor([2], point["fc.bias"]),
        },
      },
    });
    expect(g.id).toBe(http.body.id);
    expect(num(g.result?.outputs.loss)).toBe(http.body.value);
    expect(elements(g.result?.gradient["fc.weight"])).toEqual(gradient["fc.weight"].data);
  });
});

describe("the rest of the API", () => {
  it("lists the ops with arity and modes over both transports", async () => {
    const http = await s.get("/v1/ops");
    const ops = http.body.ops as { name: string; arity: { min: number; max: number | null }; modes: string[]; maxOrder: number }[];
    const exp = ops.find((o) => o.name === "exp");
    const allModes = [
      "value",
      "reverse",
      "forward",
      "jacobian",
      "hessian",
      "hvp",
      "derivative",
      "divergence",
      "laplacian",
      "check",
      "sparsity",
    ];
    expect(exp).toMatchObject({ arity: { min: 1, max: 1 }, modes: allModes, maxOrder: 16 });
    // prod's derivative rule is first order only, and the op it uses for it has no rule at all.
    expect(ops.find((o) => o.name === "prod")).toMatchObject({
      maxOrder: 1,
      modes: ["value", "reverse", "forward", "jacobian", "divergence", "check", "sparsity"],
    });
    expect(ops.find((o) => o.name === "prod_others")).toMatchObject({ maxOrder: 0, modes: ["value"] });
    const g = await s.listOps();
    expect(g.ops.map((o) => o.name)).toEqual(ops.map((o) => o.name));
    expect(g.modes).toEqual(allModes);
  });

  it("serves openapi.yaml, the API page, health, readiness and metrics", async () => {
    const yaml = await s.get("/openapi.yaml");
    expect(yaml.status).toBe(200);
    expect(yaml.text).toMatch(/^openapi: 3\.1/);
    const docs = await fetch(`${s.base}/docs/`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toMatch(/swagger/i);
    expect((await s.get("/healthz")).status).toBe(200);
    expect((await s.get("/readyz")).body).toEqual({ status: "ready" });
    const metrics = (await s.get("/metrics")).text;
    expect(metrics).toMatch(/adjoint_requests_total\{transport="http",route="\/v1\/differentiate",status="200"\}/);
    expect(metrics).toMatch(/adjoint_request_duration_seconds_bucket\{le="0.001",transport="grpc",route="Differentiate",status="OK"\}/);
    expect(metrics).toMatch(/adjoint_cache_lookups_total\{cache="source",result="hit"\} [1-9]/);
    expect(metrics).toMatch(/adjoint_pool_utilization /);
    expect(metrics).toMatch(/adjoint_pool_queue_wait_seconds_count [1-9]/);
  });

  it("puts the request id on every log line of a request, taken from x-request-id", async () => {
    const r = await s.post("/v1/differentiate", WORKED, { "x-request-id": "req-12345" });
    expect(r.headers.get("x-request-id")).toBe("req-12345");
    await s.post("/v1/differentiate", { function: { expression: "x+" }, point: { x: 1 } }, { "x-request-id": "req-67890" });
    const mine = s.logs.lines.filter((l) => l.reqId === "req-67890");
    expect(mine.length).toBeGreaterThanOrEqual(2);
    expect(mine.map((l) => l.msg)).toContain("request completed");
    await s.differentiate({ function: { source: { case: "expression", value: "x" } }, point: { values: { x: 1 } } });
    const grpcLine = s.logs.lines.find((l) => l.method === "Differentiate");
    expect(grpcLine?.reqId).toEqual(expect.any(String));
  });

  it("answers 200 concurrent requests, all correctly", async () => {
    const requests = Array.from({ length: 200 }, (_, i) => {
      const x1 = (i - 100) / 37;
      return { x1, expected: x1 * Math.exp(-0.5 * (x1 * x1 + 0.25)) };
    });
    const answers = await Promise.all(
      requests.map(({ x1 }, i) =>
        i % 2 === 0
          ? s.post("/v1/differentiate", { function: WORKED.function, point: { x1, x2: 0.5 } }).then((r) => r.body.value as number)
          : s
              .differentiate({
                function: { source: { case: "expression", value: WORKED.function.expression } },
                point: { values: { x1, x2: 0.5 } },
              })
              .then((r) => num(r.result?.outputs.f)),
      ),
    );
    answers.forEach((a, i) => {
      expect(a).toBeCloseTo(requests[i].expected, 14);
    });
  });
});
