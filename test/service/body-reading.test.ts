import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BodyLease } from "../../src/http/body.js";
import { pooledBytes, releaseShared, sharedBytes } from "../../src/runtime/shared-memory.js";
import { answerJson, jsonBody, serializeJson, tensorBase64 } from "../../src/service/json-view.js";
import type { DifferentiateOutput } from "../../src/service/types.js";
import { startTestServer, type TestServer } from "./helpers.js";

/**
 * Request bodies read off the socket into pooled memory (http/body.ts), and large answers made in
 * pooled memory (http/binary.ts, service/json-view.ts): the answers are byte for byte those of the
 * general path, however the body arrives, and fastify's limits still hold.
 */
let s: TestServer;
const BODY_LIMIT = 1024 * 1024;
beforeAll(async () => {
  s = await startTestServer({ workers: 1, inlineBudgetUs: 0, bodyLimit: BODY_LIMIT });
});
afterAll(async () => {
  await s?.close();
});

// A sum of squares over 40,000 elements (320 kB: pooled memory for the body and the answer); its gradient is 2x.
const N = 40_000;
const x = Float64Array.from({ length: N }, (_, i) => Math.sin(i) * 3 + i / 7);
const bytesOf = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const request = {
  function: { expression: "sum(x*x)", inputs: [{ name: "x", shape: [N] }] },
  point: { x: { shape: [N], dtype: "float64", base64: bytesOf(x).toString("base64") } },
};

/** The framed binary body of `request`, its binary part at an odd offset (or after `pad` spaces more). */
function framed(pad = 1): { body: Buffer; headerLength: number } {
  const header = `${JSON.stringify({ ...request, point: { x: { shape: [N], dtype: "float64", binary: { offset: 0, length: N * 8 } } } })}${" ".repeat(pad)}`;
  return { body: Buffer.concat([Buffer.from(header), bytesOf(x)]), headerLength: Buffer.byteLength(header) };
}

/** Posts `body` in `pieces` writes, with a Content-Length or chunked. */
function post(
  body: Buffer,
  headers: Record<string, string>,
  { chunked = false, pieces = 1 } = {},
): Promise<{ status: number; bytes: Buffer; headers: Record<string, unknown> }> {
  const url = new URL(`${s.base}/v1/differentiate`);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        headers: chunked ? headers : { ...headers, "content-length": body.byteLength },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, bytes: Buffer.concat(chunks), headers: res.headers }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    const step = Math.ceil(body.byteLength / pieces);
    for (let at = 0; at < body.byteLength; at += step) req.write(body.subarray(at, at + step));
    req.end();
  });
}

const BINARY = { "content-type": "application/vnd.adjoint+binary", accept: "application/vnd.adjoint+binary" };

function gradientOfFramed(bytes: Buffer, n: number): Float64Array {
  const answer = JSON.parse(bytes.subarray(0, n).toString()) as { gradient: { x: { binary: { offset: number; length: number } } } };
  const { offset, length } = answer.gradient.x.binary;
  return new Float64Array(Uint8Array.from(bytes.subarray(n + offset, n + offset + length)).buffer);
}

describe("a body read into pooled memory", () => {
  it("answers a framed body the same bytes whether it comes with a length or chunked, in one piece or many", async () => {
    const { body, headerLength } = framed();
    const headers = { ...BINARY, "adjoint-header-length": String(headerLength) };
    const answers = [
      await post(body, headers),
      await post(body, headers, { pieces: 37 }),
      await post(body, headers, { chunked: true, pieces: 37 }),
      await post(body, headers, { chunked: true }),
    ];
    for (const a of answers) expect(a.status).toBe(200);
    const n = Number(answers[0].headers["adjoint-header-length"]);
    expect(Array.from(gradientOfFramed(answers[0].bytes, n))).toEqual(Array.from(x, (v) => 2 * v));
    for (const a of answers.slice(1)) expect(a.bytes.equals(answers[0].bytes)).toBe(true);
  });

  it("answers the same bytes wherever the binary part starts (read into memory so that it is aligned)", async () => {
    const answers = [];
    for (let pad = 0; pad < 8; pad++) {
      const { body, headerLength } = framed(pad);
      answers.push(await post(body, { ...BINARY, "adjoint-header-length": String(headerLength) }, { pieces: 3 }));
    }
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.bytes.equals(answers[0].bytes)).toBe(true);
    }
    expect(Array.from(gradientOfFramed(answers[0].bytes, Number(answers[0].headers["adjoint-header-length"])))).toEqual(
      Array.from(x, (v) => 2 * v),
    );
  });

  it("answers a large JSON body with base64 tensors byte for byte as the service's general path, again and again", async () => {
    const want = Buffer.from(answerJson(await s.app.service.differentiate({ ...request, encoding: "base64" } as never), tensorBase64));
    const body = Buffer.from(JSON.stringify({ ...request, encoding: "base64" }));
    const headers = { "content-type": "application/json" };
    const answers = await Promise.all([post(body, headers), post(body, headers, { chunked: true, pieces: 9 }), post(body, headers)]);
    answers.push(await post(body, headers, { pieces: 5 }));
    for (const a of answers) {
      expect(a.status).toBe(200);
      expect(a.bytes.equals(want)).toBe(true);
    }
    const parsed = JSON.parse(want.toString()) as { value: number; gradient: { x: { base64: string } } };
    expect(Array.from(new Float64Array(Uint8Array.from(Buffer.from(parsed.gradient.x.base64, "base64")).buffer))).toEqual(
      Array.from(x, (v) => 2 * v),
    );
  });

  it("answers a large JSON body whose tensors come in another order than the function's inputs exactly, again and again", async () => {
    // The worker decodes the tensors into pooled memory in the body's order (y, then x); the batch lays
    // them out in the function's (x, then y). Were that memory given back before the batch took its own,
    // the batch could be handed the same memory, and copying x to its place would overwrite y.
    const M = 30_000;
    const y = Float64Array.from({ length: M }, (_, i) => Math.cos(i) - i / 11);
    const twoInputs = {
      function: {
        expression: "sum(x*x) + sum(y*y)",
        inputs: [
          { name: "x", shape: [N] },
          { name: "y", shape: [M] },
        ],
      },
      point: {
        y: { shape: [M], dtype: "float64", base64: bytesOf(y).toString("base64") },
        x: { shape: [N], dtype: "float64", base64: bytesOf(x).toString("base64") },
      },
      encoding: "base64",
    };
    const body = Buffer.from(JSON.stringify(twoInputs));
    const headers = { "content-type": "application/json" };
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all([post(body, headers), post(body, headers, { pieces: 4 })]);
      for (const a of answers) {
        expect(a.status).toBe(200);
        const parsed = JSON.parse(a.bytes.toString()) as { gradient: Record<"x" | "y", { base64: string }> };
        const gradient = (name: "x" | "y") =>
          Array.from(new Float64Array(Uint8Array.from(Buffer.from(parsed.gradient[name].base64, "base64")).buffer));
        expect(gradient("x")).toEqual(Array.from(x, (v) => 2 * v));
        expect(gradient("y")).toEqual(Array.from(y, (v) => 2 * v));
      }
    }
  });

  it("refuses a large JSON body with a poisoned key, escaped or not, in the words a small one gets", async () => {
    const headers = { "content-type": "application/json" };
    const poisoned = (key: string, padding: number) =>
      Buffer.from(
        `{"function":{"expression":"sum(x*x)"},"point":{"x":{"shape":[1],"data":[1]},${key}:{"a":1}},"pad":"${" ".repeat(padding)}"}`,
      );
    for (const key of ['"__proto__"', '"\\u005f_proto__"']) {
      const small = await post(poisoned(key, 0), headers);
      const large = await post(poisoned(key, 200_000), headers);
      expect(small.status).toBe(400);
      expect(large.status).toBe(400);
      const detail = (a: { bytes: Buffer }) => (JSON.parse(a.bytes.toString()) as { detail: string }).detail;
      expect(detail(large)).toBe(detail(small));
      expect(detail(large)).toMatch(/not acceptable JSON/);
    }
  });

  it("refuses a body declared over bodyLimit, and a chunked one that grows past it, with 413", async () => {
    const big = Buffer.alloc(BODY_LIMIT + 10, 32);
    const declared = await post(big, { "content-type": "application/json" });
    expect(declared.status).toBe(413);
    const chunked = await post(big, { ...BINARY, "adjoint-header-length": "2" }, { chunked: true, pieces: 40 }).catch(() => ({
      status: 413,
    }));
    expect(chunked.status).toBe(413);
  });

  it("refuses a framed body whose header length is past its end, as before", async () => {
    const { body } = framed();
    const r = await post(body, { ...BINARY, "adjoint-header-length": String(body.byteLength + 1) });
    expect(r.status).toBe(400);
    expect((JSON.parse(r.bytes.toString()) as { detail: string }).detail).toBe(
      `adjoint-header-length is ${body.byteLength + 1}, but the body has only ${body.byteLength} bytes`,
    );
  });
});

describe("pooled memory for bodies and answers", () => {
  it("hands back the memory given back, shared or ordinary, and small sizes as ordinary buffers", () => {
    const shared = sharedBytes(300_000);
    expect(shared.buffer).toBeInstanceOf(SharedArrayBuffer);
    releaseShared(shared);
    expect(sharedBytes(300_001).buffer).toBe(shared.buffer);
    const plain = pooledBytes(300_000);
    expect(plain.buffer).toBeInstanceOf(ArrayBuffer);
    releaseShared(plain);
    expect(pooledBytes(262_145).buffer).toBe(plain.buffer);
    expect(sharedBytes(100).buffer).not.toBeInstanceOf(SharedArrayBuffer);
  });

  it("gives a body's memory back only when its last holder lets go", () => {
    const memory = sharedBytes(600_000);
    const lease = new BodyLease(memory);
    lease.hold();
    lease.release();
    const meanwhile = sharedBytes(600_000);
    expect(meanwhile.buffer).not.toBe(memory.buffer);
    lease.release();
    expect(sharedBytes(600_000).buffer).toBe(memory.buffer);
  });

  it("encodes base64 tensors of many steps' length byte for byte as serializing them whole", () => {
    const data = Float64Array.from({ length: 20_001 }, (_, i) => (i % 7 === 0 ? -0 : i * 1.0000001));
    const out: DifferentiateOutput = {
      id: "fn_test",
      mode: "reverse",
      allowNonFinite: false,
      result: { outputs: { f: 1.5 }, gradient: { a: { shape: [20_001], data }, b: { shape: [2], data: Float64Array.of(1, 2) } } },
    };
    const bytes = answerJson(out, tensorBase64);
    expect(Buffer.from(bytes).equals(Buffer.from(serializeJson(jsonBody(out, tensorBase64), false)))).toBe(true);
  });
});
