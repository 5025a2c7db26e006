import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { AdjointError } from "../../src/errors.js";
import { POOL_GRAPH_NODES, readGraph } from "../../src/runtime/parse-function.js";
import { LARGE_BODY } from "../../src/service/admission.js";
import { startTestServer, type TestServer } from "./helpers.js";

/**
 * A JSON graph in a body read on the pool is built and hashed there too (runtime/parse-function.ts,
 * prebuildGraph): building 60,000 nodes held the event loop 250 ms. The id, the answer and the errors
 * must be the ones building it here gives.
 */
let s: TestServer;
beforeAll(async () => {
  // One worker and every request on the pool: the worker that read the body is the one that evaluates it.
  s = await startTestServer({ workers: 1, inlineBudgetUs: 0 });
});
afterAll(async () => {
  await s?.close();
});

/** A chain of `n` nodes over x and y, every third one mixing in an earlier node; `salt` makes it another function. */
function chain(n: number, salt = 0) {
  const nodes: Record<string, unknown>[] = [{ id: "c", op: "const", value: 0.5 + salt / 1000 }];
  let previous = "x";
  for (let i = 0; i < n; i++) {
    const id = `n${i}`;
    if (i % 3 === 0) nodes.push({ id, op: "mul", args: [previous, i >= 3 ? `n${i - 3}` : "y"] });
    else if (i % 3 === 1) nodes.push({ id, op: "sin", args: [previous] });
    else nodes.push({ id, op: "add", args: [previous, "c"] });
    previous = id;
  }
  return { inputs: ["x", "y"], nodes, outputs: [previous] };
}

const workerLookups = async (result: "hit" | "miss") =>
  Number(
    new RegExp(`adjoint_cache_lookups_total\\{cache="worker",result="${result}"\\} (\\d+)`).exec((await s.get("/metrics")).text)?.[1] ?? 0,
  );

describe("a large JSON graph", () => {
  it("is built by the worker that read its body: the id and answer of building it here, and nothing to compile after", async () => {
    const graph = chain(2 * POOL_GRAPH_NODES);
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
    const graph = chain(2 * POOL_GRAPH_NODES, 1);
    const registered = await s.post("/v1/functions", { function: { graph } });
    expect(registered.status).toBe(201);
    expect(registered.body.id).toBe(new CompiledFunction(readGraph(graph, "function", 100_000)).hash);
    const byId = await s.post("/v1/differentiate", { function: { id: registered.body.id }, point: { x: 1, y: 2 } });
    expect(byId.status).toBe(200);
  });

  it("that is wrong deep inside is refused with the field and words building it here gives", async () => {
    const graph = chain(2 * POOL_GRAPH_NODES, 2);
    (graph.nodes[1500] as { op: string }).op = "no_such_op";
    let local: AdjointError | undefined;
    try {
      readGraph(graph, "function", 100_000);
    } catch (e) {
      local = e as AdjointError;
    }
    expect(local).toBeInstanceOf(AdjointError);
    const answer = await s.post("/v1/differentiate", { function: { graph }, point: { x: 1, y: 2 } });
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ kind: "invalid_argument", field: local?.location.field, detail: local?.message });
    expect(answer.body.field).toBe("function.graph.nodes[1500].op");
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
    const answer = await small.post("/v1/differentiate", { function: { graph: chain(2 * POOL_GRAPH_NODES, 3) }, point: { x: 1, y: 2 } });
    expect(answer.status).toBe(413);
    expect(answer.body).toMatchObject({ kind: "resource_exhausted", field: "function.graph.nodes" });
  });
});
