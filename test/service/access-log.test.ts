import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccessSampler } from "../../src/service/access-log.js";
import { startTestServer, type TestServer, WORKED, WORKED_VALUES } from "./helpers.js";

describe("AccessSampler", () => {
  it("logs every request by default", () => {
    const s = new AccessSampler(1);
    expect(Array.from({ length: 5 }, () => s.wants(false))).toEqual([true, true, true, true, true]);
  });

  it("logs one success in N, counted, and every failure", () => {
    const s = new AccessSampler(3);
    const picks = Array.from({ length: 9 }, () => s.wants(false));
    expect(picks).toEqual([false, false, true, false, false, true, false, false, true]);
    expect(s.wants(true)).toBe(true);
    // A failure does not move the count of successes.
    expect([s.wants(false), s.wants(false), s.wants(false)]).toEqual([false, false, true]);
  });
});

describe("ADJOINT_ACCESS_LOG_EVERY through the real server", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ accessLogEvery: 3 });
  });
  afterAll(() => s.close());

  it("writes one line per 3 answered HTTP requests, marked with every, and one per refusal", async () => {
    for (let i = 0; i < 6; i++) {
      const r = await s.post("/v1/differentiate", WORKED, { "x-request-id": `sampled-${i}` });
      expect(r.body.value).toBe(WORKED_VALUES.f);
    }
    const bad = await s.post("/v1/differentiate", { function: { expression: "x+" }, point: { x: 1 } }, { "x-request-id": "sampled-bad" });
    expect(bad.status).toBe(400);
    const completed = s.logs.lines.filter((l) => l.msg === "request completed" && String(l.reqId).startsWith("sampled-"));
    expect(completed.map((l) => [l.reqId, l.status, l.every])).toEqual([
      ["sampled-2", 200, 3],
      ["sampled-5", 200, 3],
      ["sampled-bad", 400, 3],
    ]);
  });
});
