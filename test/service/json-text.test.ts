import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { jsonTextBound, writeJsonText } from "../../src/runtime/json-text.js";
import { answerJson, jsonWithMarks, LARGE_TEXT_NUMBERS, tensorJson } from "../../src/service/json-view.js";
import type { DifferentiateOutput } from "../../src/service/types.js";
import { rng } from "../support/numeric.js";
import { startTestServer, type TestServer } from "./helpers.js";

/**
 * A large JSON answer's numbers are written into its text on the pool (runtime/json-text.ts): the text
 * must be byte for byte the one written on the event loop (answerJson), for every form of answer.
 */
const tensor = (shape: number[], data: number[]) => ({ shape, data: Float64Array.from(data) });
const randoms = (n: number, seed: number) => {
  const next = rng(seed);
  return Array.from({ length: n }, () => (next() - 0.5) * 10 ** Math.floor(next() * 40 - 20));
};

function onPool(out: DifferentiateOutput): string {
  const marked = jsonWithMarks(out, 0);
  if (marked === undefined) throw new Error("no tensors to mark");
  return Buffer.from(writeJsonText({ kind: "json-text", ...marked, allowNonFinite: out.allowNonFinite })).toString("utf8");
}

const head = { id: "fn_0123", mode: "reverse", allowNonFinite: false };

describe("a large answer's JSON text written on the pool", () => {
  it("is byte for byte the event loop's, for every form of answer", () => {
    const long = randoms(10_000, 3);
    long[4095] = -0;
    long[4096] = 0;
    long[9999] = -0;
    const answers: DifferentiateOutput[] = [
      {
        ...head,
        result: {
          outputs: { f: tensor([2, 3], [1.5, -0, 0, 1e-310, -2.5e300, 3]) },
          gradient: { x: tensor([10_000], long), '名前 "q"\n': tensor([0], []) },
          jacobian: { f: { x: tensor([1, 2], [-0, 7]) } },
          derivative: -0,
        },
      },
      {
        ...head,
        results: [
          { outputs: { f: 1 }, gradient: { x: tensor([3], randoms(3, 5)) } },
          { outputs: { f: -0 }, gradient: { x: tensor([3], [-0, 0, 1]) } },
        ],
      },
      { ...head, columns: { outputs: { f: tensor([4], randoms(4, 7)) }, gradient: { x: tensor([4, 2], randoms(8, 8)) } } },
      {
        ...head,
        result: { outputs: { loss: 0.25 }, gradient: { w: tensor([5], randoms(5, 9)) } },
        parameters: { w: tensor([5], randoms(5, 10)), b: 0.5 },
      },
      {
        ...head,
        allowNonFinite: true,
        result: {
          outputs: { f: tensor([5], [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 2]) },
          derivative: Number.NaN,
        },
      },
      // Non-finite numbers without leave to send them are never answered; written, they would be null as JSON.stringify writes them.
      { ...head, result: { outputs: { f: tensor([3], [Number.NaN, 1, Number.POSITIVE_INFINITY]) } } },
    ];
    for (const out of answers) expect(onPool(out)).toBe(answerJson(out, tensorJson));
  });

  it("is written into the memory the caller lends where it fits, and is the same text either way", () => {
    const out: DifferentiateOutput = {
      ...head,
      result: { outputs: { f: tensor([3], [-0, 1e-310, -1.2345678901234567e-6]) }, gradient: { x: tensor([5_000], randoms(5_000, 11)) } },
    };
    const marked = jsonWithMarks(out, 0);
    if (marked === undefined) throw new Error("no tensors to mark");
    const want = answerJson(out, tensorJson);
    const lent = Buffer.from(new SharedArrayBuffer(jsonTextBound(marked) + 16), 8, jsonTextBound(marked));
    const inLent = writeJsonText({ kind: "json-text", ...marked, allowNonFinite: false, into: lent });
    expect(inLent.buffer).toBe(lent.buffer);
    expect(inLent.byteOffset).toBe(8);
    expect(Buffer.from(inLent).toString("utf8")).toBe(want);
    // Lent memory too short for the text: the rest goes to fresh memory, and the text is whole.
    const short = Buffer.from(new SharedArrayBuffer(100));
    const grown = writeJsonText({ kind: "json-text", ...marked, allowNonFinite: false, into: short });
    expect(grown.buffer).not.toBe(short.buffer);
    expect(Buffer.from(grown).toString("utf8")).toBe(want);
  });

  it("fits in jsonTextBound for any numbers, the longest texts among them, and is the event loop's text", () => {
    const longest = [-1.2345678901234567e-6, -2.2250738585072014e-308, -1.7976931348623157e308, -123456789012345680000, -0, -5e-324];
    const anyDouble = fc
      .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }))
      .map(([lo, hi]) => new Float64Array(new Uint32Array([lo, hi]).buffer)[0]);
    fc.assert(
      fc.property(
        fc.array(fc.oneof(anyDouble, fc.constantFrom(...longest)), { maxLength: 300 }),
        fc.boolean(),
        (numbers, allowNonFinite) => {
          const out: DifferentiateOutput = {
            ...head,
            allowNonFinite,
            result: { outputs: { f: 1 }, gradient: { 'x "名"': tensor([numbers.length], numbers), y: tensor([2], longest.slice(0, 2)) } },
          };
          const marked = jsonWithMarks(out, 0);
          if (marked === undefined) throw new Error("no tensors to mark");
          const text = writeJsonText({ kind: "json-text", ...marked, allowNonFinite });
          expect(text.byteLength).toBeLessThanOrEqual(jsonTextBound(marked));
          expect(Buffer.from(text).toString("utf8")).toBe(answerJson(out, tensorJson));
        },
      ),
      { numRuns: 300 },
    );
    // The bound is tight: a tensor of the longest number reaches it but for its last comma.
    const worst = jsonWithMarks({ ...head, result: { outputs: { f: tensor([3], new Array(3).fill(longest[0])) } } }, 0);
    if (worst === undefined) throw new Error("no tensors to mark");
    const text = writeJsonText({ kind: "json-text", ...worst, allowNonFinite: false });
    expect(text.byteLength).toBe(jsonTextBound(worst) - 1);
  });

  it("is taken for answers of more than LARGE_TEXT_NUMBERS numbers in tensors", () => {
    const row = (n: number): DifferentiateOutput => ({
      ...head,
      result: { outputs: { f: 1 }, gradient: { x: tensor([n], new Array(n).fill(2)) } },
    });
    expect(jsonWithMarks(row(LARGE_TEXT_NUMBERS))).toBeUndefined();
    expect(jsonWithMarks(row(LARGE_TEXT_NUMBERS + 1))?.tensors).toHaveLength(1);
  });
});

describe("a large JSON answer through the server", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ workers: 2 });
  });
  afterAll(async () => {
    await s?.close();
  });

  it("answers the numbers the base64 answer holds, each the closed form's", async () => {
    const n = LARGE_TEXT_NUMBERS + 4_465;
    const x = Array.from({ length: n }, (_, i) => Math.sin(i) * 3);
    const body = { function: { expression: "sum(sin(x) * x)", inputs: [{ name: "x", shape: [n] }] }, point: { x } };
    const [plain, base64] = await Promise.all([
      s.post("/v1/differentiate", body),
      s.post("/v1/differentiate", { ...body, encoding: "base64" }),
    ]);
    expect(plain.status).toBe(200);
    const gradient = (plain.body.gradient as Record<string, { shape: number[]; data: number[] }>).x;
    expect(gradient.shape).toEqual([n]);
    const bytes = Buffer.from((base64.body.gradient as Record<string, { base64: string }>).x.base64, "base64");
    const exact = new Float64Array(bytes.buffer, bytes.byteOffset, n);
    expect(gradient.data).toEqual(Array.from(exact));
    // d/dx (x sin x) = sin x + x cos x, to the last few units.
    gradient.data.forEach((g, i) => {
      const want = Math.sin(x[i]) + x[i] * Math.cos(x[i]);
      expect(Math.abs(g - want)).toBeLessThanOrEqual(1e-14 * Math.max(1, Math.abs(want)));
    });
  });
});
