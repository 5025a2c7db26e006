/**
 * Shared memory for pool batches, reused from one request to the next. V8 counts every new
 * SharedArrayBuffer as external memory, and a few tens of MB of it since the last collection set off
 * a full one on the event loop: a training step's batch (3 MB in, 2 MB out) allocated per request
 * made the main thread spend more time collecting than serving. Buffers of at least MIN_POOLED bytes
 * are kept by size class (powers of two) up to MAX_HELD bytes in all; smaller ones are cheap to make.
 */
const MIN_POOLED = 256 * 1024;
const MAX_HELD = 64 * 1024 * 1024;

const free = new Map<number, SharedArrayBuffer[]>();
let held = 0;

function sizeClass(bytes: number): number {
  return 2 ** Math.ceil(Math.log2(bytes));
}

/**
 * `length` float64 elements of shared memory, zeroed unless `zeroed` is false: memory the caller
 * overwrites whole before anything reads it (a batch's inputs) may hold an earlier request's numbers.
 */
export function sharedFloat64(length: number, zeroed = true): Float64Array {
  const bytes = length * 8;
  if (bytes < MIN_POOLED) return new Float64Array(new SharedArrayBuffer(bytes));
  const size = sizeClass(bytes);
  const reused = free.get(size)?.pop();
  if (reused === undefined) return new Float64Array(new SharedArrayBuffer(size), 0, length);
  held -= size;
  const array = new Float64Array(reused, 0, length);
  if (zeroed) array.fill(0);
  return array;
}

/**
 * Gives memory from sharedFloat64 back once nothing will touch it again: not after a pool task
 * was aborted, whose worker may still be writing while it is stopped.
 */
export function releaseShared(...arrays: Float64Array[]): void {
  for (const a of arrays) {
    const buffer = a.buffer;
    if (!(buffer instanceof SharedArrayBuffer) || buffer.byteLength < MIN_POOLED || buffer.byteLength !== sizeClass(buffer.byteLength))
      continue;
    if (held + buffer.byteLength > MAX_HELD) continue;
    let list = free.get(buffer.byteLength);
    if (list === undefined) free.set(buffer.byteLength, (list = []));
    list.push(buffer);
    held += buffer.byteLength;
  }
}

/** Bounce buffer for copyBytes: ordinary memory, reused. */
const BOUNCE = new Uint8Array(64 * 1024);

/**
 * Copies `source` into `destination` at byte `at`, either of them in shared memory. V8 copies to or
 * from a SharedArrayBuffer with relaxed atomic accesses, a word at a time when both sides are aligned
 * alike but a byte at a time otherwise (a protobuf bytes field, a tensor after a JSON header, lie at
 * any offset): through a small buffer of ordinary memory each chunk is a plain memcpy and a word-wise
 * copy, about four times faster for megabytes.
 */
export function copyBytes(destination: Uint8Array, source: Uint8Array, at = 0): void {
  const shared = destination.buffer instanceof SharedArrayBuffer || source.buffer instanceof SharedArrayBuffer;
  if (!shared || (destination.byteOffset + at) % 8 === source.byteOffset % 8) {
    destination.set(source, at);
    return;
  }
  for (let from = 0; from < source.byteLength; from += BOUNCE.byteLength) {
    const end = Math.min(source.byteLength, from + BOUNCE.byteLength);
    const chunk = BOUNCE.subarray(0, end - from);
    chunk.set(source.subarray(from, end));
    destination.set(chunk, at + from);
  }
}
