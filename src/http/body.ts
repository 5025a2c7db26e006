import type { Readable } from "node:stream";
import { errorCodes, type FastifyRequest } from "fastify";
import { copyBytes, releaseShared, sharedBytes } from "../runtime/shared-memory.js";
import { LARGE_BODY } from "../service/admission.js";

/**
 * Request bodies read from the socket straight into their final memory. fastify's own reader keeps
 * the chunks and joins them with Buffer.concat: for a training step that is megabytes of fresh memory
 * and a copy of them in one go, on the event loop. Here a body of declared length is copied chunk by
 * chunk, as it arrives, into memory of that size; a large one into pooled shared memory (which a pool
 * worker can read in place, and which the next request reuses), held until the exchange is over.
 * The limits are fastify's: a declared length over bodyLimit is refused before anything is read, and so
 * is a body that grows past it or past its declared length.
 */

/** The body's memory, given back to the pool when the last of its holders lets go. */
export class BodyLease {
  private holders = 1;
  private readonly memory: Uint8Array[];

  constructor(memory: Uint8Array) {
    this.memory = [memory];
  }

  hold(): void {
    this.holders++;
  }

  /** More pooled memory read with the body (a large JSON body's tensors), given back with it. */
  adopt(memory: Uint8Array): void {
    this.memory.push(memory);
  }

  release(): void {
    if (--this.holders === 0) releaseShared(...this.memory);
  }
}

/** A lease on pooled memory, handed to `lease`; none for ordinary memory, which the collector frees. */
function leased(memory: Buffer, lease: (lease: BodyLease) => void): BodyLease | undefined {
  if (!(memory.buffer instanceof SharedArrayBuffer)) return undefined;
  const held = new BodyLease(memory);
  lease(held);
  return held;
}

/**
 * Bytes read between turns of the event loop. libuv reads a socket in a loop while data is waiting (up
 * to 32 chunks of 64 kB), each chunk through the HTTP parser and into memory here: a body that arrives
 * at once held the loop for milliseconds. Pausing the stream stops the socket's reads (Node stops them
 * once a paused request holds a chunk); it resumes on the next turn, after whatever else is waiting.
 */
const BYTES_PER_TURN = 256 * 1024;

/** Where a body of undeclared length (chunked) starts, then doubles. */
const FIRST_CAPACITY = 64 * 1024;

/**
 * Reads `payload` into memory, then calls `done`, with fastify's errors for a body refused (413 over
 * `limit`, 400 for one that is not its declared length). `lease` gets the memory's lease before the
 * body is complete, so that the memory is given back however the exchange ends. Callbacks, as fastify's
 * own reader: a promise would cost every small request ticks of its own. The body starts `shift` bytes
 * into its memory (under 8), so that a part of it at a known offset is 8-byte aligned: copies out of
 * shared memory are word-wise only between alike-aligned places, else byte by byte, several times slower.
 */
export function readBody(
  request: FastifyRequest,
  payload: Readable,
  limit: number,
  lease: (lease: BodyLease) => void,
  done: (error: Error | null, body?: Buffer) => void,
  shift = 0,
): void {
  const header = request.headers["content-length"];
  const declared = header === undefined ? undefined : Number(header);
  if (declared !== undefined && !(declared <= limit)) {
    done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
    return;
  }
  let memory: Buffer | undefined;
  let current: BodyLease | undefined;
  let received = 0;
  let start = 0;
  let turnEnds = BYTES_PER_TURN;
  let finished = false;
  const resume = () => finished || payload.resume();
  const finish = (error: Error | null) => {
    finished = true;
    payload.removeListener("data", onData);
    payload.removeListener("end", onEnd);
    payload.removeListener("error", onEnd);
    if (error !== null) done(error);
    else done(null, memory === undefined ? Buffer.alloc(0) : memory.subarray(start, start + received));
  };
  const onData = (chunk: Buffer | string) => {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    const length = received + bytes.byteLength;
    if (length > limit) return finish(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
    if (declared !== undefined && length > declared) return finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
    if (memory === undefined && length === declared && length <= LARGE_BODY) {
      // A small body in one chunk (nearly every request) is that chunk, as fastify would have it.
      memory = bytes;
      received = length;
      return;
    }
    if (memory === undefined || length > memory.byteLength) {
      // The first chunk, or a chunked body that has outgrown its memory (the admission stream has counted it already).
      const larger = sharedBytes(shift + (declared ?? Math.min(limit, Math.max(length, FIRST_CAPACITY, 2 * (memory?.byteLength ?? 0)))));
      if (memory !== undefined) copyBytes(larger, memory.subarray(start, start + received), shift);
      start = shift;
      const previous = current;
      memory = larger;
      current = leased(memory, lease);
      previous?.release();
    }
    copyBytes(memory, bytes, start + received);
    received = length;
    if (received >= turnEnds) {
      turnEnds = received + BYTES_PER_TURN;
      payload.pause();
      setImmediate(resume);
    }
  };
  const onEnd = (error?: Error & { statusCode?: number }) => {
    if (error != null) {
      if (!(typeof error.statusCode === "number" && error.statusCode >= 400)) error.statusCode = 400;
      return finish(error);
    }
    if (declared !== undefined && received !== declared) return finish(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
    finish(null);
  };
  payload.on("data", onData);
  payload.on("end", onEnd);
  payload.on("error", onEnd);
  payload.resume();
}
