import { fromBinary, toBinary } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { differentiateResponse } from "../../src/grpc/convert.js";
import { DifferentiateResponseSchema } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { scalarResponseBytes } from "../../src/grpc/scalar-response.js";
import type { DifferentiateOutput } from "../../src/service/types.js";

/** Names a client may choose, the awkward ones included. */
const name = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom("__proto__", "constructor", "toString", "é\n\u2028", ""));
const number = fc.oneof(fc.double(), fc.constantFrom(-0, Number.NaN, Number.POSITIVE_INFINITY, 5e-324));
const map = fc.dictionary(name, number, { maxKeys: 4 });

/** A record as the engine builds one: own keys set one by one (so `__proto__` is a key). */
function record(entries: [string, unknown][]): Record<string, unknown> {
  const r: Record<string, unknown> = {};
  for (const [k, v] of entries) Object.defineProperty(r, k, { value: v, enumerable: true, writable: true, configurable: true });
  return r;
}

describe("the scalar answer's direct protobuf encoding", () => {
  it("is byte for byte what toBinary writes of the general path's message", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(name, number), { minLength: 1, maxLength: 3 }),
        fc.option(map, { nil: undefined }),
        fc.option(fc.dictionary(name, map, { maxKeys: 3 }), { nil: undefined }),
        fc.option(number, { nil: undefined }),
        fc.nat({ max: 1000 }),
        (outputs, gradient, jacobian, laplacian, sequence) => {
          const result: Record<string, unknown> = { outputs: record(outputs) };
          if (gradient !== undefined) result.gradient = record(Object.entries(gradient));
          if (jacobian !== undefined) result.jacobian = record(Object.entries(jacobian).map(([k, m]) => [k, record(Object.entries(m))]));
          if (laplacian !== undefined) result.laplacian = laplacian;
          const out = { id: "fn_1", mode: "reverse", allowNonFinite: true, result } as unknown as DifferentiateOutput;
          const fast = scalarResponseBytes(out, sequence);
          expect(fast).toBeDefined();
          expect(
            Buffer.from(fast as Uint8Array).equals(
              Buffer.from(toBinary(DifferentiateResponseSchema, differentiateResponse(out, sequence))),
            ),
          ).toBe(true);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("matches toBinary past its scratch buffer, for long and non-ASCII names and large sequence numbers", () => {
    const general = (out: DifferentiateOutput, sequence: number) =>
      Buffer.from(toBinary(DifferentiateResponseSchema, differentiateResponse(out, sequence)));
    // 2,000 entries of 30-odd bytes: past the 16 KiB scratch, so the writer moves what it holds.
    const names = Array.from({ length: 2000 }, (_, i) => `${i % 3 === 0 ? "é".repeat(40) : "x".repeat(70)}_${i}`);
    const gradient = record(names.map((n, i) => [n, i / 7]));
    const big = { id: "fn_big", mode: "reverse", allowNonFinite: false, result: { outputs: record([["f", 1.5]]), gradient } };
    const small = { id: "fn_1", mode: "reverse", allowNonFinite: false, result: { outputs: record([["f", 0.25]]) } };
    for (const sequence of [0, 1, 2 ** 31, 2 ** 40 + 3]) {
      const first = scalarResponseBytes(big as unknown as DifferentiateOutput, sequence) as Uint8Array;
      expect(first.byteLength).toBeGreaterThan(16 * 1024);
      // A later answer written into the shared scratch buffer leaves an earlier one as it was.
      const second = scalarResponseBytes(small as unknown as DifferentiateOutput, sequence) as Uint8Array;
      expect(Buffer.from(first).equals(general(big as unknown as DifferentiateOutput, sequence))).toBe(true);
      expect(Buffer.from(second).equals(general(small as unknown as DifferentiateOutput, sequence))).toBe(true);
    }
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
    const bytes = scalarResponseBytes(out) as Uint8Array;
    const decoded = fromBinary(DifferentiateResponseSchema, bytes);
    expect(decoded.result?.outputs.f.values).toEqual([0.23886593653343924]);
    expect(decoded.result?.gradient.x1.values).toEqual([-0.35829890480015886]);
    expect(decoded.result?.gradient.x2.values).toEqual([-0.11943296826671962]);
    expect(decoded.result?.value?.values).toEqual([0.23886593653343924]);
    expect(Buffer.from(bytes).equals(Buffer.from(toBinary(DifferentiateResponseSchema, differentiateResponse(out))))).toBe(true);
  });

  it("leaves tensors and annotated answers to the general path", () => {
    const base = { id: "fn_1", mode: "jacobian", allowNonFinite: false };
    const of = (result: unknown) => scalarResponseBytes({ ...base, result } as unknown as DifferentiateOutput);
    expect(of({ outputs: { f: { shape: [2], data: new Float64Array([1, 2]) } } })).toBeUndefined();
    expect(of({ outputs: { f: 1 }, jacobian: { f: { x: 2 } }, method: "forward" })).toBeUndefined();
    // A tensor met late, after other fields are written, still abandons the fast path.
    expect(of({ outputs: { f: 1, g: 2 }, gradient: { x: 1, y: { shape: [2], data: new Float64Array([1, 2]) } } })).toBeUndefined();
    expect(of({ outputs: { f: 1 }, hessian: { x: { x: 1, y: { shape: [2], data: new Float64Array([1, 2]) } } } })).toBeUndefined();
    expect(of({ outputs: { f: 1 }, laplacian: { shape: [2], data: new Float64Array([1, 2]) } })).toBeUndefined();
    expect(scalarResponseBytes({ ...base, results: [] } as unknown as DifferentiateOutput)).toBeUndefined();
  });
});
