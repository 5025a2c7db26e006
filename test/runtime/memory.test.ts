import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { EXTERNAL_MEMORY_IN_GLOBAL_LIMIT, MemorySteward, takesExternalMemoryInGlobalLimit } from "../../src/runtime/memory.js";

/**
 * The steward collects only in a quiet second, nothing in flight and at most a trickle begun since its
 * previous look: under steady load of short requests the in-flight count is often zero when its timer
 * fires, and a full collection then would stall the requests arriving.
 */
describe("MemorySteward", () => {
  /**
   * A steward with a 1 MiB slack, no minimum interval and a trickle of 5, reading what the thread holds
   * and the running activity count from the state the test moves (what V8 reports moves with other
   * tests' garbage, freed a tick after a collection).
   */
  function steward(idle: () => boolean) {
    const state = { activity: 0, held: 0 };
    const s = new MemorySteward(
      idle,
      () => state.activity,
      () => 0,
      { slackBytes: 1024 * 1024, minIntervalMs: 0, maxIntervalMs: 0, trickle: 5, held: () => state.held },
    );
    // Held above the steward's floor (its working size when it started).
    state.held = 16 * 1024 * 1024;
    return { s, state };
  }

  it("does not collect while more than a trickle of work keeps beginning, even when nothing is in flight at the look", () => {
    const { s, state } = steward(() => true);
    for (let look = 0; look < 5; look++) {
      state.activity += 6;
      expect(s.check(1000 * (look + 1))).toBe(false);
    }
  });

  it("collects under a trickle (a probe, a client polling), which would otherwise keep a burst's garbage for as long as it lasts", () => {
    const { s, state } = steward(() => true);
    state.activity += 50;
    expect(s.check(1000)).toBe(false);
    state.activity += 5;
    expect(s.check(2000)).toBe(true);
  });

  it("collects once a look finds nothing in flight and nothing begun since the previous look", () => {
    const { s, state } = steward(() => true);
    state.activity += 10;
    expect(s.check(1000)).toBe(false);
    expect(s.check(2000)).toBe(true);
  });

  it("does not collect while work is in flight, however long since any began", () => {
    const { s } = steward(() => false);
    expect(s.check(1000)).toBe(false);
    expect(s.check(2000)).toBe(false);
  });
});

describe("counting buffers in V8's heap limit", () => {
  it("is set exactly where this runtime's V8 knows the flag (Node 24 yes, Node 20 no), so no start prints an unknown flag", () => {
    const options = spawnSync(process.execPath, ["--v8-options"], { encoding: "utf8" }).stdout;
    expect(options.includes(EXTERNAL_MEMORY_IN_GLOBAL_LIMIT)).toBe(takesExternalMemoryInGlobalLimit());
    expect(takesExternalMemoryInGlobalLimit("11.3.244.8-node.38")).toBe(false);
    expect(takesExternalMemoryInGlobalLimit("13.6.233.17-node.44")).toBe(true);
  });
});
