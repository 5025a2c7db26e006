import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bigGraph, graphFunction } from "../../bench/abuse/families.js";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { AdjointError } from "../../src/errors.js";
import { POOL_GRAPH_NODES, readGraph } from "../../src/runtime/parse-function.js";
import { LARGE_BODY } from "../../src/service/admission.js";
import { num, startTestServer, type TestServer } from "./helpers.js";

/**
 * A large JSON graph is built and hashed on the pool (runtime/parse-function.ts): in a body read on
 * the pool, by the worker that read it (prebuildGraph); over gRPC or in a smaller body, by a parse task.
 * Building 60,000 nodes held the event loop about 240 ms. The id, the answer and the errors must be the ones
 * building it here gives.
 */
let s: TestServer;
beforeAll(async () => {
  // One worker and every request on the pool: the worker that read the body is the one that evaluates it.
  s = await startTestServer({ workers: 1, inlineBudgetUs: 0 });
});
afterAll(async () => {
  await s?.close();
});

/** The error building `graph` here meets (none: the test fails). */
function buildingHere(graph: unknown): AdjointError {
  try {
    readGraph(graph, "function", 100_000);
  } catch (e) {
    expect(e).toBeInstanceOf(AdjointError);
    return e as AdjointError;
  }
  throw new Error("the graph was built");
}

const workerLookups = async (result: "hit" | "miss") =>
  Number(
    new RegExp(`adjoint_cache_lookups_total\\{cache="worker",result="${result}"\\} (\\d+)`).exec((await s.get("/metrics")).text)?.[1] ?? 0,
  );

describe("a large JSON graph", () => {
  it("is built by the worker that read its body: the id and answer of building it here, and nothing to compile after", async () => {
    const graph = bigGraph(2 * POOL_GRAPH_NODES, 0);
    const point = { x: 0.7, y: -0.4 };
    const body = JSON.stringify({ function: { graph }, point });
    expect(body.length).toBeGreaterThan(LARGE_BODY);
    const local = new CompiledFunction(readGraph(graph, "function", 100_000));
    const want = local.evaluate(point, { mode: "reverse" });
    const [hits, misses] = [await workerLookups("hit"), await workerLookups("miss")];

    const answer = await s.post("/v1/differentiate", body);
    expect(answer.status).toBe(200);
    expect(answer.body.id).toBe(local.hash);
    expect(answer.body.value).toBe(want.outputs[graph.outputs[0]]);
    expect(answer.body.gradient).toEqual(want.gradient);
    // The worker kept what it built: the evaluation found it compiled.
    expect(await workerLookups("hit")).toBe(hits + 1);
    expect(await workerLookups("miss")).toBe(misses);
  });

  it("registers under the id building it here gives, and is found by that id", async () => {
    const graph = bigGraph(2 * POOL_GRAPH_NODES, 1);
    const registered = await s.post("/v1/functions", { function: { graph } });
    expect(registered.status).toBe(201);
    expect(registered.body.id).toBe(new CompiledFunction(readGraph(graph, "function", 100_000)).hash);
    const byId = await s.post("/v1/differentiate", { function: { id: registered.body.id }, point: { x: 1, y: 2 } });
    expect(byId.status).toBe(200);
  });

  it("that is wrong deep inside is refused with the field and words building it here gives", async () => {
    const graph = bigGraph(2 * POOL_GRAPH_NODES, 2);
    (graph.nodes[1500] as { op: string }).op = "no_such_op";
    const local = buildingHere(graph);
    const answer = await s.post("/v1/differentiate", { function: { graph }, point: { x: 1, y: 2 } });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ kind: "invalid_argument", field: local.location.field, detail: local.message });
    expect(answer.body.field).toBe("function.graph.nodes[1500].op");
  });
});

describe("a large graph the event loop has as objects (gRPC, a small body)", () => {
  it("over gRPC is built on the pool: the id and answer of building it here, and nothing to compile after", async () => {
    const graph = bigGraph(2 * POOL_GRAPH_NODES, 4);
    const local = new CompiledFunction(readGraph(graph, "function", 100_000));
    const want = local.evaluate({ x: 0.2, y: 1.5 }, { mode: "reverse" });
    const [hits, misses] = [await workerLookups("hit"), await workerLookups("miss")];
    const answer = await s.differentiate({ function: graphFunction(graph), point: { values: { x: 0.2, y: 1.5 } } });
    expect(answer.id).toBe(local.hash);
    expect(num(answer.result?.value)).toBe(want.outputs[graph.outputs[0]]);
    expect(Object.fromEntries(Object.entries(answer.result?.gradient ?? {}).map(([k, t]) => [k, num(t)]))).toEqual(want.gradient);
    expect(await workerLookups("hit")).toBe(hits + 1);
    expect(await workerLookups("miss")).toBe(misses);
  });

  it("in a body read on the event loop is built on the pool too", async () => {
    const graph = bigGraph(POOL_GRAPH_NODES, 5);
    const body = JSON.stringify({ function: { graph }, point: { x: -0.3, y: 0.9 } });
    expect(body.length).toBeLessThanOrEqual(LARGE_BODY);
    const local = new CompiledFunction(readGraph(graph, "function", 100_000));
    const [hits, misses] = [await workerLookups("hit"), await workerLookups("miss")];
    const answer = await s.post("/v1/differentiate", body);
    expect(answer.body.id).toBe(local.hash);
    expect(answer.body.gradient).toEqual(local.evaluate({ x: -0.3, y: 0.9 }, { mode: "reverse" }).gradient);
    expect(await workerLookups("hit")).toBe(hits + 1);
    expect(await workerLookups("miss")).toBe(misses);
  });

  it("that is wrong deep inside is refused over gRPC with the field and words building it here gives", async () => {
    const graph = bigGraph(2 * POOL_GRAPH_NODES, 6);
    (graph.nodes[1700] as { args: string[] }).args = ["nowhere"];
    const local = buildingHere(graph);
    const error = await s.differentiate({ function: graphFunction(graph), point: { values: { x: 1, y: 2 } } }).then(
      () => undefined,
      (e: grpc.ServiceError) => e,
    );
    expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error?.details).toBe(local.message);
    expect(error?.metadata.get("adjoint-field")).toEqual([local.location.field]);
  });
});

describe("a large JSON graph over the node limit", () => {
  let small: TestServer;
  beforeAll(async () => {
    small = await startTestServer({ workers: 1, maxNodes: POOL_GRAPH_NODES + 10 });
  });
  afterAll(async () => {
    await small?.close();
  });

  it("is refused before it is built, naming its nodes", async () => {
    const answer = await small.post("/v1/differentiate", { function: { graph: bigGraph(2 * POOL_GRAPH_NODES, 3) }, point: { x: 1, y: 2 } });
    expect(answer.status).toBe(413);
    expect(answer.body).toMatchObject({ kind: "resource_exhausted", field: "function.graph.nodes" });
  });
});
