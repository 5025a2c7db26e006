import { describe, expect, it } from "vitest";
import { Admission, Slots } from "../../src/service/admission.js";

describe("slots taken in turn", () => {
  it("grants free slots at once, hands a freed slot to the first waiter, and refuses past the waiting bound", async () => {
    const slots = new Slots(() => 1, 2);
    expect(slots.take(1000)).toBe(true);
    const order: string[] = [];
    const first = slots.take(1000) as Promise<boolean>;
    const second = slots.take(1000) as Promise<boolean>;
    first.then((g) => order.push(`first ${g}`));
    second.then((g) => order.push(`second ${g}`));
    // Two wait already: a third is refused at once.
    expect(slots.take(1000)).toBe(false);
    slots.give();
    expect(await first).toBe(true);
    expect(slots.used).toBe(1);
    slots.give();
    expect(await second).toBe(true);
    expect(order).toEqual(["first true", "second true"]);
    slots.give();
    expect(slots.used).toBe(0);
  });

  it("gives up on a waiter whose time runs out, and the slot stays with whoever holds it", async () => {
    const slots = new Slots(() => 1);
    expect(slots.tryTake()).toBe(true);
    expect(await slots.take(30)).toBe(false);
    slots.give();
    expect(slots.used).toBe(0);
    expect(slots.tryTake()).toBe(true);
  });
});

describe("admission of large requests", () => {
  const limits = { maxInflight: 4, maxInflightBytes: 300_000, maxInflightLarge: 1 };

  it("makes a large request wait for the large slot, then admits it with its bytes", async () => {
    const a = new Admission("http", limits);
    expect(a.admitOrWait(200_000, 1000)).toBeUndefined();
    const waiting = a.admitOrWait(200_000, 1000);
    expect(waiting).toBeInstanceOf(Promise);
    // Small requests pass by while it waits.
    expect(a.tryAdmit(100)).toBeUndefined();
    a.release(200_000);
    expect(await waiting).toBeUndefined();
    expect(a.bytes).toBe(200_100);
    expect(a.requests).toBe(2);
  });

  it("refuses at once what no turn would fix: the request count, or held bytes over the budget", () => {
    const shed: string[] = [];
    const a = new Admission("grpc", limits, (reason) => shed.push(reason));
    expect(a.admitOrWait(200_000, 1000, true)).toBeUndefined();
    expect(a.admitOrWait(200_000, 1000, true)).toBe("bytes");
    for (let i = 0; i < 3; i++) expect(a.tryAdmit(10)).toBeUndefined();
    expect(a.admitOrWait(70_000, 1000)).toBe("requests");
    expect(shed).toEqual(["bytes", "requests"]);
  });
});
