import { describe, expect, it } from "vitest";
import { evaluatePointInto } from "../../src/engine/batch.js";
import { CompiledFunction, type EvaluateRequest } from "../../src/engine/compiled-function.js";
import { fieldValue, type Section } from "../../src/engine/sections.js";
import { firstNonFinite, type Value } from "../../src/engine/values.js";
import { parseExpressions } from "../../src/ir/expression.js";
import { type Batch, evaluateRange, type Field, slots } from "../../src/runtime/batch.js";
import { sizeOf } from "../../src/tensor/shape.js";
import { rng } from "../support/numeric.js";

/**
 * A tensor function's batches are evaluated point by point, each point's results written by the
 * program straight into the batch's memory where the request's plan allows it. Every number must be
 * the one the engine's answer (the general path, fn.evaluate) holds, bit for bit.
 */
const fn = new CompiledFunction(
  parseExpressions({
    inputs: [
      { name: "x", shape: [3, 4] },
      { name: "W", shape: [4, 5] },
      { name: "v", shape: [5] },
    ],
    outputs: [{ name: "loss", text: "sum(tanh(x @ W) * v)" }],
  }),
);
const shapes: Record<string, number[]> = { x: [3, 4], W: [4, 5], v: [5], a: [] };
const names = ["x", "W", "v"];

function batchOf(
  f: CompiledFunction,
  request: EvaluateRequest,
  fields: { section: Section; name: string; shape: number[] }[],
  count: number,
  seed: number,
): Batch {
  const next = rng(seed);
  const ins = slots(
    f.inputNames.map((name) => ({ name, shape: shapes[name], size: sizeOf(shapes[name]) })),
    count,
  );
  const outs = slots(
    fields.map((x) => ({ ...x, size: sizeOf(x.shape) })),
    count,
  );
  const inputs = new Float64Array(new SharedArrayBuffer(ins.length * 8)).map(() => next() * 2 - 1);
  const outputs = new Float64Array(new SharedArrayBuffer(outs.length * 8)).fill(-7);
  const layout = { request, count, inputs: ins.slots, fields: outs.slots, inputLength: ins.length, outputLength: outs.length };
  return { layout, inputs, outputs };
}

function pointOf(batch: Batch, i: number): Record<string, Value> {
  return Object.fromEntries(
    batch.layout.inputs.map((s) => [
      s.name,
      { shape: s.shape, data: batch.inputs.slice(s.offset + i * s.size, s.offset + (i + 1) * s.size) },
    ]),
  );
}

/** Every point's fields as the engine's answer gives them, in the batch's order. */
function general(f: CompiledFunction, batch: Batch): number[] {
  const out: number[] = [];
  for (const field of batch.layout.fields) {
    for (let i = 0; i < batch.layout.count; i++) {
      const v = fieldValue(f.evaluate(pointOf(batch, i), batch.layout.request), field);
      out.push(...(typeof v === "number" ? [v] : Array.from(v.data)));
    }
  }
  return out;
}

const gradientFields = [
  { section: "outputs" as const, name: "loss", shape: [] },
  ...names.map((name) => ({ section: "gradient" as const, name, shape: shapes[name] })),
];

describe("a batch in pooled memory that still holds an earlier request's numbers", () => {
  const scalar = new CompiledFunction(
    parseExpressions({
      inputs: [
        { name: "x", shape: [] },
        { name: "y", shape: [] },
      ],
      outputs: [{ name: "f", text: "x * exp(y)" }],
    }),
  );
  /** 10 points (the vectorised pass) with a field the request's plan does not produce: y's gradient, not asked for. */
  function staleBatch(outputsUnzeroed: boolean): Batch {
    const count = 10;
    const ins = slots(
      ["x", "y"].map((name) => ({ name, shape: [], size: 1 })),
      count,
    );
    const fields = [
      { section: "outputs" as const, name: "f", shape: [], size: 1 },
      { section: "gradient" as const, name: "x", shape: [], size: 1 },
      { section: "gradient" as const, name: "y", shape: [], size: 1 },
    ];
    const outs = slots(fields, count);
    const inputs = new Float64Array(new SharedArrayBuffer(ins.length * 8)).map((_, i) => 0.1 * (i + 1));
    const outputs = new Float64Array(new SharedArrayBuffer(outs.length * 8)).fill(-7);
    const layout = {
      request: { mode: "reverse", wrt: ["x"] } as EvaluateRequest,
      count,
      inputs: ins.slots,
      fields: outs.slots,
      inputLength: ins.length,
      outputLength: outs.length,
    };
    return { layout, inputs, outputs, ...(outputsUnzeroed ? { outputsUnzeroed } : {}) };
  }

  it("is zeroed over the range evaluated, so that a field no pass writes reads zero, never the earlier numbers", () => {
    const batch = staleBatch(true);
    evaluateRange(scalar, batch, 2, 10);
    const [f, gx, gy] = batch.layout.fields as Field[];
    for (let i = 2; i < 10; i++) {
      const x = batch.inputs[i];
      const y = batch.inputs[10 + i];
      expect(batch.outputs[f.offset + i]).toBe(x * Math.exp(y));
      expect(batch.outputs[gx.offset + i]).toBe(Math.exp(y));
      expect(batch.outputs[gy.offset + i]).toBe(0);
    }
    // Points outside the range are another task's: untouched.
    for (const field of [f, gx, gy]) expect(Array.from(batch.outputs.subarray(field.offset, field.offset + 2))).toEqual([-7, -7]);
  });

  it("is left as it is when the batch says its outputs start at zero (memory fresh from the system)", () => {
    const batch = staleBatch(false);
    evaluateRange(scalar, batch, 0, 10);
    const gy = (batch.layout.fields as Field[])[2];
    expect(Array.from(batch.outputs.subarray(gy.offset, gy.offset + 10))).toEqual(Array(10).fill(-7));
  });
});

describe("a tensor function's batch, point by point", () => {
  it.each([
    ["reverse", { mode: "reverse" } as EvaluateRequest, gradientFields],
    ["reverse in float32", { mode: "reverse", precision: "float32" } as EvaluateRequest, gradientFields],
    ["reverse wrt W", { mode: "reverse", wrt: ["W"] } as EvaluateRequest, [gradientFields[0], gradientFields[2]]],
    ["value", { mode: "value" } as EvaluateRequest, [gradientFields[0]]],
  ])("%s: every number is the engine's answer's, bit for bit", (_name, request, fields) => {
    const batch = batchOf(fn, request, fields, 3, 11);
    // Written in place and found finite there: the event loop is told it need not scan them again.
    expect(evaluateRange(fn, batch, 0, 3)).toEqual({ extras: [], finite: true });
    expect(Array.from(batch.outputs)).toEqual(general(fn, batch));
    expect(batch.outputs.includes(-7)).toBe(false);
  });

  it("leaves the batch's memory alone once its range is done", () => {
    const batch = batchOf(fn, { mode: "reverse" }, gradientFields, 2, 12);
    evaluateRange(fn, batch, 0, 2);
    const written = Float64Array.from(batch.outputs);
    // The same program, run again for another point: it must no longer write into the finished batch.
    const other = batchOf(fn, { mode: "reverse" }, gradientFields, 1, 13);
    fn.evaluate(pointOf(other, 0), { mode: "reverse" });
    evaluateRange(fn, other, 0, 1);
    expect(Array.from(batch.outputs)).toEqual(Array.from(written));
    expect(Array.from(other.outputs)).toEqual(general(fn, other));
  });

  it("copies out results the program cannot write in place (an input passed through), and fills only its range", () => {
    const multi = new CompiledFunction(
      parseExpressions({
        inputs: [{ name: "x", shape: [3, 4] }],
        outputs: [
          { name: "same", text: "x" },
          { name: "twice", text: "2 * x" },
          { name: "total", text: "sum(x)" },
        ],
      }),
    );
    const fields = [
      { section: "outputs" as const, name: "same", shape: [3, 4] },
      { section: "outputs" as const, name: "twice", shape: [3, 4] },
      { section: "outputs" as const, name: "total", shape: [] },
    ];
    const batch = batchOf(multi, { mode: "value" }, fields, 3, 14);
    evaluateRange(multi, batch, 1, 3);
    const expected = general(multi, batch);
    const [same, twice, total] = batch.layout.fields as Field[];
    for (const f of [same, twice, total]) {
      expect(batch.outputs.subarray(f.offset, f.offset + f.size).every((v) => v === -7)).toBe(true);
      expect(Array.from(batch.outputs.subarray(f.offset + f.size, f.offset + 3 * f.size))).toEqual(
        expected.slice(f.offset + f.size, f.offset + 3 * f.size),
      );
    }
  });

  it("takes the engine's answer for a non-finite result, with where it arose", () => {
    const logs = new CompiledFunction(
      parseExpressions({ inputs: [{ name: "x", shape: [3, 4] }], outputs: [{ name: "f", text: "sum(log(x))" }] }),
    );
    const batch = batchOf(
      logs,
      { mode: "reverse" },
      [
        { section: "outputs", name: "f", shape: [] },
        { section: "gradient", name: "x", shape: [3, 4] },
      ],
      2,
      15,
    );
    batch.inputs.subarray(0, 12).fill(0.5);
    batch.inputs[12 + 5] = -1;
    const { extras, finite } = evaluateRange(logs, batch, 0, 2);
    expect(finite).toBe(false);
    expect(extras.map((e) => e.index)).toEqual([1]);
    expect(extras[0].nonFinite?.node).toBeDefined();
    expect(batch.outputs[0]).toBe(12 * Math.log(0.5));
    expect(Number.isNaN(batch.outputs[1])).toBe(true);
    expect(Array.from(batch.outputs)).toEqual(general(logs, batch));
  });
});

describe("a scalar function's batch, vectorised", () => {
  const logOf = new CompiledFunction(parseExpressions({ inputs: [{ name: "a", shape: [] }], outputs: [{ name: "f", text: "log(a)" }] }));
  const fields = [
    { section: "outputs" as const, name: "f", shape: [] },
    { section: "gradient" as const, name: "a", shape: [] },
  ];

  it("says its results are finite only when its scan of the whole range found them so", () => {
    const batch = batchOf(logOf, { mode: "reverse" }, fields, 20, 21);
    batch.inputs.forEach((v, i) => {
      batch.inputs[i] = Math.abs(v) + 0.5;
    });
    expect(evaluateRange(logOf, batch, 0, 20)).toEqual({ extras: [], finite: true });
    expect(Array.from(batch.outputs)).toEqual(general(logOf, batch));
    batch.inputs[13] = -1;
    const { extras, finite } = evaluateRange(logOf, batch, 0, 20);
    expect(finite).toBe(false);
    expect(extras.map((e) => e.index)).toEqual([13]);
  });
});

describe("evaluatePointInto", () => {
  const point = pointOf(batchOf(fn, { mode: "value" }, [], 1, 16), 0);
  const targets = () => [new Float64Array(1), new Float64Array(12), new Float64Array(20), new Float64Array(5)];

  it("declines what the general path answers: traces, tangents, targets of another size", () => {
    expect(evaluatePointInto(fn, { mode: "reverse", trace: true }, point, targets())).toBe(false);
    expect(evaluatePointInto(fn, { mode: "forward", tangent: { x: 0, W: 0, v: 0 } }, point, targets())).toBe(false);
    expect(evaluatePointInto(fn, { mode: "jacobian" }, point, targets())).toBe(false);
    expect(evaluatePointInto(fn, { mode: "reverse" }, point, [new Float64Array(1), new Float64Array(11)])).toBe(false);
  });

  it("writes the outputs and gradients of the engine's answer", () => {
    const out = targets();
    expect(evaluatePointInto(fn, { mode: "reverse" }, point, out)).toBe(true);
    const answer = fn.evaluate(point, { mode: "reverse" });
    expect(out[0][0]).toBe(answer.outputs.loss);
    names.forEach((name, k) => {
      expect(Array.from(out[k + 1])).toEqual(Array.from((answer.gradient as Record<string, { data: ArrayLike<number> }>)[name].data));
    });
  });
});

describe("firstNonFinite", () => {
  it("finds the first NaN or ±∞ at any position of a float array, and anything not a finite number in a plain one", () => {
    for (const n of [0, 1, 3, 4, 5, 8, 11]) {
      expect(firstNonFinite(new Float64Array(n))).toBe(-1);
      for (let at = 0; at < n; at++) {
        for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
          const data = Float64Array.from({ length: n }, (_, i) => i - 2.5);
          data[at] = bad;
          if (at + 2 < n) data[at + 2] = Number.NaN;
          expect(firstNonFinite(data)).toBe(at);
          expect(firstNonFinite(Float32Array.from(data))).toBe(at);
        }
      }
    }
    expect(firstNonFinite([1, 2, 3, "4" as unknown as number, 5])).toBe(3);
    expect(firstNonFinite([1, 2, null as unknown as number, 4, 5])).toBe(2);
    expect(firstNonFinite(Number.NaN)).toBe(0);
    expect(firstNonFinite(Number.NEGATIVE_INFINITY)).toBe(0);
    expect(firstNonFinite(-0)).toBe(-1);
  });

  it("finds it across the scan's blocks of 1024, in a subarray, and after the largest finite values", () => {
    for (const n of [1023, 1024, 1025, 2048, 3001]) {
      for (const at of [0, 1019, 1020, 1023, 1024, 1025, 2047, 2048, n - 1]) {
        if (at >= n) continue;
        const data = Float64Array.from({ length: n }, (_, i) => (i % 2 === 0 ? Number.MAX_VALUE : -Number.MAX_VALUE));
        expect(firstNonFinite(data)).toBe(-1);
        data[at] = Number.NEGATIVE_INFINITY;
        if (at + 1000 < n) data[at + 1000] = Number.NaN;
        expect(firstNonFinite(data)).toBe(at);
        // A view that starts past the first element counts from its own start.
        if (at > 0) expect(firstNonFinite(data.subarray(1))).toBe(at - 1);
      }
    }
  });
});
