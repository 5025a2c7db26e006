import { once } from "node:events";
import { request as httpRequest, type IncomingMessage } from "node:http";
import { connect as connectHttp2 } from "node:http2";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import type { Tensor } from "../../src/engine/values.js";
import { DifferentiateRequestSchema, DifferentiateResponseSchema, ElementType } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { compileModel, initializeParameters, type ModelDefinition } from "../../src/ir/model.js";
import { answerJson, jsonBody, serializeJson, tensorBase64 } from "../../src/service/json-view.js";
import type { DifferentiateOutput, ResultRow } from "../../src/service/types.js";
import { rng } from "../support/numeric.js";
import { startTestServer, type TestServer } from "./helpers.js";

/**
 * Large tensors on the pool path: a point decoded from raw bytes straight into the batch's shared
 * memory (service/decode.ts, decodePointBatch), and an answer encoded while it still views that memory
 * (AdjointService.differentiateEncoded). The numbers must be exactly the engine's, over every
 * transport and form, and one request's answer must never see another's memory.
 */
let s: TestServer;
beforeAll(async () => {
  // Every request on the pool, not split: the path a training step takes.
  s = await startTestServer({ workers: 1, inlineBudgetUs: 0 });
});
afterAll(async () => {
  await s?.close();
});

// h.weight is 200 × 200: big enough (320 kB) that its batch memory is pooled and reused (runtime/shared-memory.ts).
const INPUTS = 200;
const model: ModelDefinition = {
  input: [INPUTS],
  layers: [{ type: "dense", units: 200, name: "h" }, { type: "relu" }, { type: "dense", units: 3, name: "out" }],
  loss: "softmax_cross_entropy",
};
const batch = 7;
const compiled = compileModel(model, batch);
const names = compiled.parameters.map((p) => p.name);

/** A point of the model (x, y and the parameters), drawn from `seed`, and the engine's answer at it. */
function pointAndAnswer(seed: number) {
  const params = initializeParameters(compiled.parameters, seed);
  const next = rng(seed);
  const x = Float64Array.from({ length: batch * INPUTS }, () => next() * 2 - 1);
  const y = Float64Array.from({ length: batch }, (_, i) => (i + seed) % 3);
  const tensors: [string, number[], Float64Array][] = [
    ["x", [batch, INPUTS], x],
    ["y", [batch], y],
    ...Object.entries(params).map(([k, v]) => [k, [...v.shape], v.data as Float64Array] as [string, number[], Float64Array]),
  ];
  const local = new CompiledFunction(compiled.graph).evaluate(
    { x: { shape: [batch, INPUTS], data: x }, y: { shape: [batch], data: y }, ...params },
    { mode: "reverse", wrt: names },
  );
  return { tensors, loss: local.outputs.loss as number, gradient: local.gradient as Record<string, Tensor> };
}

const bytesOf = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const float64s = (b: Uint8Array) => Array.from(new Float64Array(Uint8Array.from(b).buffer));

/** A framed binary request whose binary part starts at an odd offset, so nothing in it is aligned. */
/**
 * A framed request. The tensors' bytes follow `gap` spare bytes, one after another: with a gap of 0
 * every tensor starts 8-byte aligned in the binary part (the service reads it where it lies), with 4
 * none does (each is copied).
 */
function framedBody(tensors: [string, number[], Float64Array][], poison?: { name: string; at: number }, gap = 0) {
  const point: Record<string, unknown> = {};
  const parts: Buffer[] = [Buffer.alloc(gap)];
  let offset = gap;
  for (const [name, shape, data] of tensors) {
    const bytes = Buffer.from(bytesOf(data));
    if (poison?.name === name) bytes.writeDoubleLE(Number.NaN, poison.at * 8);
    parts.push(bytes);
    point[name] = { shape, dtype: "float64", binary: { offset, length: data.byteLength } };
    offset += data.byteLength;
  }
  let header = JSON.stringify({ function: { model }, point });
  if (Buffer.byteLength(header) % 2 === 0) header += " ";
  return { body: Buffer.concat([Buffer.from(header), ...parts]), headerLength: Buffer.byteLength(header) };
}

async function postFramed(body: Buffer, headerLength: number, base = s.base) {
  const res = await fetch(`${base}/v1/differentiate`, {
    method: "POST",
    headers: {
      "content-type": "application/vnd.adjoint+binary",
      "adjoint-header-length": String(headerLength),
      accept: "application/vnd.adjoint+binary",
    },
    body,
  });
  return {
    status: res.status,
    bytes: Buffer.from(await res.arrayBuffer()),
    headerLength: Number(res.headers.get("adjoint-header-length")),
  };
}

/** The loss and gradients of a framed binary answer. */
function readFramed(bytes: Buffer, n: number) {
  const answer = JSON.parse(bytes.subarray(0, n).toString()) as {
    value: number;
    gradient: Record<string, { shape: number[]; binary: { offset: number; length: number } }>;
  };
  const gradient: Record<string, number[]> = {};
  for (const [name, t] of Object.entries(answer.gradient))
    gradient[name] = float64s(bytes.subarray(n + t.binary.offset, n + t.binary.offset + t.binary.length));
  return { loss: answer.value, gradient };
}

function expectExact(got: { loss: number; gradient: Record<string, ArrayLike<number>> }, want: ReturnType<typeof pointAndAnswer>) {
  expect(Object.is(got.loss, want.loss)).toBe(true);
  expect(Object.keys(got.gradient).sort()).toEqual([...names].sort());
  for (const name of names) expect(Array.from(got.gradient[name])).toEqual(Array.from(want.gradient[name].data));
}

describe("a model step with its tensors as bytes, on the pool", () => {
  it("answers the engine's numbers exactly in the binary framing, its binary part unaligned", async () => {
    const want = pointAndAnswer(3);
    const { body, headerLength } = framedBody(want.tensors);
    const r = await postFramed(body, headerLength);
    expect(r.status).toBe(200);
    expectExact(readFramed(r.bytes, r.headerLength), want);
  });

  it("answers the engine's numbers exactly over gRPC with raw bytes", async () => {
    const want = pointAndAnswer(4);
    const g = await s.differentiate({
      function: { source: { case: "model", value: model as never } },
      point: {
        tensors: Object.fromEntries(
          want.tensors.map(([name, shape, data]) => [name, { shape, dtype: ElementType.FLOAT64, raw: new Uint8Array(bytesOf(data)) }]),
        ),
      },
    });
    const result = g.result;
    const gradient = Object.fromEntries(names.map((n) => [n, float64s(result?.gradient[n]?.raw ?? new Uint8Array())]));
    expectExact({ loss: result?.outputs.loss?.values[0] as number, gradient }, want);
  });

  it("answers the engine's numbers exactly as JSON with base64 tensors, asked for in base64", async () => {
    const want = pointAndAnswer(5);
    const point = Object.fromEntries(
      want.tensors.map(([name, shape, data]) => [name, { shape, dtype: "float64", base64: bytesOf(data).toString("base64") }]),
    );
    const r = await s.post("/v1/differentiate", { function: { model }, point, encoding: "base64" });
    expect(r.status).toBe(200);
    const gradient = Object.fromEntries(
      Object.entries(r.body.gradient as Record<string, { base64: string }>).map(([n, t]) => [n, float64s(Buffer.from(t.base64, "base64"))]),
    );
    expectExact({ loss: r.body.value as number, gradient }, want);
  });

  it("keeps each answer its own when requests run together and their batch memory is reused", async () => {
    const wants = [6, 7, 8, 9, 10, 11].map(pointAndAnswer);
    const answers = await Promise.all(
      wants.map((w) => {
        const { body, headerLength } = framedBody(w.tensors);
        return postFramed(body, headerLength);
      }),
    );
    answers.forEach((r, i) => {
      expect(r.status).toBe(200);
      expectExact(readFramed(r.bytes, r.headerLength), wants[i]);
    });
    // And once more one after another, each batch reusing the memory the one before gave back.
    for (const w of wants.slice(0, 3)) {
      const { body, headerLength } = framedBody(w.tensors);
      const r = await postFramed(body, headerLength);
      expectExact(readFramed(r.bytes, r.headerLength), w);
    }
  });

  it("keeps each gRPC answer its own when calls run together and the memory of their answers is reused", async () => {
    // Each answer (327 kB) and each batch is in pooled memory, reused from one call to the next.
    const call = (w: ReturnType<typeof pointAndAnswer>) =>
      s.differentiate({
        function: { source: { case: "model", value: model as never } },
        point: {
          tensors: Object.fromEntries(
            w.tensors.map(([name, shape, data]) => [name, { shape, dtype: ElementType.FLOAT64, raw: new Uint8Array(bytesOf(data)) }]),
          ),
        },
      });
    const exact = (g: Awaited<ReturnType<typeof call>>, w: ReturnType<typeof pointAndAnswer>) => {
      const gradient = Object.fromEntries(names.map((n) => [n, float64s(g.result?.gradient[n]?.raw ?? new Uint8Array())]));
      expectExact({ loss: g.result?.outputs.loss?.values[0] as number, gradient }, w);
    };
    const wants = [16, 17, 18, 19, 20, 21].map(pointAndAnswer);
    const answers = await Promise.all(wants.map(call));
    answers.forEach((g, i) => {
      exact(g, wants[i]);
    });
    for (const w of wants.slice(0, 3)) exact(await call(w), w);
  });

  it("answers exactly when no tensor of the binary part is 8-byte aligned (each is copied, not read in place)", async () => {
    const want = pointAndAnswer(15);
    const { body, headerLength } = framedBody(want.tensors, undefined, 4);
    const r = await postFramed(body, headerLength);
    expect(r.status).toBe(200);
    expectExact(readFramed(r.bytes, r.headerLength), want);
  });

  it("refuses a non-finite number in the bytes, naming the element, as before, and the next requests get their own numbers", async () => {
    const want = pointAndAnswer(12);
    // Read in place (aligned) and copied (not): the scan runs while the worker computes, in either case.
    for (const gap of [0, 4]) {
      const { body, headerLength } = framedBody(want.tensors, { name: "h.weight", at: 4 }, gap);
      const r = await postFramed(body, headerLength);
      expect(r.status).toBe(400);
      const problem = JSON.parse(r.bytes.toString()) as { detail: string; field: string; input: string };
      expect(problem.detail).toBe("point.h.weight.binary[4] is NaN; non-finite values are rejected unless the request sets allowNonFinite");
      expect(problem.field).toBe("point.h.weight.binary[4]");
      expect(problem.input).toBe("h.weight");
      // The refused request's memory went back to the pool: the next one, reusing it, is answered exactly.
      const next = framedBody(want.tensors, undefined, gap);
      const ok = await postFramed(next.body, next.headerLength);
      expect(ok.status).toBe(200);
      expectExact(readFramed(ok.bytes, ok.headerLength), want);
    }
    // Over gRPC, raw bytes: the first non-finite number of the first tensor that holds one, as decoding met them.
    const tensors = Object.fromEntries(
      want.tensors.map(([name, shape, data]) => {
        const raw = new Uint8Array(bytesOf(data));
        if (name === "h.weight" || name === "out.weight")
          new DataView(raw.buffer).setFloat64(8 * (name === "h.weight" ? 7 : 2), Number.POSITIVE_INFINITY, true);
        return [name, { shape, dtype: ElementType.FLOAT64, raw }];
      }),
    );
    const order = want.tensors.map(([name]) => name).filter((n) => n === "h.weight" || n === "out.weight");
    const first = order[0] === "h.weight" ? "point.h.weight.raw[7]" : "point.out.weight.raw[2]";
    await expect(s.differentiate({ function: { source: { case: "model", value: model as never } }, point: { tensors } })).rejects.toThrow(
      `${first} is Infinity; non-finite values are rejected`,
    );
  });

  it("scans a large tensor's bytes a slice at a time and still names the first non-finite element, and answers a clean one exactly", async () => {
    // 150,000 numbers: the check yields the event loop between slices of 65,536, so the bad elements lie past the first.
    const n = 150_000;
    const x = Float64Array.from({ length: n }, (_, i) => ((i % 7) - 3) / 4);
    const call = (xs: Float64Array, ys: Float64Array) =>
      s.differentiate({
        function: {
          source: { case: "expression", value: "sum(x^2) + sum(y)" },
          inputs: [
            { name: "x", shape: [n] },
            { name: "y", shape: [4] },
          ],
        },
        point: {
          tensors: {
            x: { shape: [n], dtype: ElementType.FLOAT64, raw: new Uint8Array(xs.buffer.slice(0)) },
            y: { shape: [4], dtype: ElementType.FLOAT64, raw: new Uint8Array(ys.buffer.slice(0)) },
          },
        },
      });
    const y = Float64Array.of(1, 2, 3, 4);
    const badX = x.slice();
    badX[100_003] = Number.NaN;
    badX[140_000] = Number.POSITIVE_INFINITY;
    await expect(call(badX, y)).rejects.toThrow("point.x.raw[100003] is NaN; non-finite values are rejected");
    const badY = y.slice();
    badY[3] = Number.NEGATIVE_INFINITY;
    await expect(call(x, badY)).rejects.toThrow("point.y.raw[3] is -Infinity; non-finite values are rejected");
    const ok = await call(x, y);
    let want = 10;
    for (const v of x) want += v * v;
    expect(ok.result?.outputs.f?.values[0] ?? ok.result?.value).toBeCloseTo(want, 6);
    const gradient = float64s(ok.result?.gradient.x?.raw ?? new Uint8Array());
    expect(gradient.length).toBe(n);
    for (const i of [0, 65_535, 65_536, 131_072, n - 1]) expect(gradient[i]).toBe(2 * x[i]);
  });

  it("refuses bytes of the wrong shape in the engine's words", async () => {
    const want = pointAndAnswer(13);
    const tensors = want.tensors.map(([n, shape, d]) => [n, n === "out.weight" ? [...shape].reverse() : shape, d]) as typeof want.tensors;
    const { body, headerLength } = framedBody(tensors);
    const r = await postFramed(body, headerLength);
    expect(r.status).toBe(400);
    expect((JSON.parse(r.bytes.toString()) as { detail: string }).detail).toMatch(
      /^point\.out\.weight has shape \[3, 200\], but the function declares \[200, 3\]/,
    );
  });
});

/**
 * A training step with 1000 × 1000 weights: an 8 MB gradient, more than the kernel's socket buffers
 * hold, so that most of an answer is still to be written from the batch's memory while its client is
 * not reading. Its tensors at a point made from `seed`, and the gradient computed in this process.
 */
const WIDE: ModelDefinition = {
  input: [1000],
  layers: [{ type: "dense", units: 1000, name: "h" }, { type: "relu" }, { type: "dense", units: 2, name: "out" }],
  loss: "softmax_cross_entropy",
};

function wideStep(seed: number): { tensors: [string, number[], Float64Array][]; want: Record<string, Tensor> } {
  const step = compileModel(WIDE, 2);
  const params = initializeParameters(step.parameters, seed);
  const x = Float64Array.from({ length: 2000 }, (_, i) => Math.sin(seed + i));
  const values = { x: { shape: [2, 1000], data: x }, y: { shape: [2], data: Float64Array.of(0, 1) }, ...params };
  const want = new CompiledFunction(step.graph).evaluate(values, { mode: "reverse", wrt: step.parameters.map((p) => p.name) });
  const tensors = Object.entries(values).map(
    ([name, t]) => [name, [...t.shape], t.data as Float64Array] as [string, number[], Float64Array],
  );
  return { tensors, want: want.gradient as Record<string, Tensor> };
}

describe("a binary answer sent from the batch's memory", () => {
  it("keeps that memory from other requests until the answer has left, however slowly the client reads", async () => {
    const request = (seed: number) => {
      const { tensors, want } = wideStep(seed);
      let offset = 0;
      const point = Object.fromEntries(
        tensors.map(([name, shape, data]) => {
          const binary = { offset, length: data.byteLength };
          offset += data.byteLength;
          return [name, { shape, dtype: "float64", binary }];
        }),
      );
      const header = Buffer.from(JSON.stringify({ function: { model: WIDE }, point }));
      const body = Buffer.concat([header, ...tensors.map(([, , d]) => bytesOf(d))]);
      return { body, headerLength: header.byteLength, want };
    };
    const a = request(1);
    const b = request(2);
    // Two large requests at once (one by default: the second would wait for the first's answer to leave).
    const server = await startTestServer({ workers: 1, inlineBudgetUs: 0, maxInflightLarge: 2 });
    let response: IncomingMessage | undefined;
    onTestFinished(async () => {
      // Read or not, the answer goes first: the server's close waits for its connection.
      response?.destroy();
      await server.close();
    });
    const url = new URL(`${server.base}/v1/differentiate`);
    // A's answer arrives, and A reads nothing more of it until B has been answered.
    response = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: "POST",
          agent: false,
          headers: {
            "content-type": "application/vnd.adjoint+binary",
            "adjoint-header-length": String(a.headerLength),
            accept: "application/vnd.adjoint+binary",
          },
        },
        (res) => {
          res.pause();
          resolve(res);
        },
      );
      req.on("error", reject);
      req.end(a.body);
    });
    expect(response.statusCode).toBe(200);
    const second = await postFramed(b.body, b.headerLength, server.base);
    expect(second.status).toBe(200);
    const chunks: Buffer[] = [];
    const first = response;
    first.on("data", (c: Buffer) => chunks.push(c));
    first.resume();
    await once(first, "end");
    const n = Number(first.headers["adjoint-header-length"]);
    for (const [answer, want] of [
      [readFramed(Buffer.concat(chunks), n), a.want],
      [readFramed(second.bytes, second.headerLength), b.want],
    ] as const) {
      for (const name of Object.keys(want)) {
        // Counted, not compared as arrays: a diff of a million numbers takes the reporter minutes.
        const got = answer.gradient[name];
        const differing = got.filter((v, i) => !Object.is(v, want[name].data[i])).length;
        expect({ name, length: got.length, differing }).toEqual({ name, length: want[name].data.length, differing: 0 });
      }
    }
  });
});

describe("a gRPC answer sent from the batch's memory", () => {
  // As for the binary framing above: an 8 MB gradient, sent in parts from where the worker wrote it
  // (grpc/message-memory.ts PartedAnswer), to a client that reads none of it while more requests of
  // the same shape are computed in the same pool. Memory given back before the answer had left would
  // be written over by them, and the first answer would read their numbers.
  const request = (seed: number, withFunction = true) => {
    const { tensors, want } = wideStep(seed);
    const message = create(DifferentiateRequestSchema, {
      function: withFunction ? { source: { case: "model", value: WIDE as never } } : undefined,
      point: {
        tensors: Object.fromEntries(
          tensors.map(([name, shape, data]) => [name, { shape, dtype: ElementType.FLOAT64, raw: new Uint8Array(bytesOf(data)) }]),
        ),
      },
    });
    return { message, want };
  };
  const framed = (message: ReturnType<typeof request>["message"]) => {
    const bytes = toBinary(DifferentiateRequestSchema, message);
    const frame = Buffer.alloc(5 + bytes.byteLength);
    frame.writeUInt32BE(bytes.byteLength, 1);
    frame.set(bytes, 5);
    return frame;
  };

  /**
   * Sends `messages` to `method` from a raw HTTP/2 client that reads the answer's first bytes and then
   * nothing (HTTP/2 flow control holds the rest back on the server) while three requests of another
   * point run through the same pool, one after another: whichever of the pool's blocks the memory would
   * have gone back to, one of them (a message copied in whole, or a batch written whole) lands on it.
   * Then reads everything: the answers' messages, and the last of the three.
   */
  const answeredWhileUnread = async (method: string, messages: Buffer[]) => {
    const other = request(2);
    const server = await startTestServer({ workers: 1, inlineBudgetUs: 0, maxInflightLarge: 2 });
    const session = connectHttp2(`http://127.0.0.1:${server.app.grpcPort}`);
    onTestFinished(async () => {
      session.destroy();
      await server.close();
    });
    const stream = session.request({
      ":method": "POST",
      ":path": `/adjoint.v1.AdjointService/${method}`,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.end(Buffer.concat(messages));
    const chunks: Buffer[] = [];
    const firstChunk = await new Promise<Buffer>((resolve, reject) => {
      stream.once("data", resolve);
      stream.once("error", reject);
    });
    stream.pause();
    chunks.push(firstChunk);
    let overwriting = await server.differentiate(other.message);
    for (let i = 0; i < 2; i++) overwriting = await server.differentiate(other.message);
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.resume();
    await once(stream, "end");
    const body = Buffer.concat(chunks);
    const answers = [];
    for (let at = 0; at < body.byteLength; at += 5 + body.readUInt32BE(at + 1)) {
      answers.push(fromBinary(DifferentiateResponseSchema, body.subarray(at + 5, at + 5 + body.readUInt32BE(at + 1))));
    }
    return { answers, overwriting, otherWant: other.want };
  };

  const expectGradients = (answer: { result?: { gradient: Record<string, { raw: Uint8Array }> } }, want: Record<string, Tensor>) => {
    for (const name of Object.keys(want)) {
      const got = float64s(answer.result?.gradient[name]?.raw ?? new Uint8Array());
      const differing = got.filter((v, i) => !Object.is(v, want[name].data[i])).length;
      expect({ name, length: got.length, differing }).toEqual({ name, length: want[name].data.length, differing: 0 });
    }
  };

  it("keeps that memory from other requests until HTTP/2 has written the answer, however slowly the client reads", async () => {
    const a = request(1);
    const { answers, overwriting, otherWant } = await answeredWhileUnread("Differentiate", [framed(a.message)]);
    expect(answers).toHaveLength(1);
    expectGradients(answers[0], a.want);
    expectGradients(overwriting, otherWant);
  });

  it("does the same for a DifferentiateStream's answers, in order", async () => {
    // The second message reuses the stream's function: its answer is computed once the first is written.
    const a = request(1);
    const c = request(3, false);
    const { answers, overwriting, otherWant } = await answeredWhileUnread("DifferentiateStream", [framed(a.message), framed(c.message)]);
    expect(answers.map((answer) => Number(answer.sequence))).toEqual([0, 1]);
    expectGradients(answers[0], a.want);
    expectGradients(answers[1], c.want);
    expectGradients(overwriting, otherWant);
  });
});

describe("AdjointService.differentiateEncoded", () => {
  it("hands the encoder the same answer differentiate gives, viewing shared memory it then reuses", async () => {
    const want = pointAndAnswer(14);
    const point = Object.fromEntries(
      want.tensors.map(([name, shape, data]) => [name, { shape, dtype: "float64" as const, bytes: new Uint8Array(bytesOf(data)) }]),
    );
    const input = { function: { model }, point };
    const copied = await s.app.service.differentiate(input);
    const seen: SharedArrayBuffer[] = [];
    const encode = (out: DifferentiateOutput) => {
      const grad = out.result?.gradient as Record<string, Tensor>;
      seen.push((grad["h.weight"].data as Float64Array).buffer as SharedArrayBuffer);
      return { loss: out.result?.outputs.loss as number, gradient: Object.fromEntries(names.map((n) => [n, Array.from(grad[n].data)])) };
    };
    const first = await s.app.service.differentiateEncoded(input, {}, encode);
    const second = await s.app.service.differentiateEncoded(input, {}, encode);
    await s.app.service.differentiateEncoded(input, {}, encode);
    expectExact(first, want);
    expectExact(second, want);
    const copiedGradient = copied.result?.gradient as Record<string, Tensor>;
    expectExact(
      { loss: copied.result?.outputs.loss as number, gradient: Object.fromEntries(names.map((n) => [n, copiedGradient[n].data])) },
      want,
    );
    for (const b of seen) expect(b).toBeInstanceOf(SharedArrayBuffer);
    // Given back once each answer was encoded, the memory served the next requests (as inputs or outputs).
    expect(new Set(seen).size).toBeLessThan(seen.length);
    // The copy differentiate answers with is its own memory, not the batch's.
    expect(copiedGradient["h.weight"].data).toBeInstanceOf(Float64Array);
    expect((copiedGradient["h.weight"].data as Float64Array).buffer).not.toBeInstanceOf(SharedArrayBuffer);
  });

  it("answers a point computed on the event loop at once, not as a promise, and refuses a bad one by throwing", async () => {
    // The default budget for the event loop (this file's server puts everything on the pool).
    const inline = await startTestServer({ workers: 1 });
    onTestFinished(() => inline.close());
    const service = inline.app.service;
    const worked = { function: { expression: "x1*exp(-0.5*(x1^2+x2^2))" }, point: { x1: 2, x2: 0.5 } };
    const text = (out: DifferentiateOutput) => answerJson(out);
    // Once to compile the function (its first request may go to the pool), then the steady state.
    await service.differentiateEncoded(worked, {}, text);
    const answer = service.differentiateEncoded(worked, {}, text);
    expect(answer).not.toBeInstanceOf(Promise);
    expect(JSON.parse(answer as string)).toMatchObject({
      value: 2 * Math.exp(-2.125),
      gradient: { x1: -3 * Math.exp(-2.125), x2: -Math.exp(-2.125) },
    });
    expect(answer).toBe(answerJson(await service.differentiate(worked)));
    expect(() => service.differentiateEncoded({ ...worked, point: { x1: 2, x2: "½" } }, {}, text)).toThrow(/point\.x2/);
    // On the pool: a promise.
    const want = pointAndAnswer(16);
    const point = Object.fromEntries(want.tensors.map(([name, shape, data]) => [name, { shape, data: Array.from(data) }]));
    const pooled = s.app.service.differentiateEncoded({ function: { model }, point }, {}, (out) => out.result?.outputs.loss);
    expect(pooled).toBeInstanceOf(Promise);
    expect(await pooled).toBe(want.loss);
  });

  it("holds a large answer's slot until the answer is encoded, so large answers are encoded one at a time", async () => {
    const inline = await startTestServer({ workers: 1, maxInflightLarge: 1 });
    onTestFinished(() => inline.close());
    const service = inline.app.service;
    // 90,000 numbers: over the 65,536 that make an answer large, and cheap enough to compute on the event loop.
    const large = { function: { expression: "broadcast_to(x, shape=[300, 300])" }, mode: "value" as const, point: { x: 1.5 } };
    const size = (out: DifferentiateOutput) => ((out.result as ResultRow).outputs.f as Tensor).data.length;
    await service.differentiateEncoded(large, {}, size);
    const order: string[] = [];
    let during: number | Promise<number> | undefined;
    const first = service.differentiateEncoded(large, {}, (out) => {
      order.push("first encoding");
      // Asked while the first answer is being encoded: it waits for the slot, rather than being made
      // (computed and encoded) right now, inside this encoding, as when the slot was given back first.
      let read = false;
      const point = {
        // Read first when the answer is computed (after its slot is granted).
        get x() {
          if (!read) order.push("second computed");
          read = true;
          return 1.5;
        },
      };
      during = service.differentiateEncoded({ ...large, point }, {}, (o) => {
        order.push("second encoded");
        return size(o);
      });
      order.push("first encoded");
      return size(out);
    });
    expect(await first).toBe(90_000);
    expect(await during).toBe(90_000);
    expect(order).toEqual(["first encoding", "first encoded", "second computed", "second encoded"]);
  });

  it("gives the memory an answer views back only once an encoder's promise settles (JSON written on the pool)", async () => {
    const want = pointAndAnswer(15);
    const other = pointAndAnswer(16);
    const input = (w: typeof want) => ({
      function: { model },
      point: Object.fromEntries(w.tensors.map(([name, shape, data]) => [name, { shape, data: Array.from(data) }])),
    });
    const grad = (out: DifferentiateOutput) => out.result?.gradient as Record<string, Tensor>;
    let viewed: SharedArrayBuffer | undefined;
    const answer = await s.app.service.differentiateEncoded(input(want), {}, async (out) => {
      viewed = (grad(out)["h.weight"].data as Float64Array).buffer as SharedArrayBuffer;
      // Other requests run while this encoder waits: had the memory been given back when the encoder
      // returned its promise, they would take it and write into it.
      await new Promise((resolve) => setTimeout(resolve, 1));
      const others = await Promise.all([1, 2, 3].map(() => s.app.service.differentiate(input(other))));
      expect(others[0].result?.outputs.loss).toBe(other.loss);
      return {
        loss: out.result?.outputs.loss as number,
        gradient: Object.fromEntries(names.map((n) => [n, Array.from(grad(out)[n].data)])),
      };
    });
    expect(viewed).toBeInstanceOf(SharedArrayBuffer);
    expectExact(answer, want);
  });
});

describe("a JSON answer with base64 tensors", () => {
  it("is byte for byte the serialized answer, with −0, non-finite numbers and names of any script", () => {
    const out: DifferentiateOutput = {
      id: "fn_test",
      mode: "reverse",
      allowNonFinite: true,
      result: {
        outputs: { "loss — λ": -0 },
        gradient: {
          "w\u00e9ight": { shape: [2, 3], data: Float64Array.of(1, -0, Number.NaN, Number.POSITIVE_INFINITY, 1e-310, -2.5) },
          b: { shape: [0], data: new Float64Array(0) },
          c: Number.NEGATIVE_INFINITY,
        },
      },
    };
    const bytes = answerJson(out, tensorBase64);
    expect(Buffer.isBuffer(bytes)).toBe(true);
    expect(Buffer.from(bytes).equals(Buffer.from(serializeJson(jsonBody(out, tensorBase64), true)))).toBe(true);
    const parsed = JSON.parse(bytes.toString()) as { gradient: Record<string, { base64: string }> };
    expect(float64s(Buffer.from(parsed.gradient["w\u00e9ight"].base64, "base64"))).toEqual([
      1,
      -0,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      1e-310,
      -2.5,
    ]);
  });
});
