import { describe, expect, it } from "vitest";
import { copyBytes, sharedFloat64 } from "../../src/runtime/shared-memory.js";

/** Memory of `bytes` bytes, shared or ordinary. */
const memory = (shared: boolean, bytes: number) =>
  shared ? new Uint8Array(sharedFloat64(Math.ceil(bytes / 8)).buffer, 0, bytes) : new Uint8Array(bytes);

describe("copyBytes", () => {
  it("copies every byte exactly between shared and ordinary memory at every pair of alignments, across steps", () => {
    // Over two steps of its bounce buffers (64 kB), so that later steps are checked to keep the first's alignment.
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
