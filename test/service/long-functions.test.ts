import { create } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { AdjointError } from "../../src/errors.js";
import { DifferentiateRequestSchema } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { parseExpressions } from "../../src/ir/expression.js";
import { POOL_PARSE_CHARS } from "../../src/runtime/parse-function.js";
import { num, startTestServer, streamAnswers, type TestServer } from "./helpers.js";

/**
 * Expressions of POOL_PARSE_CHARS or more are parsed and hashed on the pool, not on the event loop:
 * the answer, the function's id and the errors must be the ones parsing here gives.
 */
let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ workers: 2 });
});
afterAll(async () => {
  await s?.close();
});

const terms = (n: number, salt = 0) => Array.from({ length: n }, (_, i) => `sin(x*${(1 + (i + salt) / 1e4).toFixed(4)})*y`).join("+");

describe("a long expression", () => {
  it("answers exactly what parsing it here gives, under the same id, from the source cache the second time", async () => {
    const text = terms(1200);
    expect(text.length).toBeGreaterThanOrEqual(POOL_PARSE_CHARS);
    const local = new CompiledFunction(parseExpressions({ outputs: [{ name: "f", text }] }));
    const want = local.evaluate({ x: 0.3, y: -1.25 }, { mode: "reverse" });
    const body = { function: { expression: text }, point: { x: 0.3, y: -1.25 } };
    const first = await s.post("/v1/differentiate", body);
    expect(first.status).toBe(200);
    expect(first.body.id).toBe(local.hash);
    expect(first.body.value).toBe(want.outputs.f);
    expect(first.body.gradient).toEqual(want.gradient);
    const hits = async () =>
      Number(/adjoint_cache_lookups_total\{cache="source",result="hit"\} (\d+)/.exec((await s.get("/metrics")).text)?.[1] ?? 0);
    const before = await hits();
    const again = await s.post("/v1/differentiate", body);
    expect(again.body).toEqual({ ...first.body });
    expect(await hits()).toBe(before + 1);
  });

  it("with several outputs, answers each output's value", async () => {
    const [a, b] = [terms(700, 1), terms(700, 2)];
    const local = new CompiledFunction(
      parseExpressions({
        outputs: [
          { name: "a", text: a },
          { name: "b", text: b },
        ],
      }),
    );
    const want = local.evaluate({ x: 0.7, y: 2 }, { mode: "value" });
    const r = await s.post("/v1/differentiate", { function: { expressions: { a, b } }, mode: "value", point: { x: 0.7, y: 2 } });
    expect(r.status).toBe(200);
    expect(r.body.outputs).toEqual(want.outputs);
  });

  it("is refused with the field and position parsing it here names", async () => {
    const text = `${terms(1200, 3)} + )`;
    let local: AdjointError | undefined;
    try {
      parseExpressions({ outputs: [{ name: "f", text }] });
    } catch (e) {
      local = e as AdjointError;
    }
    expect(local).toBeInstanceOf(AdjointError);
    const r = await s.post("/v1/differentiate", { function: { expression: text }, point: { x: 1, y: 1 } });
    expect(r.status).toBe(400);
    expect(r.body.field).toBe("function.expression");
    expect(r.body.position).toBe(local?.location.position);
    expect(r.body.detail).toBe(local?.message);
    const notText = await s.post("/v1/differentiate", { function: { expressions: { f: 12 } }, point: { x: 1 } });
    expect(notText.status).toBe(400);
    expect(notText.body.field).toBe("function.expressions.f");
  });

  it("registered, is parsed the same way, and its id serves later requests", async () => {
    const text = terms(1100, 4);
    const local = new CompiledFunction(parseExpressions({ outputs: [{ name: "f", text }] }));
    const registered = await s.post("/v1/functions", { function: { expression: text } });
    expect(registered.status).toBe(201);
    expect(registered.body.id).toBe(local.hash);
    const r = await s.post("/v1/differentiate", { function: { id: local.hash }, point: { x: -0.4, y: 3 } });
    expect(r.body.value).toBe(local.evaluate({ x: -0.4, y: 3 }, { mode: "value" }).outputs.f);
    const refused = await s.post("/v1/functions", { function: { expression: `${text} * (` } });
    expect(refused.status).toBe(400);
    expect(refused.body.field).toBe("function.expression");
  });

  it("named by a gRPC stream's first message, serves the messages after it in order", async () => {
    const text = terms(1100, 5);
    const local = new CompiledFunction(parseExpressions({ outputs: [{ name: "f", text }] }));
    const call = s.client.differentiateStream();
    const done = streamAnswers(call);
    const point = (i: number) => ({ values: { x: i / 10, y: 1 } });
    call.write(create(DifferentiateRequestSchema, { function: { source: { case: "expression", value: text } }, point: point(0) }));
    // Sent before the function is parsed: answered after it, with it.
    for (let i = 1; i < 5; i++) call.write(create(DifferentiateRequestSchema, { point: point(i) }));
    call.end();
    const answers = await done;
    expect(answers.map((a) => Number(a.sequence))).toEqual([0, 1, 2, 3, 4]);
    answers.forEach((a, i) => {
      expect(a.id).toBe(local.hash);
      expect(num(a.result?.outputs.f)).toBe(local.evaluate({ x: i / 10, y: 1 }, { mode: "value" }).outputs.f);
    });
  });

  it("is not parsed for a client that has left, nor past the request's deadline", async () => {
    const input = { function: { expression: terms(1100, 6) }, point: { x: 1, y: 1 } };
    const left = new AbortController();
    left.abort();
    await expect(Promise.resolve(s.app.service.resolveFunction(input, { signal: left.signal }))).rejects.toMatchObject({
      kind: "cancelled",
    });
    await expect(Promise.resolve(s.app.service.resolveFunction(input, { deadline: Date.now() - 1 }))).rejects.toMatchObject({
      kind: "deadline_exceeded",
    });
    // Not kept by either: the next request parses it.
    expect((await s.post("/v1/differentiate", input)).status).toBe(200);
  });

  it("is not parsed for registration by a client that has left, nor past its deadline", async () => {
    const fn = { expression: terms(1100, 9) };
    const left = new AbortController();
    left.abort();
    await expect(s.app.service.registerFunction(fn, { signal: left.signal })).rejects.toMatchObject({ kind: "cancelled" });
    await expect(s.app.service.registerFunction(fn, { deadline: Date.now() - 1 })).rejects.toMatchObject({
      kind: "deadline_exceeded",
    });
    const registered = await s.post("/v1/functions", { function: fn });
    expect(registered.status).toBe(201);
    expect(registered.body.id).toBe(new CompiledFunction(parseExpressions({ outputs: [{ name: "f", text: fn.expression }] })).hash);
  });

  it("asked again while it is being parsed, is parsed once; a first asker that leaves does not fail the second", async () => {
    const input = { function: { expression: terms(1100, 7) }, point: { x: 0.5, y: 2 } };
    const lookups = async (result: string) =>
      Number(
        new RegExp(`adjoint_cache_lookups_total\\{cache="source",result="${result}"\\} (\\d+)`).exec((await s.get("/metrics")).text)?.[1] ??
          0,
      );
    const [misses, hits] = [await lookups("miss"), await lookups("hit")];
    const [a, b] = await Promise.all([s.post("/v1/differentiate", input), s.post("/v1/differentiate", input)]);
    expect(a.body).toEqual(b.body);
    expect(a.body.value).toBe(
      new CompiledFunction(parseExpressions({ outputs: [{ name: "f", text: input.function.expression }] })).evaluate(input.point, {
        mode: "value",
      }).outputs.f,
    );
    expect(await lookups("miss")).toBe(misses + 1);
    expect(await lookups("hit")).toBe(hits + 1);

    const other = { function: { expression: terms(1100, 8) }, point: { x: 0.5, y: 2 } };
    const leaving = new AbortController();
    const first = Promise.resolve(s.app.service.resolveFunction(other, { signal: leaving.signal }));
    const second = Promise.resolve(s.app.service.resolveFunction(other, {}));
    leaving.abort();
    await expect(first).rejects.toMatchObject({ kind: "cancelled" });
    expect((await second).hash).toBe(
      new CompiledFunction(parseExpressions({ outputs: [{ name: "f", text: other.function.expression }] })).hash,
    );
  });
});
