import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { quoteJson } from "../../src/json.js";
import { scalarAnswerJson } from "../../src/service/json-scalar.js";
import { jsonBody, serializeJson } from "../../src/service/json-view.js";
import type { DifferentiateOutput } from "../../src/service/types.js";
import { clientName } from "../support/arbitraries.js";
import { record } from "../support/records.js";

const name = clientName;
const finite = fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constantFrom(-0, 1e21, 5e-324, -1.7976931348623157e308));
const map = fc.dictionary(name, finite, { maxKeys: 4 });

describe("the scalar answer's direct JSON", () => {
  it("is byte for byte what the general path writes, for any names and finite numbers", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(name, finite), { minLength: 1, maxLength: 3 }),
        fc.option(map, { nil: undefined }),
        fc.option(fc.dictionary(name, map, { maxKeys: 3 }), { nil: undefined }),
        fc.option(finite, { nil: undefined }),
        (outputs, gradient, hessian, derivative) => {
          const result: Record<string, unknown> = { outputs: record(outputs) };
          if (gradient !== undefined) result.gradient = record(Object.entries(gradient));
          if (hessian !== undefined) result.hessian = record(Object.entries(hessian).map(([k, m]) => [k, record(Object.entries(m))]));
          if (derivative !== undefined) result.derivative = derivative;
          const out = { id: "fn_1", mode: "reverse", allowNonFinite: false, result } as unknown as DifferentiateOutput;
          expect(scalarAnswerJson(out)).toBe(serializeJson(jsonBody(out), false));
        },
      ),
      { numRuns: 500 },
    );
  });

  it("quotes any string as JSON.stringify does: controls, quotes, backslashes, lone surrogates and pairs", () => {
    for (const s of ["", "x1", 'a"b', "a\\b", "\n\t\u0000\u001f", "\ud800", "x\udc00y", "😀", "\u2028é"])
      expect(quoteJson(s)).toBe(JSON.stringify(s));
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 12 }), (s) => quoteJson(s) === JSON.stringify(s)),
      { numRuns: 2000 },
    );
  });

  it("leaves tensors, non-finite numbers and annotated answers to the general path", () => {
    const base = { id: "fn_1", mode: "reverse", allowNonFinite: true };
    const of = (result: unknown) => scalarAnswerJson({ ...base, result } as unknown as DifferentiateOutput);
    expect(of({ outputs: { f: { shape: [2], data: new Float64Array([1, 2]) } } })).toBeUndefined();
    expect(of({ outputs: { f: Number.NaN } })).toBeUndefined();
    expect(of({ outputs: { f: 1 }, gradient: { x: Number.POSITIVE_INFINITY } })).toBeUndefined();
    expect(of({ outputs: { f: 1 }, jacobian: { f: { x: 2 } }, method: "forward" })).toBeUndefined();
    expect(of({ outputs: { f: 1 }, trace: { nodes: [] } })).toBeUndefined();
    expect(of({ outputs: { f: 0.5 }, gradient: { x: -0 } })).toBe('{"value":0.5,"gradient":{"x":-0.0},"id":"fn_1","mode":"reverse"}');
  });
});
