import { fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { differentiateResponse } from "../../src/grpc/convert.js";
import { directResponseBytes } from "../../src/grpc/direct-response.js";
import { DifferentiateResponseSchema } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { installMessageMemory, PartedAnswer } from "../../src/grpc/message-memory.js";
import type { DifferentiateOutput } from "../../src/service/types.js";
import { elements, num, startTestServer, type TestServer } from "../service/helpers.js";
import { clientName } from "../support/arbitraries.js";
import { record } from "../support/records.js";

const name = clientName;
const number = fc.oneof(fc.double(), fc.constantFrom(-0, Number.NaN, Number.POSITIVE_INFINITY, 5e-324));
/** A tensor as the engine gives one: its elements in a Float64Array, or (some paths) a plain array. */
const tensor = fc
  .array(fc.nat({ max: 3 }), { maxLength: 3 })
  .chain((shape) => {
    const size = shape.reduce((a, d) => a * d, 1);
    return fc.tuple(fc.constant(shape), fc.array(number, { minLength: size, maxLength: size }), fc.boolean());
  })
  .map(([shape, data, typed]) => ({ shape, data: typed ? Float64Array.from(data) : data }));
const value = fc.oneof(number, tensor);
const map = fc.dictionary(name, value, { maxKeys: 4 });

/** What the general path writes: the messages built (convert.ts), then toBinary. */
function general(out: DifferentiateOutput, sequence = 0): Buffer {
  return Buffer.from(toBinary(DifferentiateResponseSchema, differentiateResponse(out, sequence)));
}

describe("the one-point answer's direct protobuf encoding", () => {
  it("is byte for byte what toBinary writes of the general path's message", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(name, value), { minLength: 1, maxLength: 3 }),
        fc.option(map, { nil: undefined }),
        fc.option(fc.dictionary(name, map, { maxKeys: 3 }), { nil: undefined }),
        fc.option(value, { nil: undefined }),
        fc.option(map, { nil: undefined }),
        fc.nat({ max: 1000 }),
        (outputs, gradient, jacobian, laplacian, parameters, sequence) => {
          const result: Record<string, unknown> = { outputs: record(outputs) };
          if (gradient !== undefined) result.gradient = record(Object.entries(gradient));
          if (jacobian !== undefined) result.jacobian = record(Object.entries(jacobian).map(([k, m]) => [k, record(Object.entries(m))]));
          if (laplacian !== undefined) result.laplacian = laplacian;
          const out = { id: "fn_1", mode: "reverse", allowNonFinite: true, result } as Record<string, unknown>;
          if (parameters !== undefined) out.parameters = record(Object.entries(parameters));
          const fast = directResponseBytes(out as unknown as DifferentiateOutput, sequence);
          expect(fast).toBeDefined();
          expect(Buffer.from(fast as Uint8Array).equals(general(out as unknown as DifferentiateOutput, sequence))).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("matches toBinary past its scratch buffer, for long and non-ASCII names and large sequence numbers", () => {
    // 2,000 entries of 30-odd bytes: past the 16 KiB scratch, so the writer moves what it holds.
    const names = Array.from({ length: 2000 }, (_, i) => `${i % 3 === 0 ? "é".repeat(40) : "x".repeat(70)}_${i}`);
    const gradient = record(names.map((n, i) => [n, i / 7]));
    const big = { id: "fn_big", mode: "reverse", allowNonFinite: false, result: { outputs: record([["f", 1.5]]), gradient } };
    const small = { id: "fn_1", mode: "reverse", allowNonFinite: false, result: { outputs: record([["f", 0.25]]) } };
    for (const sequence of [0, 1, 2 ** 31, 2 ** 40 + 3]) {
      const first = directResponseBytes(big as unknown as DifferentiateOutput, sequence) as Uint8Array;
      expect(first.byteLength).toBeGreaterThan(16 * 1024);
      // A later answer written into the shared scratch buffer leaves an earlier one as it was.
      const second = directResponseBytes(small as unknown as DifferentiateOutput, sequence) as Uint8Array;
      expect(Buffer.from(first).equals(general(big as unknown as DifferentiateOutput, sequence))).toBe(true);
      expect(Buffer.from(second).equals(general(small as unknown as DifferentiateOutput, sequence))).toBe(true);
    }
  });

  it("sends large tensors in lent batch memory from where they lie: its parts are toBinary's bytes, and the memory goes back once sent", () => {
    installMessageMemory();
    const lent = (n: number, seed: number) => Float64Array.from({ length: n }, (_, i) => Math.sin(seed + i));
    const shared = (a: Float64Array) => {
      const s = new Float64Array(new SharedArrayBuffer(a.byteLength + 64), 16, a.length);
      s.set(a);
      return s;
    };
    // Three tensors in lent memory (the one output, a gradient, a Jacobian row), one as large in
    // memory of the answer's own (copied), and small ones (copied) between them.
    const value = shared(lent(9000, 1));
    const gx = shared(lent(8192, 2));
    const row = shared(lent(10_000, 3));
    const own = lent(12_000, 4);
    const lentBuffers = new Set<ArrayBufferLike>([value.buffer, gx.buffer, row.buffer]);
    let released = 0;
    const memory = { keep: () => () => void released++, lends: (d: Float64Array) => lentBuffers.has(d.buffer) };
    const out = {
      id: "fn_parts",
      mode: "reverse",
      allowNonFinite: false,
      result: {
        outputs: record([["loss", { shape: [90, 100], data: value }]]),
        gradient: record([
          ["w", { shape: [8192], data: gx }],
          ["b", { shape: [3], data: Float64Array.of(1, -2, 3.5) }],
          ["own", { shape: [12_000], data: own }],
        ]),
        jacobian: record([["loss", record([["w", { shape: [100, 100], data: row }]])]]),
      },
    } as unknown as DifferentiateOutput;
    const parted = directResponseBytes(out, 0, memory);
    expect(parted).toBeInstanceOf(PartedAnswer);
    const answer = parted as PartedAnswer;
    const bytes = Buffer.concat(answer.parts);
    expect(bytes.equals(general(out))).toBe(true);
    expect(answer.byteLength).toBe(bytes.byteLength);
    // The lent tensors are the very memory (the one output twice: in outputs and as Result.value), the others copies.
    const viewed = answer.parts.filter((p) => lentBuffers.has(p.buffer));
    expect(viewed.map((p) => p.byteLength).sort((a, b) => a - b)).toEqual([8192 * 8, 9000 * 8, 9000 * 8, 10_000 * 8]);
    expect(answer.parts.some((p) => p.buffer === own.buffer)).toBe(false);
    // The frame header goes in the five bytes before the first part, announcing the whole message.
    const head = answer.framedHead();
    expect([...head.subarray(0, 5)]).toEqual([0, ...Buffer.from(Uint32Array.of(bytes.byteLength).buffer).reverse()]);
    expect(head.subarray(5).equals(answer.parts[0])).toBe(true);
    // Given back once, and only when sent: not after a failed write.
    expect(released).toBe(0);
    answer.settle(true);
    answer.settle(true);
    expect(released).toBe(1);
    const failed = directResponseBytes(out, 0, memory) as PartedAnswer;
    failed.settle(false);
    failed.settle(true);
    expect(released).toBe(1);
    // Without lent memory, or with none of it large, the answer is one buffer, as before.
    expect(directResponseBytes(out, 0, { keep: () => () => {} })).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(directResponseBytes(out) as Uint8Array).equals(general(out))).toBe(true);
  });

  it("encodes the worked example's answer to its exact bytes", () => {
    const out = {
      id: "fn_1",
      mode: "reverse",
      allowNonFinite: false,
      result: {
        outputs: record([["f", 0.23886593653343924]]),
        gradient: record([
          ["x1", -0.35829890480015886],
          ["x2", -0.11943296826671962],
        ]),
      },
    } as unknown as DifferentiateOutput;
    const bytes = directResponseBytes(out) as Uint8Array;
    const decoded = fromBinary(DifferentiateResponseSchema, bytes);
    expect(decoded.result?.outputs.f.values).toEqual([0.23886593653343924]);
    expect(decoded.result?.gradient.x1.values).toEqual([-0.35829890480015886]);
    expect(decoded.result?.gradient.x2.values).toEqual([-0.11943296826671962]);
    expect(decoded.result?.value?.values).toEqual([0.23886593653343924]);
    expect(Buffer.from(bytes).equals(Buffer.from(toBinary(DifferentiateResponseSchema, differentiateResponse(out))))).toBe(true);
  });

  it("writes a training step's megabytes of gradient into a buffer of the answer's own, as toBinary would", () => {
    const filled = (shape: number[], seed: number) => {
      const data = new Float64Array(shape.reduce((a, d) => a * d, 1));
      for (let i = 0; i < data.length; i++) data[i] = Math.sin(seed + i) / (i + 1);
      return { shape, data };
    };
    // W3's parameters: 1.6 MB of gradient, past what the shared scratch buffer holds.
    const step = (seed: number) =>
      ({
        id: "fn_mlp",
        mode: "reverse",
        allowNonFinite: false,
        result: {
          outputs: record([["loss", 2.3 + seed]]),
          gradient: record([
            ["fc1.weight", filled([784, 256], seed)],
            ["fc1.bias", filled([256], seed + 1)],
            ["fc2.weight", filled([256, 10], seed + 2)],
            ["fc2.bias", filled([10], seed + 3)],
          ]),
        },
      }) as unknown as DifferentiateOutput;
    const small = { id: "fn_1", mode: "reverse", allowNonFinite: false, result: { outputs: record([["f", 0.25]]) } };
    const first = directResponseBytes(step(0)) as Uint8Array;
    const second = directResponseBytes(step(1), 7) as Uint8Array;
    const third = directResponseBytes(small as unknown as DifferentiateOutput) as Uint8Array;
    expect(first.byteLength).toBeGreaterThan(1_600_000);
    // Each answer keeps its own bytes: a later one, large or small, does not write over an earlier one.
    expect(Buffer.from(first).equals(general(step(0)))).toBe(true);
    expect(Buffer.from(second).equals(general(step(1), 7))).toBe(true);
    expect(Buffer.from(third).equals(general(small as unknown as DifferentiateOutput))).toBe(true);
    const decoded = fromBinary(DifferentiateResponseSchema, first).result;
    expect(decoded?.gradient["fc1.weight"].shape).toEqual([784, 256]);
    expect(new Float64Array(Uint8Array.from(decoded?.gradient["fc1.weight"].raw ?? []).buffer)).toEqual(filled([784, 256], 0).data);
  });

  it("leaves annotated answers and several points to the general path", () => {
    const base = { id: "fn_1", mode: "jacobian", allowNonFinite: false };
    const of = (result: unknown) => directResponseBytes({ ...base, result } as unknown as DifferentiateOutput);
    expect(of({ outputs: { f: 1 }, jacobian: { f: { x: 2 } }, method: "forward" })).toBeUndefined();
    expect(of({ outputs: { f: 1 }, derivative: 2, partials: ["x", "x"] })).toBeUndefined();
    expect(of({ outputs: { f: 1 }, nonFinite: { field: "outputs", name: "f", index: 0, value: "NaN" } })).toBeUndefined();
    // A value that is neither a number nor a tensor, wherever it is, is not guessed at.
    expect(of({ outputs: { f: 1, g: 2 }, gradient: { x: 1, y: "2" } })).toBeUndefined();
    expect(of({ outputs: { f: 1 }, hessian: { x: { x: 1, y: null } } })).toBeUndefined();
    expect(directResponseBytes({ ...base, results: [] } as unknown as DifferentiateOutput)).toBeUndefined();
    expect(directResponseBytes({ ...base, result: { outputs: { f: 1 } }, columns: {} } as unknown as DifferentiateOutput)).toBeUndefined();
  });
});

describe("a model's gradient through the real gRPC server", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(() => s.close());

  it("answers the very numbers the HTTP API gives, tensors larger than the scratch buffer included", async () => {
    // A 48 → 40 → 3 network: fc1.weight's gradient alone is 15 KB, so the answer gets a buffer of its own.
    const model = {
      input: [48],
      layers: [{ type: "dense", units: 40, name: "fc1" }, { type: "relu" }, { type: "dense", units: 3, name: "fc2" }],
      loss: "softmax_cross_entropy",
    };
    const wave = (n: number, k: number) => Array.from({ length: n }, (_, i) => Math.sin(k * (i + 1)) / 4);
    const point = {
      x: wave(4 * 48, 0.7),
      y: [0, 2, 1, 2],
      "fc1.weight": wave(48 * 40, 1.3),
      "fc1.bias": wave(40, 2.1),
      "fc2.weight": wave(40 * 3, 0.9),
      "fc2.bias": wave(3, 3.3),
    };
    const shapes: Record<string, number[]> = {
      x: [4, 48],
      y: [4],
      "fc1.weight": [48, 40],
      "fc1.bias": [40],
      "fc2.weight": [40, 3],
      "fc2.bias": [3],
    };
    const http = await s.post("/v1/differentiate", {
      function: { model },
      point: Object.fromEntries(Object.entries(point).map(([k, v]) => [k, { shape: shapes[k], data: v }])),
    });
    expect(http.status, JSON.stringify(http.body)).toBe(200);
    const raw = (v: number[]) => new Uint8Array(Float64Array.from(v).buffer);
    const g = await s.differentiate({
      function: { source: { case: "model", value: model as never } },
      point: { tensors: Object.fromEntries(Object.entries(point).map(([k, v]) => [k, { shape: shapes[k], raw: raw(v) }])) },
    });
    expect(num(g.result?.outputs.loss)).toBe(http.body.value);
    const gradient = http.body.gradient as Record<string, { shape: number[]; data: number[] }>;
    expect(Object.keys(g.result?.gradient ?? {})).toEqual(Object.keys(gradient));
    for (const [name, t] of Object.entries(gradient)) {
      expect(g.result?.gradient[name].shape).toEqual(t.shape);
      expect(elements(g.result?.gradient[name])).toEqual(t.data);
    }
  });
});
