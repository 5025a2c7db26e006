import { describe, expect, it } from "vitest";
import { thenFinally } from "../../src/service/settle.js";

/** thenFinally: `next` on the result at once or later, and the cleanup exactly once on every path. */
describe("thenFinally", () => {
  const counted = () => {
    const c = { cleanups: 0, clean: () => void c.cleanups++ };
    return c;
  };

  it("applies next at once to a result made at once, without a promise, then cleans up", () => {
    const c = counted();
    const r = thenFinally(
      () => 20,
      (v) => v + 1,
      () => {
        expect(c.cleanups).toBe(0);
        c.clean();
      },
    );
    expect(r).toBe(21);
    expect(c.cleanups).toBe(1);
  });

  it("cleans up and throws when the work throws, without calling next", () => {
    const c = counted();
    let called = false;
    expect(() =>
      thenFinally(
        () => {
          throw new Error("refused");
        },
        () => {
          called = true;
        },
        c.clean,
      ),
    ).toThrow("refused");
    expect(called).toBe(false);
    expect(c.cleanups).toBe(1);
  });

  it("cleans up once when next throws", () => {
    const c = counted();
    expect(() =>
      thenFinally(
        () => 1,
        () => {
          throw new Error("encoder failed");
        },
        c.clean,
      ),
    ).toThrow("encoder failed");
    expect(c.cleanups).toBe(1);
  });

  it("waits for a promise: next on its value, the cleanup after it and not before", async () => {
    const c = counted();
    let resolve!: (v: number) => void;
    const r = thenFinally(
      () => new Promise<number>((res) => (resolve = res)),
      (v) => v * 2,
      c.clean,
    );
    expect(r).toBeInstanceOf(Promise);
    await Promise.resolve();
    expect(c.cleanups).toBe(0);
    resolve(4);
    expect(await r).toBe(8);
    expect(c.cleanups).toBe(1);
  });

  it("cleans up once on a rejection and on next throwing later, passing the error on", async () => {
    const c = counted();
    await expect(
      thenFinally(
        () => Promise.reject(new Error("pool full")),
        () => 0,
        c.clean,
      ),
    ).rejects.toThrow("pool full");
    expect(c.cleanups).toBe(1);
    await expect(
      thenFinally(
        () => Promise.resolve(1),
        () => {
          throw new Error("too large to encode");
        },
        c.clean,
      ),
    ).rejects.toThrow("too large to encode");
    expect(c.cleanups).toBe(2);
  });

  it("cleans up only once the promise next returns settles, at once or later, fulfilled or rejected", async () => {
    for (const later of [false, true]) {
      const c = counted();
      let finish!: (v: string) => void;
      const r = thenFinally(
        () => (later ? Promise.resolve(3) : 3),
        (v) => new Promise<string>((res) => (finish = (s) => res(`${s}${v}`))),
        c.clean,
      );
      expect(r).toBeInstanceOf(Promise);
      await new Promise((res) => setTimeout(res, 1));
      // The encoder on the pool still reads the memory the cleanup gives back.
      expect(c.cleanups).toBe(0);
      finish("text ");
      expect(await r).toBe("text 3");
      expect(c.cleanups).toBe(1);
      const failed = thenFinally(
        () => (later ? Promise.resolve(3) : 3),
        () => Promise.reject(new Error("worker failed")),
        c.clean,
      );
      await expect(failed).rejects.toThrow("worker failed");
      expect(c.cleanups).toBe(2);
    }
  });
});
