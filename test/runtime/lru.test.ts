import { describe, expect, it } from "vitest";
import { CompiledFunction } from "../../src/engine/compiled-function.js";
import { parseExpression } from "../../src/ir/expression.js";
import { LruMap } from "../../src/runtime/lru.js";
import { FunctionStore } from "../../src/service/functions.js";

/** A value whose weight can change after it is stored, like a compiled function gaining programs. */
interface Item {
  bytes: number;
}
const weigh = (v: Item) => v.bytes;

describe("LruMap with a byte budget", () => {
  it("evicts the least recently used entries to stay within the bytes, as well as the count", () => {
    const lru = new LruMap<string, Item>(10, { maxBytes: 100, weigh });
    lru.set("a", { bytes: 40 });
    lru.set("b", { bytes: 40 });
    lru.get("a");
    lru.set("c", { bytes: 40 });
    // b was not used since it was stored: it goes; a was, and stays.
    expect([...["a", "b", "c"].filter((k) => lru.has(k))]).toEqual(["a", "c"]);
    expect(lru.bytes).toBe(80);
    expect(lru.size).toBe(2);
  });

  it("keeps the count bound as before", () => {
    const lru = new LruMap<string, Item>(2, { maxBytes: 1000, weigh });
    lru.set("a", { bytes: 1 });
    lru.set("b", { bytes: 1 });
    lru.set("c", { bytes: 1 });
    expect(lru.size).toBe(2);
    expect(lru.has("a")).toBe(false);
    expect(lru.bytes).toBe(2);
  });

  it("does not keep an entry that alone is over the budget, and keeps the others", () => {
    const lru = new LruMap<string, Item>(10, { maxBytes: 100, weigh });
    lru.set("a", { bytes: 30 });
    lru.set("huge", { bytes: 101 });
    expect(lru.has("huge")).toBe(false);
    expect(lru.has("a")).toBe(true);
    expect(lru.bytes).toBe(30);
  });

  it("re-measures an entry that grew, evicting others (or the entry itself) to fit", () => {
    const lru = new LruMap<string, Item>(10, { maxBytes: 100, weigh });
    const a = { bytes: 10 };
    lru.set("a", a);
    lru.set("b", { bytes: 30 });
    lru.set("c", { bytes: 30 });
    a.bytes = 60;
    lru.reweigh("a");
    expect(lru.has("a")).toBe(true);
    expect(lru.has("b")).toBe(false);
    expect(lru.has("c")).toBe(true);
    expect(lru.bytes).toBe(90);
    a.bytes = 150;
    lru.reweigh("a");
    expect(lru.has("a")).toBe(false);
    expect(lru.bytes).toBe(30);
    // Reweighing what is not there, or what did not change, does nothing.
    lru.reweigh("a");
    lru.reweigh("c");
    expect(lru.bytes).toBe(30);
  });

  it("accounts for replaced and deleted entries", () => {
    const lru = new LruMap<string, Item>(10, { maxBytes: 100, weigh });
    lru.set("a", { bytes: 50 });
    lru.set("a", { bytes: 20 });
    expect(lru.bytes).toBe(20);
    expect(lru.delete("a")).toBe(true);
    expect(lru.bytes).toBe(0);
    expect(lru.size).toBe(0);
  });

  it("refuses a budget below one byte", () => {
    expect(() => new LruMap<string, Item>(10, { maxBytes: 0, weigh })).toThrow(RangeError);
  });
});

describe("compiled functions weighed for the caches", () => {
  it("grow in estimated bytes as programs are prepared, the tensor arena included", () => {
    const fn = new CompiledFunction(parseExpression("sum(x*x)", [{ name: "x", shape: [1000] }]));
    const bare = fn.estimatedBytes();
    expect(bare).toBeGreaterThan(0);
    fn.evaluate({ x: { shape: [1000], data: new Float64Array(1000).fill(1) } }, { mode: "value" });
    const valued = fn.estimatedBytes();
    // At least the arena's 1000 float64 elements of x*x.
    expect(valued).toBeGreaterThanOrEqual(bare + 8000);
    fn.evaluate({ x: { shape: [1000], data: new Float64Array(1000).fill(1) } }, { mode: "reverse" });
    expect(fn.estimatedBytes()).toBeGreaterThan(valued);
  });

  it("are evicted from the function store by bytes", () => {
    const events = { hit: () => {}, miss: () => {} };
    const store = new FunctionStore({ maxNodes: 1000, cacheSize: 100, registrySize: 100, cacheBytes: 40_000 }, events);
    const ids = Array.from(
      { length: 20 },
      (_, i) => store.resolve({ expression: `sum(x*${i + 2})`, inputs: [{ name: "x", shape: [500] }] }).hash,
    );
    // Each weighs a few kB (graph nodes); 20 of them do not fit in 40 kB: the first ones are gone.
    expect(() => store.byId(ids[19])).not.toThrow();
    expect(() => store.byId(ids[0])).toThrow(/no function has id/);
  });
});
