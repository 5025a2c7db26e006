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

describe("AccessSampler's bound on success lines a second", () => {
  it("logs successes up to the bound in each second, then says in the next line how many it left out", () => {
    let now = 5_000.5;
    const s = new AccessSampler(1, 3, () => now);
    const picks = Array.from({ length: 5 }, () => s.wants(false));
    expect(picks).toEqual([true, true, true, false, false]);
    // A failure is always logged, and does not carry (or take) the count left out.
    expect(s.wants(true)).toBe(true);
    expect(s.unlogged).toBe(0);
    now = 5_999.9;
    expect(s.wants(false)).toBe(false);
    now = 6_000;
    expect(s.wants(false)).toBe(true);
    expect(s.unlogged).toBe(3);
    expect(s.wants(false)).toBe(true);
    expect(s.unlogged).toBe(0);
  });

  it("bounds only the successes `every` picks, and 0 means no bound", () => {
    const now = 0;
    const s = new AccessSampler(2, 1, () => now);
    expect(Array.from({ length: 6 }, () => s.wants(false))).toEqual([false, true, false, false, false, false]);
    const unbounded = new AccessSampler(1, 0, () => now);
    expect(Array.from({ length: 500 }, () => unbounded.wants(false)).every(Boolean)).toBe(true);
  });
});

describe("ADJOINT_ACCESS_LOG_MAX_PER_SECOND through the real server", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ accessLogMaxPerSecond: 2 });
  });
  afterAll(() => s.close());

  it("logs the first successes of a second, and the next line counts the ones left out", async () => {
    for (let i = 0; i < 5; i++) {
      const r = await s.post("/v1/differentiate", WORKED, { "x-request-id": `bounded-${i}` });
      expect(r.body.value).toBe(WORKED_VALUES.f);
    }
    await new Promise((r) => setTimeout(r, 1100));
    const later = await s.differentiate(
      { function: { source: { case: "expression", value: WORKED.function.expression } }, point: { values: WORKED.point } },
      {},
    );
    expect(later.result).toBeDefined();
    const completed = s.logs.lines.filter((l) => l.msg === "request completed");
    const first = completed.filter((l) => String(l.reqId).startsWith("bounded-"));
    // Two a second: the first two always; a third and fourth only if a second began among the five.
    expect(first.slice(0, 2).map((l) => l.reqId)).toEqual(["bounded-0", "bounded-1"]);
    expect(first.length).toBeLessThanOrEqual(4);
    expect(first.every((l) => l.unlogged === undefined || Number(l.unlogged) > 0)).toBe(true);
    const grpcLine = completed.find((l) => l.method === "Differentiate");
    expect(grpcLine?.status).toBe("OK");
    const leftOut = first.reduce((n, l) => n + Number(l.unlogged ?? 0), 0) + Number(grpcLine?.unlogged ?? 0);
    expect(first.length + leftOut).toBe(5);
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
