import { readdirSync, readFileSync } from "node:fs";
import { getPriority } from "node:os";
import { describe, expect, it } from "vitest";
import { lowerThreadPriority } from "../../src/runtime/priority.js";
import { startTestServer } from "../service/helpers.js";

/** The nice value of each thread of this process (field 19 of /proc/self/task/<tid>/stat). */
function threadNices(): number[] {
  return readdirSync("/proc/self/task").map((tid) => {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
  });
}

describe.runIf(process.platform === "linux")("the pool's workers give way to the event loop", () => {
  it("run their threads the configured nice levels below the process, which keeps its own", async () => {
    const base = getPriority();
    const s = await startTestServer({ workers: 2, workerNice: 7, inlineBudgetUs: 0 });
    try {
      const nices = threadNices();
      expect(nices.filter((n) => n === Math.min(19, base + 7)).length).toBeGreaterThanOrEqual(2);
      expect(getPriority()).toBe(base);
      // And they still compute: a pool request is answered exactly.
      const r = await s.post("/v1/differentiate", { function: { expression: "x^2" }, points: [{ x: 3 }, { x: -0.5 }] });
      expect(r.body.results).toEqual([
        { value: 9, gradient: { x: 6 } },
        { value: 0.25, gradient: { x: -1 } },
      ]);
    } finally {
      await s.close();
    }
  });

  it("by default run each worker and its matmul helper 10 levels below the process", async () => {
    const base = getPriority();
    const before = threadNices().filter((n) => n === Math.min(19, base + 10)).length;
    const s = await startTestServer({ workers: 1, matmulHelpers: 1 });
    try {
      expect(s.app.config.workerNice).toBe(10);
      expect(threadNices().filter((n) => n === Math.min(19, base + 10)).length - before).toBe(2);
      expect(getPriority()).toBe(base);
    } finally {
      await s.close();
    }
  });

  it("with 0, leave every thread at the process's priority", async () => {
    const base = getPriority();
    const s = await startTestServer({ workers: 2, workerNice: 0 });
    try {
      expect(threadNices().every((n) => n === base)).toBe(true);
    } finally {
      await s.close();
    }
    expect(lowerThreadPriority(0)).toBeUndefined();
    expect(getPriority()).toBe(base);
  });
});
