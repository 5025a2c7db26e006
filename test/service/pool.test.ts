import { getEventListeners } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AdjointError } from "../../src/errors.js";
import { Mode } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import type { DifferentiateInput } from "../../src/service/types.js";
import { heavyExpression, num, startTestServer, type TestServer, WORKED } from "./helpers.js";

/**
 * Work that keeps a worker busy for far longer than any test waits: a function of ~9,000 ops at 100,000
 * points, in forward mode without a tangent (point by point, two sweeps each: tens of seconds at the
 * least). Every test here stops it long before it could finish (a time limit, a client deadline, a
 * disconnect), so no assertion depends on how fast the machine is.
 */
const HEAVY = { function: { expression: heavyExpression(3000) }, mode: "forward", columns: { x: new Array(100_000).fill(0.5) } };
/** Forward mode without a tangent goes point by point: 4,000 points are enough work for the pool. */
const MODERATE = {
  function: WORKED.function,
  mode: "forward",
  points: Array.from({ length: 4000 }, (_, i) => ({ x1: i / 4000, x2: 0.5 })),
};

async function metric(s: TestServer, pattern: RegExp): Promise<number> {
  const m = pattern.exec((await s.get("/metrics")).text);
  return m ? Number(m[1]) : 0;
}

/** Pool jobs cancelled so far, for any reason. */
async function cancelledTotal(s: TestServer): Promise<number> {
  const text = (await s.get("/metrics")).text;
  return [...text.matchAll(/adjoint_jobs_cancelled_total\{reason="\w+"\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
}

/** Polls until a condition holds (the test's own timeout bounds it). */
async function until(check: () => Promise<boolean>): Promise<void> {
  while (!(await check())) await new Promise((r) => setTimeout(r, 20));
}

/**
 * The pool still answers: a batch big enough to go to a worker. A terminated worker is replaced, and
 * until the new one has loaded, a request with a short time limit may still time out: so retry.
 */
async function poolWorks(s: TestServer): Promise<void> {
  let r = await s.post("/v1/differentiate", MODERATE);
  while (r.status === 504) r = await s.post("/v1/differentiate", MODERATE);
  expect(r.status).toBe(200);
  const results = r.body.results as { value: number }[];
  const x1 = 1234 / 4000;
  expect(results[1234].value).toBeCloseTo(x1 * Math.exp(-0.5 * (x1 * x1 + 0.25)), 14);
}

describe("time limits and deadlines", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ workers: 1, timeLimitMs: 400 });
  });
  afterAll(async () => {
    await s?.close();
  });

  it("stops work past the time limit (HTTP 504), terminating the runaway worker, and stays up", async () => {
    const r = await s.post("/v1/differentiate", HEAVY);
    expect(r.status).toBe(504);
    expect(r.body).toMatchObject({ kind: "deadline_exceeded" });
    expect(r.body.detail).toMatch(/longer than the time limit of 400 ms \(ADJOINT_TIME_LIMIT_MS\); it was cancelled/);
    expect(await metric(s, /adjoint_jobs_cancelled_total\{reason="deadline"\} (\d+)/)).toBe(1);
    expect((await s.post("/v1/differentiate", WORKED)).status).toBe(200);
    await poolWorks(s);
  });
});

describe("client deadlines, a full queue and client disconnects", () => {
  let s: TestServer;
  beforeAll(async () => {
    // Enough large-body slots (HEAVY is one) for the pool's own bound to be what refuses.
    s = await startTestServer({ workers: 1, queueSize: 1, timeLimitMs: 120_000, maxInflightLarge: 4 });
  });
  afterAll(async () => {
    await s?.close();
  });

  it("answers DEADLINE_EXCEEDED when the client's deadline passes, and cancels the work", async () => {
    const before = await cancelledTotal(s);
    const err = await s
      .differentiate(
        {
          function: { source: { case: "expression", value: HEAVY.function.expression } },
          mode: Mode.FORWARD,
          columns: { x: { shape: [100_000], values: HEAVY.columns.x } },
        },
        { deadline: Date.now() + 1500 },
      )
      .catch((e: grpc.ServiceError) => e);
    expect((err as grpc.ServiceError).code).toBe(grpc.status.DEADLINE_EXCEEDED);
    await until(async () => (await cancelledTotal(s)) > before);
    const ok = await s.differentiate({
      function: { source: { case: "expression", value: WORKED.function.expression } },
      point: { values: WORKED.point },
    });
    expect(num(ok.result?.outputs.f)).toBeCloseTo(0.23886593653343924, 15);
    await poolWorks(s);
  });

  it("refuses work beyond the queue (503 with Retry-After, RESOURCE_EXHAUSTED), and a disconnect cancels the work", async () => {
    const jobs = () => metric(s, /adjoint_jobs_total\{where="pool"\} (\d+)/);
    const send = (signal: AbortSignal) =>
      fetch(`${s.base}/v1/differentiate`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(HEAVY),
        signal,
      }).catch((e: Error) => e);
    const cancelledBefore = await cancelledTotal(s);
    const running = new AbortController();
    const queued = new AbortController();
    const a = send(running.signal);
    await until(async () => (await jobs()) >= 1); // A runs on the only worker
    const b = send(queued.signal);
    await until(async () => (await jobs()) >= 2); // B waits in the queue, which is now full

    const c = await s.post("/v1/differentiate", HEAVY);
    expect(c.status).toBe(503);
    expect(c.headers.get("retry-after")).toBe("1");
    expect(c.body).toMatchObject({ kind: "resource_exhausted" });
    expect(c.body.detail).toMatch(/queue is full \(ADJOINT_QUEUE_SIZE\)/);
    const d = await s
      .differentiate({
        function: { source: { case: "expression", value: HEAVY.function.expression } },
        mode: Mode.FORWARD,
        columns: { x: { shape: [100_000], values: HEAVY.columns.x } },
      })
      .catch((e: grpc.ServiceError) => e);
    expect((d as grpc.ServiceError).code).toBe(grpc.status.RESOURCE_EXHAUSTED);

    // The clients of A and B go away: both jobs are cancelled and the worker is freed.
    running.abort();
    queued.abort();
    await Promise.all([a, b]);
    await until(async () => (await cancelledTotal(s)) >= cancelledBefore + 2);
    await poolWorks(s);
    expect((await s.get("/readyz")).status).toBe(200);
  });
});

describe("what pool work holds once it settles", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ workers: 1, timeLimitMs: 120_000 });
  });
  afterAll(async () => {
    await s?.close();
  });

  it("lets go of the client's signal, answered or stopped at the client's deadline", async () => {
    const client = new AbortController();
    let added = 0;
    const add = client.signal.addEventListener.bind(client.signal);
    client.signal.addEventListener = (...args: Parameters<AbortSignal["addEventListener"]>) => {
      added++;
      add(...args);
    };
    const listening = () => getEventListeners(client.signal, "abort").length;
    const out = await s.app.service.differentiate(MODERATE as DifferentiateInput, { signal: client.signal });
    const x1 = 1234 / 4000;
    expect(out.results?.[1234].outputs.f).toBeCloseTo(x1 * Math.exp(-0.5 * (x1 * x1 + 0.25)), 14);
    expect(added).toBeGreaterThan(0);
    expect(listening()).toBe(0);
    const addedBefore = added;
    const stopped = await s.app.service
      .differentiate(HEAVY as DifferentiateInput, { signal: client.signal, deadline: Date.now() + 1500 })
      .catch((e: AdjointError) => e);
    expect(stopped).toMatchObject({ kind: "deadline_exceeded" });
    expect(added).toBeGreaterThan(addedBefore);
    expect(listening()).toBe(0);
    await poolWorks(s);
  });
});
