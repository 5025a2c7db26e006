import { connect } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { asAdjointError } from "../../src/errors.js";
import { contentHash } from "../../src/ir/hash.js";
import { readJsonGraph } from "../../src/ir/json-graph.js";
import { compileModel, type ModelDefinition } from "../../src/ir/model.js";
import { errorFromData, errorToData } from "../../src/runtime/batch.js";
import { problemDetails } from "../../src/service/errors.js";
import { startTestServer, type TestServer, WORKED, WORKED_VALUES } from "./helpers.js";

let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ bodyTimeoutMs: 500, grpcMaxMessage: 4096 });
});
afterAll(async () => {
  await s?.close();
});

/** A client that sends whatever bytes it is given, and hands back the answer's bytes. */
function rawClient(port: number) {
  const Raw = grpc.makeGenericClientConstructor(
    {
      differentiate: {
        path: "/adjoint.v1.AdjointService/Differentiate",
        requestStream: false,
        responseStream: false,
        requestSerialize: (b: Buffer) => b,
        requestDeserialize: (b: Buffer) => b,
        responseSerialize: (b: Buffer) => b,
        responseDeserialize: (b: Buffer) => b,
      },
    },
    "Raw",
  );
  return new Raw(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    differentiate(req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
  };
}

describe("HTTP timeouts", () => {
  it("closes a connection whose body trickles in (1 byte of a declared 1,000, then silence)", async () => {
    const socket = connect(s.app.httpPort, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    const started = performance.now();
    let answer = "";
    socket.on("data", (d) => {
      answer += d.toString();
    });
    socket.on("error", () => {});
    socket.write("POST /v1/differentiate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{");
    await new Promise((r) => socket.once("close", r));
    const ms = performance.now() - started;
    // bodyTimeoutMs is 500; Node checks connections every 125 ms.
    expect(ms).toBeGreaterThanOrEqual(450);
    expect(ms).toBeLessThan(2000);
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
    // The slot it held is free again.
    const ok = await s.post("/v1/differentiate", WORKED);
    expect(ok.status).toBe(200);
  });
});

describe("gRPC messages", () => {
  it("answers undecodable bytes with INVALID_ARGUMENT", async () => {
    const client = rawClient(s.app.grpcPort);
    try {
      const err = await new Promise<grpc.ServiceError | null>((resolve) =>
        client.differentiate(Buffer.from([0xff, 0xff, 0xff, 0xff]), (e) => resolve(e)),
      );
      expect(err?.code).toBe(grpc.status.INVALID_ARGUMENT);
      expect(err?.details).toMatch(/^the request message could not be decoded: /);
      expect(err?.details).not.toMatch(/\.(ts|js)\b|\n\s+at /);
    } finally {
      client.close();
    }
    const metrics = (await s.get("/metrics")).text;
    expect(metrics).toMatch(/adjoint_requests_total\{transport="grpc",route="Differentiate",status="INVALID_ARGUMENT"\} 1\b/);
  });

  it("refuses an answer over the message limit with RESOURCE_EXHAUSTED, and counts it so", async () => {
    // 300 points: about 2.4 kB of request, and over 4 kB of answer (values and gradients).
    const x = Array.from({ length: 300 }, (_, i) => i / 300);
    const err = await s
      .differentiate({
        function: { source: { case: "expression", value: "x*x" } },
        columns: { x: { shape: [300], raw: new Uint8Array(Float64Array.from(x).buffer) } },
      })
      .catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect((err as grpc.ServiceError).details).toMatch(
      /^the answer is \d+ bytes, over the message limit of 4096 bytes \(ADJOINT_GRPC_MAX_MESSAGE\)/,
    );
    const metrics = (await s.get("/metrics")).text;
    expect(metrics).toMatch(/adjoint_requests_total\{transport="grpc",route="Differentiate",status="RESOURCE_EXHAUSTED"\} 1\b/);
    expect(metrics).not.toMatch(/adjoint_requests_total\{transport="grpc",route="Differentiate",status="OK"\}/);
    // A small answer still goes through.
    const ok = await s.differentiate({
      function: { source: { case: "expression", value: WORKED.function.expression } },
      point: { values: WORKED.point },
    });
    expect(ok.result?.outputs.f.values[0]).toBeCloseTo(WORKED_VALUES.f, 15);
  });
});

describe("internal errors", () => {
  it("cross from a worker with a generic message; the stack is kept for the log only", () => {
    const data = errorToData(new TypeError("cannot read properties of undefined (reading 'shape')"));
    expect(data.kind).toBe("internal");
    expect(data.message).toBe("internal error; the server log has the details (search for the request id)");
    expect(data.logDetail).toMatch(/TypeError: cannot read properties/);
    const error = errorFromData(structuredClone(data));
    const problem = problemDetails(error, "req-1");
    expect(problem).toEqual({
      type: "urn:adjoint:problem:internal",
      title: "Internal error",
      status: 500,
      detail: "internal error; the server log has the details (search for the request id)",
      kind: "internal",
      requestId: "req-1",
    });
    expect(JSON.stringify(problem)).not.toMatch(/TypeError|\.(ts|js)\b/);
    // The log's serialiser sees the stack through the (non-enumerable) cause.
    expect(Object.keys(error)).not.toContain("cause");
    expect((error.cause as { stack: string }).stack).toMatch(/TypeError: cannot read properties/);
  });

  it("make a failed allocation resource_exhausted, with a clear message", () => {
    let thrown: unknown;
    try {
      new Float64Array(2 ** 40);
    } catch (e) {
      thrown = e;
    }
    expect(thrown).toBeInstanceOf(RangeError);
    const data = errorToData(thrown);
    expect(data.kind).toBe("resource_exhausted");
    expect(data.message).toMatch(/needs more memory than the server can allocate/);
    expect(asAdjointError(new RangeError("Array buffer allocation failed")).kind).toBe("resource_exhausted");
    expect(asAdjointError(new RangeError("Maximum call stack size exceeded")).kind).toBe("internal");
  });
});

/** An IR graph written back as a JSON graph (what a client could send for the same function). */
function asJsonGraph(graph: ReturnType<typeof compileModel>["graph"]) {
  const id = (n: number) => graph.nodes[n].name ?? `n${n}`;
  const inputs = graph.inputs.map((i) => ({ name: i.name, shape: [...graph.nodes[i.node].shape], dtype: graph.nodes[i.node].dtype }));
  const nodes = graph.nodes.flatMap((node, n): Record<string, unknown>[] => {
    if (node.op === "input") return [];
    if (node.op === "const") {
      const value = node.data ? { shape: [...node.shape], data: Array.from(node.data) } : node.value;
      return [{ id: id(n), op: "const", value }];
    }
    return [{ id: id(n), op: node.op, args: node.args.map(id), ...(node.attrs ? { attrs: node.attrs } : {}) }];
  });
  return { inputs, nodes, outputs: graph.outputs.map((o) => ({ name: o.name, node: id(o.node) })) };
}

describe("identity: a model and the same graph sent as a plain function", () => {
  const model: ModelDefinition = { input: [3], layers: [{ type: "dense", units: 2, name: "fc" }], loss: "softmax_cross_entropy" };
  const batch = 2;
  const compiled = compileModel(model, batch);
  const graph = asJsonGraph(compiled.graph);
  const point = {
    x: { shape: [batch, 3], data: [0.1, -0.2, 0.3, 0.4, 0.5, -0.6] },
    y: [0, 1],
    "fc.weight": { shape: [3, 2], data: [0.1, 0.2, -0.1, 0.3, 0.05, -0.2] },
    "fc.bias": { shape: [2], data: [0.01, -0.02] },
  };

  it("starts from graphs with the same content hash", () => {
    expect(contentHash(readJsonGraph(graph))).toBe(contentHash(compiled.graph));
  });

  /** Each answers as it would alone, whichever came first: different ids, gradients and initialize. */
  async function check(order: "graph first" | "model first", server: TestServer) {
    const asGraph = () => server.post("/v1/differentiate", { function: { graph }, point });
    const asModel = () => server.post("/v1/differentiate", { function: { model, batch }, point });
    let g: Awaited<ReturnType<typeof asGraph>>;
    let m: Awaited<ReturnType<typeof asModel>>;
    if (order === "graph first") {
      g = await asGraph();
      m = await asModel();
    } else {
      m = await asModel();
      g = await asGraph();
    }
    expect(g.status).toBe(200);
    expect(m.status).toBe(200);
    expect(g.body.id).not.toBe(m.body.id);
    // The plain graph's default gradient is by every float input; the model's by its parameters.
    expect(Object.keys(g.body.gradient as object).sort()).toEqual(["fc.bias", "fc.weight", "x"]);
    expect(Object.keys(m.body.gradient as object).sort()).toEqual(["fc.bias", "fc.weight"]);
    expect(m.body.value).toBe(g.body.value);
    const { "fc.weight": _w, "fc.bias": _b, ...data } = point;
    const init = await server.post("/v1/differentiate", { function: { graph }, point: data, initialize: { seed: 1 } });
    expect(init.status).toBe(400);
    expect(init.body.detail).toMatch(/only a model's parameters can be initialised/);
    const modelInit = await server.post("/v1/differentiate", { function: { model, batch }, point: data, initialize: { seed: 1 } });
    expect(modelInit.status).toBe(200);
    // Both ids resolve to their own function.
    const byGraphId = await server.post("/v1/differentiate", { function: { id: g.body.id }, point });
    const byModelId = await server.post("/v1/differentiate", { function: { id: m.body.id }, point });
    expect(Object.keys(byGraphId.body.gradient as object).sort()).toEqual(["fc.bias", "fc.weight", "x"]);
    expect(Object.keys(byModelId.body.gradient as object).sort()).toEqual(["fc.bias", "fc.weight"]);
  }

  it("graph first, then model", async () => {
    const fresh = await startTestServer();
    try {
      await check("graph first", fresh);
    } finally {
      await fresh.close();
    }
  });

  it("model first, then graph", async () => {
    const fresh = await startTestServer();
    try {
      await check("model first", fresh);
    } finally {
      await fresh.close();
    }
  });
});
