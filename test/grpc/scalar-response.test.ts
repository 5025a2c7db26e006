import { toBinary } from "@bufbuild/protobuf";
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

  it("leaves tensors and annotated answers to the general path", () => {
    const base = { id: "fn_1", mode: "jacobian", allowNonFinite: false };
    const of = (result: unknown) => scalarResponseBytes({ ...base, result } as unknown as DifferentiateOutput);
    expect(of({ outputs: { f: { shape: [2], data: new Float64Array([1, 2]) } } })).toBeUndefined();
    expect(of({ outputs: { f: 1 }, jacobian: { f: { x: 2 } }, method: "forward" })).toBeUndefined();
    expect(scalarResponseBytes({ ...base, results: [] } as unknown as DifferentiateOutput)).toBeUndefined();
  });
});
