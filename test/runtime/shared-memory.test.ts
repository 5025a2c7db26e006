import { describe, expect, it } from "vitest";
import { copyBytes, releaseShared, sharedFloat64 } from "../../src/runtime/shared-memory.js";

/** Memory of `bytes` bytes, shared or ordinary. */
const memory = (shared: boolean, bytes: number) =>
  shared ? new Uint8Array(sharedFloat64(Math.ceil(bytes / 8)).buffer, 0, bytes) : new Uint8Array(bytes);

describe("copyBytes", () => {
  it("copies every byte exactly between shared and ordinary memory at every pair of alignments", () => {
    const length = 150_001;
    const pattern = Uint8Array.from({ length: length + 16 }, (_, i) => (i * 131 + 7) & 255);
    for (const fromShared of [false, true]) {
      for (const toShared of [false, true]) {
        for (let sourceOffset = 0; sourceOffset < 8; sourceOffset += 3) {
          for (let at = 0; at < 8; at++) {
            const source = memory(fromShared, length + 16);
            source.set(pattern);
            const destination = memory(toShared, length + 16);
            copyBytes(destination, source.subarray(sourceOffset, sourceOffset + length), at);
            const copied = destination.subarray(at, at + length);
            expect(Buffer.from(copied).equals(Buffer.from(pattern.subarray(sourceOffset, sourceOffset + length)))).toBe(true);
            expect(destination.subarray(0, at).every((b) => b === 0)).toBe(true);
            expect(destination.subarray(at + length).every((b) => b === 0)).toBe(true);
          }
        }
      }
    }
  });
});

describe("copyBytes at the edges", () => {
  it("copies nothing from an empty source and refuses a source that does not fit", () => {
    const destination = memory(true, 16);
    copyBytes(destination, new Uint8Array(0), 16);
    expect(destination.every((b) => b === 0)).toBe(true);
    expect(() => copyBytes(destination, Uint8Array.of(1, 2), 15)).toThrow(RangeError);
    expect(() => copyBytes(destination.subarray(0, 8), new Uint8Array(9))).toThrow(RangeError);
    expect(destination.every((b) => b === 0)).toBe(true);
  });

  it("writes only within a destination that is a view into a larger buffer", () => {
    const whole = memory(true, 64);
    copyBytes(whole.subarray(8, 24), Uint8Array.of(9, 8, 7), 13);
    expect([...whole.subarray(20, 25)]).toEqual([0, 9, 8, 7, 0]);
    expect(whole.reduce((a, b) => a + b, 0)).toBe(24);
  });
});

describe("sharedFloat64", () => {
  it("gives back pooled memory zeroed unless asked not to", () => {
    const first = sharedFloat64(300_000);
    first.fill(2.5);
    releaseShared(first);
    const again = sharedFloat64(300_000);
    expect(again.buffer).toBe(first.buffer);
    expect(again.every((x) => x === 0)).toBe(true);
    again.fill(-1);
    releaseShared(again);
    const unzeroed = sharedFloat64(300_000, false);
    expect(unzeroed.buffer).toBe(first.buffer);
    expect(unzeroed[299_999]).toBe(-1);
  });
});
