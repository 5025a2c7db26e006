import { describe, expect, it, vi } from "vitest";
import { requestId } from "../../src/service/request-id.js";

describe("request ids", () => {
  it("keeps a client's sensible x-request-id, names and all", () => {
    for (const given of ["abc-123", "req.7:b", "__proto__", "x".repeat(128)]) expect(requestId(given)).toBe(given);
  });

  it("makes a fresh id for a missing or unusable one, never the same twice", () => {
    const fresh = [undefined, "", "has space", "x".repeat(129), "ünïcode", ["a"], 42].map(requestId);
    for (let i = 0; i < 10_000; i++) fresh.push(requestId(undefined));
    for (const id of fresh) expect(id).toMatch(/^[0-9a-f]{16}-[0-9a-z]+$/);
    expect(new Set(fresh).size).toBe(fresh.length);
  });

  it("starts each process's ids with its own random prefix", async () => {
    const prefix = (id: string) => id.split("-")[0];
    const first = prefix(requestId(undefined));
    vi.resetModules();
    const again = await import("../../src/service/request-id.js");
    expect(prefix(again.requestId(undefined))).not.toBe(first);
  });
});
