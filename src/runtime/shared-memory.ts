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
/** Ordinary memory, for what only this thread reads: answers (fastify sends only such memory as bytes). */
const freePlain = new Map<number, ArrayBuffer[]>();
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
  if (zeroed) zero(array);
  return array;
}

/** A Buffer over the same memory as `bytes`, not a copy (Buffer.from(bytes) would copy). */
export function bufferView(bytes: ArrayBufferView): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Eight zero bytes: the value Buffer#fill repeats. */
const ZERO_WORD = Buffer.alloc(8);

/**
 * Zeroes memory, shared or not. V8 fills a SharedArrayBuffer element by element with atomic stores, and so
 * does Buffer#fill given the number 0; given bytes, Node repeats them with memcpy, whatever the memory
 * (a training step's 1.6 MB of gradients: 0.05 ms, against 0.12 copying zeros in with
 * TypedArray#set and 0.68 filling with 0).
 */
export function zero(array: Float64Array): void {
  if (array.length > 0) bufferView(array).fill(ZERO_WORD);
}

/**
 * `length` bytes, not zeroed, for memory the caller writes whole before anything reads it: a request
 * body read from its socket, an answer encoded into it. Large ones come from the pool (give them back
 * with releaseShared once nothing reads them): a few megabytes of fresh memory per request is what set
 * off a full collection on the event loop for nearly every training step.
 */
export function sharedBytes(length: number): Buffer {
  if (length < MIN_POOLED) return Buffer.allocUnsafe(length);
  const memory = sharedFloat64(Math.ceil(length / 8), false);
  return Buffer.from(memory.buffer, 0, length);
}

/** `length` bytes of ordinary memory, not zeroed; large ones pooled as sharedBytes's are (give them back with releaseShared). */
export function pooledBytes(length: number): Buffer {
  if (length < MIN_POOLED) return Buffer.allocUnsafe(length);
  const size = sizeClass(length);
  const reused = freePlain.get(size)?.pop();
  if (reused !== undefined) held -= size;
  return Buffer.from(reused ?? new ArrayBuffer(size), 0, length);
}

/**
 * Gives memory from sharedFloat64, sharedBytes or pooledBytes back once nothing will touch it again:
 * not after a pool task was aborted, whose worker may still be writing while it is stopped.
 */
export function releaseShared(...arrays: ArrayBufferView[]): void {
  for (const a of arrays) {
    const buffer = a.buffer;
    const size = buffer.byteLength;
    if (size < MIN_POOLED || size !== sizeClass(size) || held + size > MAX_HELD) continue;
    if (buffer instanceof SharedArrayBuffer) keep(free, buffer);
    else if (buffer instanceof ArrayBuffer) keep(freePlain, buffer);
  }
}

function keep<T extends ArrayBufferLike>(lists: Map<number, T[]>, buffer: T): void {
  let list = lists.get(buffer.byteLength);
  if (list === undefined) lists.set(buffer.byteLength, (list = []));
  list.push(buffer);
  held += buffer.byteLength;
}

/**
 * Copies `source` into `destination` at byte `at`, either of them in shared memory. V8 copies to or
 * from a SharedArrayBuffer with relaxed atomic accesses, a word at a time when both sides are aligned
 * alike but a byte at a time otherwise (a protobuf bytes field, a tensor after a JSON header, a socket's
 * chunk of a body lie at any offset); Buffer#copy does the same on Node 20. Buffer#fill given bytes
 * exactly as long as the range copies them with one memcpy, whatever the memory and the alignment:
 * a gRPC request's 2.4 MB of tensors into a batch in 0.23 ms, against 1.4 byte by byte and 0.32
 * through bounce buffers of ordinary memory.
 */
export function copyBytes(destination: Uint8Array, source: Uint8Array, at = 0): void {
  if (!(destination.buffer instanceof SharedArrayBuffer) && !(source.buffer instanceof SharedArrayBuffer)) {
    destination.set(source, at);
    return;
  }
  // fill() refuses an empty value; there is nothing to copy then. It checks the range before writing.
  if (source.byteLength === 0) return;
  bufferView(destination).fill(source, at, at + source.byteLength);
}
