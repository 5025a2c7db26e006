import { getEventListeners } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { stopSignal } from "../../src/runtime/stop-signal.js";

describe("stopSignal: one signal for pool work, taken apart once the work settles", () => {
  it("fires when the time limit passes, and says it was the time limit", async () => {
    const client = new AbortController();
    const stop = stopSignal(20, client.signal);
    expect(stop.signal.aborted).toBe(false);
    await sleep(60);
    expect(stop.signal.aborted).toBe(true);
    expect(stop.timedOut()).toBe(true);
    expect((stop.signal.reason as DOMException).name).toBe("TimeoutError");
    // Fired, it stops listening to the client.
    expect(getEventListeners(client.signal, "abort")).toHaveLength(0);
  });

  it("fires with a source's reason when a source fires, and not as a time limit", () => {
    const client = new AbortController();
    const failed = new AbortController();
    const stop = stopSignal(60_000, failed.signal, client.signal);
    const reason = new Error("the client left");
    client.abort(reason);
    expect(stop.signal.aborted).toBe(true);
    expect(stop.signal.reason).toBe(reason);
    expect(stop.timedOut()).toBe(false);
    expect(getEventListeners(failed.signal, "abort")).toHaveLength(0);
  });

  it("is fired at once by a source already fired", () => {
    const gone = new AbortController();
    gone.abort(new Error("already gone"));
    const other = new AbortController();
    const stop = stopSignal(60_000, gone.signal, other.signal);
    expect(stop.signal.aborted).toBe(true);
    expect((stop.signal.reason as Error).message).toBe("already gone");
    expect(getEventListeners(other.signal, "abort")).toHaveLength(0);
  });

  it("once released, holds nothing: no listener on a source, and the timer never fires", async () => {
    const client = new AbortController();
    const failed = new AbortController();
    const stop = stopSignal(20, undefined, failed.signal, client.signal);
    expect(getEventListeners(client.signal, "abort")).toHaveLength(1);
    stop.release();
    expect(getEventListeners(client.signal, "abort")).toHaveLength(0);
    expect(getEventListeners(failed.signal, "abort")).toHaveLength(0);
    await sleep(60);
    client.abort();
    expect(stop.signal.aborted).toBe(false);
    expect(stop.timedOut()).toBe(false);
  });

  it("holds a limit longer than a timer can (2^31 ms and more) to the longest one, rather than firing at once", async () => {
    const stop = stopSignal(2 ** 32);
    await sleep(30);
    expect(stop.signal.aborted).toBe(false);
    stop.release();
  });
});
