import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import type { Tensor } from "../../src/engine/values.js";
import { compileModel, initializeParameters, type ModelDefinition } from "../../src/ir/model.js";
import { rng } from "../support/numeric.js";
import { startTestServer, type TestServer } from "./helpers.js";

let s: TestServer;
beforeAll(async () => {
  // The worker splits its large products with one helper thread; every batch goes to the pool.
  s = await startTestServer({ workers: 1, matmulHelpers: 1, inlineBudgetUs: 0 });
});
afterAll(async () => {
  await s?.close();
});

// Products of 64×128×256 multiply-adds (forward, and the first layer's weight gradient): above the
// size from which a product is split (TEAM_MIN_WORK).
const model: ModelDefinition = {
  input: [256],
  layers: [{ type: "dense", units: 128, name: "h" }, { type: "relu" }, { type: "dense", units: 10, name: "out" }],
  loss: "softmax_cross_entropy",
};

describe("a worker with a matmul helper", () => {
  it("answers a model's loss and gradients with the bits of the same step computed on one thread", async () => {
    const batch = 64;
    const compiled = compileModel(model, batch);
    const params = initializeParameters(compiled.parameters, 5);
    const next = rng(23);
    const x = Array.from({ length: batch * 256 }, () => next());
    const y = Array.from({ length: batch }, (_, i) => (i * 7) % 10);
    const local = new CompiledFunction(compiled.graph).evaluate(
      { x: { shape: [batch, 256], data: x }, y: { shape: [batch], data: y }, ...params },
      { mode: "reverse", wrt: compiled.parameters.map((p) => p.name) },
    );
    const json = (t: { shape: number[]; data: Float64Array }) => ({ shape: t.shape, data: Array.from(t.data) });
    const helped = async () =>
      Number(/^adjoint_matmul_helper_chunks_total (\d+)$/m.exec((await s.get("/metrics")).text)?.[1] ?? Number.NaN);
    expect(await helped()).toBe(0);
    // Three calls at least, more while the helper has taken no chunk yet (a busy machine may starve it).
    for (let call = 0; call < 3 || ((await helped()) === 0 && call < 40); call++) {
      const r = await s.post("/v1/differentiate", {
        function: { model },
        point: { x: { shape: [batch, 256], data: x }, y, ...Object.fromEntries(Object.entries(params).map(([k, v]) => [k, json(v)])) },
      });
      expect(r.status).toBe(200);
      expect(Object.is(r.body.value, local.outputs.loss)).toBe(true);
      for (const p of compiled.parameters) {
        const got = (r.body.gradient as Record<string, { shape: number[]; data: number[] }>)[p.name];
        const want = (local.gradient as Record<string, Tensor>)[p.name];
        expect(got.shape).toEqual(want.shape);
        const differing = got.data.filter((v, i) => !Object.is(v, want.data[i])).length;
        expect(differing, p.name).toBe(0);
      }
    }
    // The helper did take part, and the metric says so.
    expect(await helped()).toBeGreaterThan(0);
  });
});
