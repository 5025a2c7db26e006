import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AdjointError, invalid } from "../../src/errors.js";
import { CallRecord, type ServerCall } from "../../src/grpc/call.js";
import { DifferentiateRequestSchema, type DifferentiateResponse } from "../../src/grpc/gen/adjoint/v1/adjoint_pb.js";
import { AccessSampler } from "../../src/service/access-log.js";
import { Metrics } from "../../src/service/metrics.js";
import { LogCapture, startTestServer, type TestServer, WORKED } from "../service/helpers.js";

/** A call carrying only what CallRecord reads. */
function fakeCall(requestId?: string): ServerCall {
  const metadata = new grpc.Metadata();
  if (requestId !== undefined) metadata.set("x-request-id", requestId);
  return { cancelled: false, metadata, getDeadline: () => Number.POSITIVE_INFINITY, once: () => undefined };
}

describe("the gRPC access log through the real server", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(() => s.close());

  const call = (expression: string, requestId: string) =>
    new Promise<{ err: grpc.ServiceError | null; value?: DifferentiateResponse; trailers?: grpc.Metadata }>((resolve) => {
      const metadata = new grpc.Metadata();
      metadata.set("x-request-id", requestId);
      const request = create(DifferentiateRequestSchema, {
        function: { source: { case: "expression", value: expression } },
        point: { values: WORKED.point },
      });
      s.client.differentiate(request, metadata, {}, (err, value) => resolve({ err, value, trailers: err?.metadata }));
    });

  it("writes one line per call with the client's request id, the method, the status and the time", async () => {
    const ok = await call(WORKED.function.expression, "grpc-line-ok");
    expect(ok.err).toBeNull();
    expect(ok.value?.result?.outputs.f.values).toEqual([0.23886593653343924]);
    expect(ok.value?.result?.gradient.x1.values).toEqual([-0.35829890480015886]);
    expect(ok.value?.result?.gradient.x2.values).toEqual([-0.11943296826671962]);
    const bad = await call("x1+", "grpc-line-bad");
    expect(bad.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.trailers?.get("x-request-id")).toEqual(["grpc-line-bad"]);

    const lines = (id: string) => s.logs.lines.filter((l) => l.reqId === id);
    expect(lines("grpc-line-ok")).toEqual([
      expect.objectContaining({ level: 30, reqId: "grpc-line-ok", method: "Differentiate", status: "OK", msg: "request completed" }),
    ]);
    const [okLine] = lines("grpc-line-ok");
    expect(typeof okLine.ms).toBe("number");
    expect(Object.keys(okLine)).not.toContain("every");
    expect(Object.keys(okLine)).not.toContain("detail");
    expect(lines("grpc-line-bad")).toEqual([
      expect.objectContaining({
        method: "Differentiate",
        status: "INVALID_ARGUMENT",
        detail: expect.any(String),
        msg: "request completed",
      }),
    ]);
  });
});

describe("CallRecord", () => {
  const reporting = (every?: number) => {
    const logs = new LogCapture();
    const metrics = new Metrics(() => undefined, false);
    return { logs, metrics, logger: pino({ level: "info" }, logs), ...(every ? { accessLog: new AccessSampler(every) } : {}) };
  };

  it("takes a sensible x-request-id as the call's id and makes a fresh one otherwise", () => {
    const r = reporting();
    expect(new CallRecord(fakeCall("abc-123"), r, "Differentiate").id).toBe("abc-123");
    const fresh = [undefined, "has space", "x".repeat(129), ""].map((given) => new CallRecord(fakeCall(given), r, "Differentiate").id);
    for (const id of fresh) expect(id).toMatch(/^[0-9a-f]{16}-[0-9a-z]+$/);
    expect(new Set(fresh).size).toBe(fresh.length);
  });

  it("logs one success in N with `every` when sampled, every failure, and counts every call in the metrics", async () => {
    const r = reporting(2);
    for (const id of ["s1", "s2", "s3"]) new CallRecord(fakeCall(id), r, "Differentiate").finish();
    new CallRecord(fakeCall("f1"), r, "Differentiate").finish(invalid("no such input: y"));
    await new Promise((done) => setImmediate(done));
    const completed = r.logs.lines.filter((l) => l.msg === "request completed");
    expect(completed.map((l) => [l.reqId, l.method, l.status, l.every, l.detail])).toEqual([
      ["s2", "Differentiate", "OK", 2, undefined],
      ["f1", "Differentiate", "INVALID_ARGUMENT", 2, "no such input: y"],
    ]);
    const text = await r.metrics.registry.metrics();
    expect(text).toMatch(/adjoint_requests_total\{transport="grpc",route="Differentiate",status="OK"\} 3/);
    expect(text).toMatch(/adjoint_requests_total\{transport="grpc",route="Differentiate",status="INVALID_ARGUMENT"\} 1/);
  });

  it("logs an internal error's cause under the call's id", async () => {
    const r = reporting();
    const cause = new Error("boom");
    new CallRecord(fakeCall("i1"), r, "GetFunction").finish(new AdjointError("internal", "internal error"), cause);
    await new Promise((done) => setImmediate(done));
    const [error, completed] = r.logs.lines.filter((l) => l.reqId === "i1");
    expect(error).toMatchObject({ level: 50, method: "GetFunction", msg: "internal error", err: { message: "boom" } });
    expect(completed).toMatchObject({ level: 30, method: "GetFunction", status: "INTERNAL", msg: "request completed" });
  });
});
