import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import {
  allowFraming,
  installMessageMemory,
  noteLargestTensor,
  partedAnswers,
  SHARED_MESSAGE_BYTES,
  SharedMessageDecoder,
} from "../../src/grpc/message-memory.js";
import { rng } from "../support/numeric.js";

const grpcInternals = createRequire(import.meta.url);
/** grpc-js's own decoder, the reference for what a server call's decoder must give. */
const { StreamDecoder } = grpcInternals("@grpc/grpc-js/build/src/stream-decoder.js") as {
  StreamDecoder: new (max: number) => { write(data: Buffer): Buffer[] };
};
const { BaseServerInterceptingCall } = grpcInternals("@grpc/grpc-js/build/src/server-interceptors.js") as {
  BaseServerInterceptingCall: { prototype: { serializeMessage(this: unknown, value: unknown): Buffer } };
};

/** A length-prefixed gRPC message: flag, 4-byte big-endian length, body. */
function frame(body: Uint8Array, compressed = false): Buffer {
  const header = Buffer.alloc(5);
  header[0] = compressed ? 1 : 0;
  header.writeUInt32BE(body.byteLength, 1);
  return Buffer.concat([header, body]);
}

function bodyOf(size: number, seed: number): Buffer {
  const next = rng(seed);
  return Buffer.from(Uint8Array.from({ length: size }, () => Math.floor(next() * 256)));
}

/** `bytes` cut into chunks of the given lengths, cycling through them. */
function chunked(bytes: Buffer, lengths: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < bytes.length; i++) {
    const n = lengths[i % lengths.length];
    out.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

const isShared = (b: Uint8Array) => b.buffer instanceof SharedArrayBuffer;

describe("SharedMessageDecoder", () => {
  const bodies = [bodyOf(0, 1), bodyOf(3, 2), bodyOf(SHARED_MESSAGE_BYTES + 1001, 3), bodyOf(17, 4), bodyOf(SHARED_MESSAGE_BYTES, 5)];
  const stream = Buffer.concat(bodies.map((b) => frame(b)));

  for (const lengths of [[1], [2, 3, 5], [7, 16_384, 1], [65_536], [stream.length]]) {
    it(`gives grpc-js's messages, byte for byte, from chunks of ${lengths.join(", ")} bytes`, () => {
      const ours = new SharedMessageDecoder(-1, "/t/M");
      const theirs = new StreamDecoder(-1);
      const got: Buffer[] = [];
      const want: Buffer[] = [];
      for (const chunk of chunked(stream, lengths)) {
        got.push(...ours.write(chunk));
        want.push(...theirs.write(chunk));
      }
      expect(got.length).toBe(bodies.length);
      expect(got.map((b) => b.toString("hex"))).toEqual(want.map((b) => b.toString("hex")));
      // Large messages (frame included) in shared memory, the rest in ordinary memory.
      expect(got.map(isShared)).toEqual(bodies.map((b) => b.length + 5 >= SHARED_MESSAGE_BYTES));
    });
  }

  it("refuses a message over the limit in grpc-js's words, before it is read", () => {
    const big = frame(bodyOf(100, 6));
    expect(() => new SharedMessageDecoder(99, "/t/M").write(big.subarray(0, 5))).toThrow("Received message larger than max (100 vs 99)");
    expect(() => new StreamDecoder(99).write(big.subarray(0, 5))).toThrow("Received message larger than max (100 vs 99)");
  });

  it("leaves a compressed message, which grpc-js inflates, in ordinary memory", () => {
    const [message] = new SharedMessageDecoder(-1, "/t/M").write(frame(bodyOf(SHARED_MESSAGE_BYTES, 7), true));
    expect(isShared(message)).toBe(false);
    expect(message[0]).toBe(1);
  });

  it("places a method's next large message so that the tensor noted in the last one lies 8-byte aligned", () => {
    const body = bodyOf(SHARED_MESSAGE_BYTES + 64, 8);
    // A tensor at byte 11 of the body, 16 bytes from the frame's start: aligned only if the frame starts aligned.
    for (const at of [11, 12, 13, 14, 15, 16, 17, 18]) {
      const decoder = new SharedMessageDecoder(-1, `/t/Aligned${at}`);
      const first = decoder.write(frame(body))[0].subarray(5);
      noteLargestTensor(`/t/Aligned${at}`, first, first.subarray(at, at + 4096));
      const second = decoder.write(frame(body))[0].subarray(5);
      expect(second.equals(body)).toBe(true);
      expect((second.byteOffset + at) % 8).toBe(0);
      // Another method's messages are placed by their own last tensor, not by this one's.
      const other = new SharedMessageDecoder(-1, "/t/Other").write(frame(body))[0];
      expect(other.byteOffset).toBe(0);
    }
  });
});

describe("grpc-js's server calls", () => {
  it("take both patches in this version of grpc-js (an upgrade that moves them fails here)", () => {
    expect(installMessageMemory()).toEqual({ receive: true, send: true });
    expect(partedAnswers()).toBe(true);
  });

  it("frame an answer written with room in front where it lies, and copy any other as grpc-js does", () => {
    installMessageMemory();
    const call = { handler: { serialize: (b: Buffer) => b } };
    const room = Buffer.alloc(1000);
    const answer = room.subarray(40, 1000);
    answer.fill(7);
    allowFraming(answer);
    const framed = BaseServerInterceptingCall.prototype.serializeMessage.call(call, answer);
    expect(framed.buffer).toBe(room.buffer);
    expect(framed.byteOffset).toBe(35);
    expect(framed.equals(frame(Buffer.alloc(960, 7)))).toBe(true);
    // Marked once: framed again (a retry), it is copied, not written over again.
    const copied = BaseServerInterceptingCall.prototype.serializeMessage.call(call, answer);
    expect(copied.buffer).not.toBe(room.buffer);
    expect(copied.equals(frame(answer))).toBe(true);
    const plain = Buffer.from([1, 2, 3]);
    expect(BaseServerInterceptingCall.prototype.serializeMessage.call(call, plain).equals(frame(plain))).toBe(true);
  });
});
