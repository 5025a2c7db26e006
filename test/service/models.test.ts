import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import type { Tensor } from "../../src/engine/values.js";
import { compileModel, initializeParameters, type ModelDefinition } from "../../src/ir/model.js";
import { rng } from "../support/numeric.js";
import { startTestServer, type TestServer } from "./helpers.js";

let s: TestServer;
beforeAll(async () => {
  // Two workers, and every model batch worth splitting: each request runs as two shards.
  s = await startTestServer({ workers: 2, shardMinUs: 1, inlineBudgetUs: 0 });
});
afterAll(async () => {
  await s?.close();
});

const model: ModelDefinition = {
  input: [6],
  layers: [{ type: "dense", units: 5, name: "h" }, { type: "tanh" }, { type: "dense", units: 3, name: "out" }],
  loss: "softmax_cross_entropy",
};

describe("a model's batch split across the workers", () => {
  it("gives the whole batch's loss and gradients, weighted by shard size", async () => {
    const batch = 9;
    const compiled = compileModel(model, batch);
    const params = initializeParameters(compiled.parameters, 3);
    const next = rng(17);
    const x = Array.from({ length: batch * 6 }, () => next() * 2 - 1);
    const y = Array.from({ length: batch }, (_, i) => i % 3);
    const local = new CompiledFunction(compiled.graph).evaluate(
      { x: { shape: [batch, 6], data: x }, y: { shape: [batch], data: y }, ...params },
      { mode: "reverse", wrt: compiled.parameters.map((p) => p.name) },
    );
    const json = (t: { shape: number[]; data: Float64Array }) => ({ shape: t.shape, data: Array.from(t.data) });
    const r = await s.post("/v1/differentiate", {
      function: { model },
      point: { x: { shape: [batch, 6], data: x }, y, ...Object.fromEntries(Object.entries(params).map(([k, v]) => [k, json(v)])) },
    });
    expect(r.status).toBe(200);
    expect(r.body.value as number).toBeCloseTo(local.outputs.loss as number, 13);
    for (const p of compiled.parameters) {
      const got = (r.body.gradient as Record<string, { shape: number[]; data: number[] }>)[p.name];
      const want = (local.gradient as Record<string, Tensor>)[p.name];
      expect(got.shape).toEqual(want.shape);
      got.data.forEach((v, i) => {
        expect(v).toBeCloseTo(want.data[i], 13);
      });
    }
    const metrics = (await s.get("/metrics")).text;
    // One request, two pool tasks: the batch was split.
    expect(metrics).toMatch(/adjoint_pool_queue_wait_seconds_count 2\b/);
  });
});

describe("a sharded answer", () => {
  it("is exactly each shard's answer weighted by its size and summed in shard order, request after request", async () => {
    const batch = 9;
    const [first, second] = [4, 5];
    const compiled = compileModel(model, batch);
    const wrt = compiled.parameters.map((p) => p.name);
    const json = (t: { shape: number[]; data: Float64Array }) => ({ shape: t.shape, data: Array.from(t.data) });
    // Two different requests one after the other: the first's shard memory, given back, is the second's.
    for (const seed of [5, 6]) {
      const params = initializeParameters(compiled.parameters, seed);
      const next = rng(seed);
      const x = Array.from({ length: batch * 6 }, () => next() * 2 - 1);
      const y = Array.from({ length: batch }, (_, i) => (i + seed) % 3);
      const shard = (start: number, end: number) =>
        new CompiledFunction(compileModel(model, end - start).graph).evaluate(
          {
            x: { shape: [end - start, 6], data: x.slice(start * 6, end * 6) },
            y: { shape: [end - start], data: y.slice(start, end) },
            ...params,
          },
          { mode: "reverse", wrt },
        );
      const [a, b] = [shard(0, first), shard(first, batch)];
      const [wa, wb] = [first / batch, second / batch];
      const r = await s.post("/v1/differentiate", {
        function: { model },
        point: { x: { shape: [batch, 6], data: x }, y, ...Object.fromEntries(Object.entries(params).map(([k, v]) => [k, json(v)])) },
      });
      expect(r.status).toBe(200);
      expect(r.body.value).toBe((a.outputs.loss as number) * wa + wb * (b.outputs.loss as number));
      for (const name of wrt) {
        const [ga, gb] = [(a.gradient as Record<string, Tensor>)[name].data, (b.gradient as Record<string, Tensor>)[name].data];
        const got = (r.body.gradient as Record<string, { data: number[] }>)[name].data;
        expect(got).toEqual(Array.from(ga, (v, i) => v * wa + wb * gb[i]));
      }
    }
  });
});

describe("a model initialised from a seed", () => {
  it("draws the parameters deterministically, answers them, and evaluates at them", async () => {
    const batch = 4;
    const x = Array.from({ length: batch * 6 }, (_, i) => Math.sin(i));
    const body = { function: { model }, point: { x: { shape: [batch, 6], data: x }, y: [0, 1, 2, 1] }, initialize: { seed: 42 } };
    const first = await s.post("/v1/differentiate", body);
    const again = await s.post("/v1/differentiate", body);
    expect(first.status).toBe(200);
    const parameters = first.body.parameters as Record<string, { shape: number[]; data: number[] }>;
    expect(Object.keys(parameters)).toEqual(["h.weight", "h.bias", "out.weight", "out.bias"]);
    expect(parameters["h.weight"].shape).toEqual([6, 5]);
    expect(parameters["h.bias"].data).toEqual([0, 0, 0, 0, 0]);
    expect(again.body).toEqual(first.body);
    // The same parameters sent explicitly give the same loss and gradient.
    const explicit = await s.post("/v1/differentiate", { function: { model }, point: { ...body.point, ...parameters } });
    expect(explicit.body.value).toBe(first.body.value);
    expect(explicit.body.gradient).toEqual(first.body.gradient);
    const local = initializeParameters(compileModel(model, batch).parameters, 42);
    expect(parameters["out.weight"].data).toEqual(Array.from(local["out.weight"].data));
    const refused = await s.post("/v1/differentiate", { ...body, point: { ...body.point, "h.bias": [0, 0, 0, 0, 0] } });
    expect(refused.status).toBe(400);
    expect(refused.body.detail).toMatch(/point\.h\.bias: with initialize, the parameters come from the seed/);
  });
});
