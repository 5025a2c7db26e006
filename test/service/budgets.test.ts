import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Mode } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { num, startTestServer, type TestServer, WORKED, WORKED_VALUES } from "./helpers.js";

/**
 * Every unit of work has a budget (issue 9, families 2 and 3): each hostile request below, once
 * measured at seconds to minutes of a frozen event loop, is refused quickly or bounded on the pool,
 * while a cheap request sent during it is answered within a second with exact values.
 */
let s: TestServer;
beforeAll(async () => {
  s = await startTestServer({ workers: 1 });
});
afterAll(async () => {
  await s?.close();
});

type Problem = { status: number; kind: string; detail: string; field?: string; node?: string };

async function rest(body: unknown): Promise<Problem & Record<string, unknown>> {
  const res = await s.post("/v1/differentiate", body);
  return { ...res.body, status: res.status } as Problem & Record<string, unknown>;
}

async function grpcError(req: Parameters<TestServer["differentiate"]>[0]): Promise<grpc.ServiceError> {
  try {
    await s.differentiate(req);
  } catch (e) {
    return e as grpc.ServiceError;
  }
  throw new Error("expected an error");
}

/** A problem that names a limit and carries no stack trace or path. */
function expectLimit(p: Problem, pattern: RegExp): void {
  expect(p.status, p.detail).toBe(413);
  expect(p.kind).toBe("resource_exhausted");
  expect(p.detail).toMatch(pattern);
  expect(p.detail).not.toMatch(/\n\s+at |\.ts:\d|\.js:\d|node_modules/);
}

/**
 * Runs an attack and, while it runs, the worked example over REST: the cheap request must be
 * answered within a second, exactly. Returns the attack's outcome and how long it took.
 */
async function during<T>(attack: () => Promise<T>): Promise<{ outcome: T; attackMs: number; cheapMs: number }> {
  const started = performance.now();
  const running = attack().then((outcome) => ({ outcome, ms: performance.now() - started }));
  await new Promise((r) => setTimeout(r, 20));
  const t = performance.now();
  const cheap = await s.post("/v1/differentiate", WORKED);
  const cheapMs = performance.now() - t;
  expect(cheap.status).toBe(200);
  const gradient = cheap.body.gradient as { x1: number; x2: number };
  expect(cheap.body.value).toBeCloseTo(WORKED_VALUES.f, 15);
  expect(gradient.x1).toBeCloseTo(WORKED_VALUES.x1, 15);
  expect(gradient.x2).toBeCloseTo(WORKED_VALUES.x2, 15);
  expect(cheapMs).toBeLessThan(1000);
  const { outcome, ms } = await running;
  return { outcome, attackMs: ms, cheapMs };
}

/** 12 ops whose derivatives grow about four-fold per order. */
const GROWING = "exp(sin(x)*cos(x))/(1+x^2)*tanh(x)*log(2+x)";

describe("derived work is bounded on the derived graphs, not the function's size", () => {
  it("a) derivative of order 16 of a 12-op expression is refused from its growth, quickly, over both transports", async () => {
    const { outcome, attackMs } = await during(() =>
      rest({ function: { expression: GROWING }, mode: "derivative", order: 16, point: { x: 0.3 } }),
    );
    expectLimit(outcome, /nodes.*ADJOINT_MAX_NODES/);
    expect(attackMs).toBeLessThan(5000);
    const e = await grpcError({
      function: { source: { case: "expression", value: GROWING } },
      mode: Mode.DERIVATIVE,
      order: 16,
      point: { values: { x: 0.3 } },
    });
    expect(e.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(e.details).toMatch(/ADJOINT_MAX_NODES/);
  });

  it("a) a lower order of the same expression is still answered, off the event loop", async () => {
    const res = await s.post("/v1/differentiate", { function: { expression: GROWING }, mode: "derivative", order: 6, point: { x: 0.3 } });
    expect(res.status).toBe(200);
    expect(Number.isFinite(res.body.derivative)).toBe(true);
  });

  it("b) wrt naming x 20 times is held to the same order limit as order", async () => {
    const { outcome, attackMs } = await during(() =>
      rest({ function: { expression: GROWING }, mode: "derivative", wrt: new Array(20).fill("x"), point: { x: 0.3 } }),
    );
    expect(outcome.status).toBe(400);
    expect(outcome.detail).toMatch(/order 20 .*highest order is 16/);
    expect(attackMs).toBeLessThan(1000);
  });

  it("c) an axis of 5e10 beside an empty one is refused where the shape is read, naming the input", async () => {
    const graph = { inputs: [{ name: "x", shape: [0, 5e10] }], nodes: [{ id: "s", op: "sum", args: ["x"] }], outputs: ["s"] };
    const { outcome, attackMs } = await during(() =>
      rest({ function: { graph }, mode: "value", point: { x: { shape: [0, 5e10], data: [] } } }),
    );
    expectLimit(outcome, /input x: shape \[0, 50000000000\].*2147483647/);
    expect(attackMs).toBeLessThan(1000);
  });

  it("c) an empty tensor whose other axis is 1e9 is refused at compile time: loops count every axis as at least 1", async () => {
    const graph = {
      inputs: [{ name: "x", shape: [0, 1e9] }],
      nodes: [
        { id: "e", op: "exp", args: ["x"] },
        { id: "s", op: "sum", args: ["e"] },
      ],
      outputs: ["s"],
    };
    const { outcome, attackMs } = await during(() =>
      rest({ function: { graph }, mode: "value", point: { x: { shape: [0, 1e9], data: [] } } }),
    );
    expectLimit(outcome, /\[0, 1000000000\] iterates 1000000000 elements.*ADJOINT_MAX_TENSOR_ELEMENTS/);
    expect(attackMs).toBeLessThan(2000);
  });

  it("d) a Hessian of 2,000 named inputs is refused by its field count before any field is made", async () => {
    const names = Array.from({ length: 2000 }, (_, i) => `x${i}`);
    const point = Object.fromEntries(names.map((n) => [n, 1]));
    const { outcome, attackMs } = await during(() =>
      rest({ function: { expression: names.join("+"), inputs: names }, mode: "hessian", point }),
    );
    expectLimit(outcome, /4000000 result fields per point; the limit is 100000/);
    expect(attackMs).toBeLessThan(1000);
  });

  it("e) a trace of a 10,000-node function at 100 points is refused by its row count", async () => {
    const terms = Array.from({ length: 2500 }, (_, i) => `sin(x*${(1 + i / 1000).toFixed(4)})`).join("+");
    const points = Array.from({ length: 100 }, (_, i) => ({ x: i / 100 }));
    const { outcome, attackMs } = await during(() => rest({ function: { expression: terms }, mode: "value", trace: true, points }));
    expectLimit(outcome, /trace rows; the limit is 200000/);
    expect(attackMs).toBeLessThan(2000);
  });

  it("f) a 1-million-term expression is refused while it is parsed", async () => {
    const huge = new Array(1_000_000).fill("x").join("+");
    const { outcome, attackMs } = await during(() => rest({ function: { expression: huge }, point: { x: 1 } }));
    expectLimit(outcome, /tokens.*the limit is 100000 nodes \(ADJOINT_MAX_NODES\)/);
    expect(attackMs).toBeLessThan(1500);
  });

  it("f) nodes are counted as the parser builds them: 150,000 terms stop at the 100,000th node", async () => {
    const long = new Array(150_000).fill("x").join("+");
    const outcome = await rest({ function: { expression: long }, point: { x: 1 } });
    expectLimit(outcome, /the function has 100001 nodes; the limit is 100000 \(ADJOINT_MAX_NODES\)/);
  });

  it("f) so is a huge text that folds to a handful of nodes (0+0+…)", async () => {
    const folded = new Array(1_000_000).fill("0").join("+");
    const outcome = await rest({ function: { expression: `x+${folded}` }, point: { x: 1 } });
    expectLimit(outcome, /tokens.*ADJOINT_MAX_NODES/);
  });
});

describe("memory: intermediate tensors and drawn parameters are counted before they are allocated", () => {
  it("g) broadcast_to(x, [8000, 8000]) is refused at compile time, in the worker, before its arena exists", async () => {
    const { outcome } = await during(() =>
      rest({ function: { expression: "sum(broadcast_to(x, shape=[8000, 8000]))" }, mode: "reverse", point: { x: 2 } }),
    );
    expectLimit(outcome, /64000000 elements.*limit is 20000000 \(2 × ADJOINT_MAX_TENSOR_ELEMENTS\)/);
  });

  it("g) [100000, 100000] is a 413 too, never a 500 with a stack trace", async () => {
    const { outcome } = await during(() =>
      rest({ function: { expression: "sum(broadcast_to(x, shape=[100000, 100000]))" }, mode: "value", point: { x: 2 } }),
    );
    expectLimit(outcome, /10000000000 elements.*ADJOINT_MAX_TENSOR_ELEMENTS/);
  });

  it("g) a small broadcast is still computed exactly", async () => {
    const res = await s.post("/v1/differentiate", { function: { expression: "sum(broadcast_to(x, shape=[30, 40]))" }, point: { x: 2 } });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ value: 2400, gradient: { x: 1200 } });
  });

  it("h) initialize refuses a 12,000 × 12,000 layer before drawing it, and 100,000 × 100,000 is no 500", async () => {
    for (const width of [12_000, 100_000]) {
      const model = { input: [width], layers: [{ type: "dense", units: width }], loss: "mse" };
      const zeros = { shape: [1, width], data: new Array(width).fill(0) };
      const { outcome, attackMs } = await during(() =>
        rest({ function: { model }, initialize: { seed: 1 }, mode: "value", point: { x: zeros, y: zeros } }),
      );
      // The drawn parameters travel back in the answer: they are counted against its budget first.
      const numbers = width * width + width + 1;
      expectLimit(outcome, new RegExp(`the answer would have ${numbers} numbers; the limit is 2000000 \\(ADJOINT_MAX_ANSWER_ELEMENTS\\)`));
      expect(attackMs).toBeLessThan(2000);
    }
  });

  it("the worked example is still exact over gRPC afterwards", async () => {
    const r = await s.differentiate({
      function: { source: { case: "expression", value: WORKED.function.expression } },
      point: { values: WORKED.point },
    });
    expect(num(r.result?.outputs.f)).toBeCloseTo(WORKED_VALUES.f, 15);
    expect(num(r.result?.gradient.x1)).toBeCloseTo(WORKED_VALUES.x1, 15);
    expect(num(r.result?.gradient.x2)).toBeCloseTo(WORKED_VALUES.x2, 15);
  });
});

describe("answers are a budget: counted from the plan before anything runs", () => {
  let big: TestServer;
  beforeAll(async () => {
    // A raised answer budget, so that the parameter count of initialize is what refuses.
    big = await startTestServer({ workers: 1, maxAnswerElements: 1e12, maxTensorElements: 1_000_000 });
  });
  afterAll(async () => {
    await big?.close();
  });

  it("refuses an answer of more numbers than ADJOINT_MAX_ANSWER_ELEMENTS, and answers one within it exactly", async () => {
    const ask = (rows: number) => ({
      function: { expression: `broadcast_to(x, shape=[${rows}, 1000])` },
      mode: "value",
      point: { x: 1.5 },
    });
    expectLimit(await rest(ask(2001)), /the answer would have 2001000 numbers; the limit is 2000000 \(ADJOINT_MAX_ANSWER_ELEMENTS\)/);
    const answer = await rest({ ...ask(100), encoding: "base64" });
    expect(answer.status).toBe(200);
    const value = answer.value as { shape: number[]; base64: string };
    expect(value.shape).toEqual([100, 1000]);
    const data = new Float64Array(Uint8Array.from(Buffer.from(value.base64, "base64")).buffer);
    expect(data.length).toBe(100_000);
    expect(data.every((v) => v === 1.5)).toBe(true);
  });

  it("counts initialize's parameters before drawing them", async () => {
    const width = 1000;
    const model = { input: [width], layers: [{ type: "dense", units: width }], loss: "mse" };
    const zeros = { shape: [1, width], data: new Array(width).fill(0) };
    const res = await big.post("/v1/differentiate", { function: { model }, initialize: { seed: 1 }, point: { x: zeros, y: zeros } });
    expect(res.status).toBe(413);
    expect(res.body.detail).toMatch(
      /initialize: the model has 1001000 parameter elements to draw; the limit is 1000000 \(ADJOINT_MAX_TENSOR_ELEMENTS\)/,
    );
  });
});
