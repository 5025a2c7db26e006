import { createRequire } from "node:module";
import { copyBytes, releaseShared, sharedBytes } from "../runtime/shared-memory.js";

/**
 * Where a server call's large messages live: in the pool's shared memory on the way in, and behind a
 * frame header written in place on the way out.
 *
 * grpc-js assembles each received message with Buffer.concat into fresh memory, and the service then
 * copied its tensors once more, into a batch's shared memory, on the event loop; a training step's
 * 2.4 MB made both copies, a fresh allocation and, every dozen calls, the full collection that fresh
 * external memory sets off. Here a large message is assembled in pooled shared memory instead, where
 * the worker reads its float64 tensors in place (service/decode.ts, Batch.placed) when they lie 8-byte
 * aligned; which they do from a method's second call on, since each method remembers where its last
 * message put its largest tensor and offsets the next message to align it (clients send the same
 * layout call after call). On the way out, grpc-js copies every answer behind a 5-byte frame header
 * into fresh memory; an answer written with room in front (direct-response.ts) is framed where it lies.
 *
 * Both are grpc-js server internals (BaseServerInterceptingCall's decoder, handleDataFrame and
 * serializeMessage, present throughout grpc-js 1.x), patched once per process. installMessageMemory() says what
 * took, so that an upgrade that moves them shows as a warning and a failing test, not as a silent
 * return to the copies; the service works either way.
 */

/** Messages from this many bytes (frame included) are assembled in shared memory: the pool's smallest size. */
export const SHARED_MESSAGE_BYTES = 256 * 1024;

/** What a server call's decoder is, as grpc-js's StreamDecoder. */
interface MessageDecoder {
  write(data: Buffer): Buffer[];
}

interface ServerCallInternals {
  decoder: MessageDecoder & { maxReadMessageLength?: number };
  handler: { path: string };
  stream: { write: StreamWrite; cork(): void; uncork(): void };
  handleDataFrame(data: Buffer): void;
  serializeMessage(value: unknown): Buffer;
  sendMessage(message: unknown, callback: () => void): void;
}

type StreamWrite = (chunk: Buffer, callback?: (error?: Error | null) => void) => boolean;

/** Per method path: the offset (0–7) at which to start the next large message so that its largest tensor is aligned. */
const alignment = new Map<string, number>();

/** Answers written with five writable bytes in front of them (allowFraming). */
const framable = new WeakSet<Uint8Array>();

/**
 * The gRPC length-prefixed message framing (a flag byte, a 4-byte big-endian length), as grpc-js's
 * StreamDecoder reads it, with one difference: an uncompressed message of SHARED_MESSAGE_BYTES or more
 * is copied, once complete, into pooled shared memory at its method's alignment rather than into fresh
 * memory. Chunks are held until then, as grpc-js holds them, so that a client claiming a large message
 * makes the server hold no more than it has sent.
 */
export class SharedMessageDecoder implements MessageDecoder {
  private readonly header = Buffer.alloc(5);
  private headerRead = 0;
  /** Bytes of the message body still to come; −1 while reading a header. */
  private remaining = -1;
  private chunks: Buffer[] = [];

  constructor(
    private readonly maxLength: number,
    private readonly path: string,
  ) {}

  write(data: Buffer): Buffer[] {
    const messages: Buffer[] = [];
    let at = 0;
    while (at < data.length) {
      if (this.remaining < 0) {
        const n = Math.min(5 - this.headerRead, data.length - at);
        data.copy(this.header, this.headerRead, at, at + n);
        this.headerRead += n;
        at += n;
        if (this.headerRead < 5) break;
        this.headerRead = 0;
        const size = this.header.readUInt32BE(1);
        if (this.maxLength !== -1 && size > this.maxLength)
          throw new Error(`Received message larger than max (${size} vs ${this.maxLength})`);
        this.remaining = size;
        this.chunks = [];
      } else {
        const n = Math.min(this.remaining, data.length - at);
        this.chunks.push(data.subarray(at, at + n));
        this.remaining -= n;
        at += n;
      }
      if (this.remaining === 0) {
        messages.push(this.assemble());
        this.remaining = -1;
      }
    }
    return messages;
  }

  /** The framed message: header and body, in one buffer. */
  private assemble(): Buffer {
    const chunks = this.chunks;
    this.chunks = [];
    let size = 5;
    for (const c of chunks) size += c.length;
    if (size < SHARED_MESSAGE_BYTES || this.header[0] !== 0) return Buffer.concat([this.header, ...chunks], size);
    const offset = alignment.get(this.path) ?? 0;
    const message = sharedBytes(size + 8).subarray(offset, offset + size);
    copyBytes(message, this.header);
    let at = 5;
    for (const c of chunks) {
      copyBytes(message, c, at);
      at += c.length;
    }
    return message;
  }
}

/**
 * Notes where a method's large message put its largest tensor (`largest`, a view of `body`, the
 * message grpc-js handed the handler), so that the method's next large message is placed to align it.
 */
export function noteLargestTensor(path: string, body: Uint8Array, largest: Uint8Array | undefined): void {
  if (largest === undefined || largest.byteLength < 8 || !(body.buffer instanceof SharedArrayBuffer) || largest.buffer !== body.buffer)
    return;
  // The message began 5 bytes (its frame header) before the body, at the offset its decoder chose;
  // the next one starts where the tensor's place in the message falls on a multiple of 8.
  const inMessage = largest.byteOffset - (body.byteOffset - 5);
  alignment.set(path, (8 - (inMessage % 8)) % 8);
}

/** Gives a message's shared memory, if it has any, back to the pool: only once nothing reads it, or any view of it, again. */
export function releaseMessage(body: Uint8Array): void {
  if (body.buffer instanceof SharedArrayBuffer) releaseShared(body);
}

/**
 * Marks an answer as written with five bytes in front of it that nothing else uses (BackwardWriter's
 * own buffer), where its frame header may go.
 */
export function allowFraming(answer: Uint8Array): void {
  if (answer.byteOffset >= 5) framable.add(answer);
}

/** The answer behind its frame header, written in place when allowFraming said it may be; else undefined. */
function framedInPlace(message: Uint8Array): Buffer | undefined {
  if (!framable.has(message)) return undefined;
  framable.delete(message);
  return frameBehind(message, message.byteLength);
}

/**
 * `bytes` with the frame header of a `length`-byte uncompressed message written in the five bytes in
 * front of them, which must be the caller's to write.
 */
function frameBehind(bytes: Uint8Array, length: number): Buffer {
  const framed = Buffer.from(bytes.buffer, bytes.byteOffset - 5, bytes.byteLength + 5);
  framed[0] = 0;
  framed.writeUInt32BE(length, 1);
  return framed;
}

/**
 * An answer whose large tensors are sent from the batch memory where the worker wrote them, not copied
 * into it: `parts` in order, the first with five unused bytes in front for the frame header, the tensors
 * views of the batch's memory, held from the pool (AnswerMemory.keep) until `settle` calls `giveBack`.
 * Only grpc-js's patched sendMessage writes one (partedAnswers()).
 */
export class PartedAnswer {
  private settled = false;

  constructor(
    /** The message's bytes in order; parts[0] begins five bytes into its memory. */
    readonly parts: readonly Buffer[],
    /** The message's length, frame header not included. */
    readonly byteLength: number,
    private readonly giveBack: () => void,
  ) {}

  /** The first part behind its frame header, which announces the whole message. */
  framedHead(): Buffer {
    return frameBehind(this.parts[0], this.byteLength);
  }

  /**
   * Once the socket has taken every part (`sent`), or once none of them will be written, the batch
   * memory goes back to the pool. A write that failed may have left pieces of it in HTTP/2's queue for
   * the socket: that memory is left to the collector, never handed to another request.
   */
  settle(sent: boolean): void {
    if (this.settled) return;
    this.settled = true;
    if (sent) this.giveBack();
  }
}

let partsTook = false;

/** Whether answers may be sent as parts (PartedAnswer): grpc-js's sendMessage took the patch. */
export function partedAnswers(): boolean {
  return partsTook;
}

let installed: { receive: boolean; send: boolean } | undefined;

/** grpc-js's server call class, where this version of grpc-js has it. */
function serverCallClass(): { prototype: unknown } | undefined {
  try {
    const internals = createRequire(import.meta.url)("@grpc/grpc-js/build/src/server-interceptors.js") as Record<string, unknown>;
    const call = internals.BaseServerInterceptingCall;
    return typeof call === "function" ? (call as { prototype: unknown }) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Patches grpc-js's server calls (once per process): large messages assembled by SharedMessageDecoder,
 * answers that allow it framed in place. Says which of the two took.
 */
export function installMessageMemory(): { receive: boolean; send: boolean } {
  if (installed !== undefined) return installed;
  const proto = serverCallClass()?.prototype as Partial<ServerCallInternals> | undefined;
  const receive = typeof proto?.handleDataFrame === "function";
  const send = typeof proto?.serializeMessage === "function";
  if (proto !== undefined && receive) {
    const handleDataFrame = proto.handleDataFrame as ServerCallInternals["handleDataFrame"];
    proto.handleDataFrame = function (this: ServerCallInternals, data: Buffer) {
      if (!(this.decoder instanceof SharedMessageDecoder)) {
        const max = this.decoder?.maxReadMessageLength;
        this.decoder = new SharedMessageDecoder(typeof max === "number" ? max : -1, this.handler.path);
      }
      handleDataFrame.call(this, data);
    };
  }
  if (proto !== undefined && send) {
    const serializeMessage = proto.serializeMessage as ServerCallInternals["serializeMessage"];
    proto.serializeMessage = function (this: ServerCallInternals, value: unknown) {
      if (value instanceof PartedAnswer) return value.framedHead();
      return (value instanceof Uint8Array ? framedInPlace(value) : undefined) ?? serializeMessage.call(this, value);
    };
    if (typeof proto.sendMessage === "function") {
      const sendMessage = proto.sendMessage as ServerCallInternals["sendMessage"];
      proto.sendMessage = function (this: ServerCallInternals, message: unknown, callback: () => void) {
        if (!(message instanceof PartedAnswer)) return sendMessage.call(this, message, callback);
        sendParts(this, message, () => sendMessage.call(this, message, callback));
      };
      partsTook = true;
    }
  }
  installed = { receive, send };
  return installed;
}

/**
 * grpc-js's sendMessage for an answer in parts: its own checks, metadata and bookkeeping run as for any
 * message, and where it writes the serialised message (the framed first part) the other parts follow in
 * the same corked write, the last one carrying grpc-js's callback. HTTP/2 calls that back once the
 * socket has taken the bytes of every part (Node completes a stream's write after its data frames are
 * written), so the memory they view is given back then; never, if grpc-js wrote nothing (a cancelled
 * call), before it is known nothing will read it.
 */
function sendParts(call: ServerCallInternals, answer: PartedAnswer, send: () => void): void {
  const stream = call.stream;
  const write = stream.write;
  const own = Object.hasOwn(stream, "write");
  // The stream's own write again: grpc-js's later messages and trailers go through it as usual.
  const restore = () => {
    if (own) stream.write = write;
    else delete (stream as { write?: StreamWrite }).write;
  };
  let wrote = false;
  stream.write = (head, callback) => {
    restore();
    wrote = true;
    const last = answer.parts.length - 1;
    stream.cork();
    try {
      write.call(stream, head);
      for (let i = 1; i < last; i++) write.call(stream, answer.parts[i]);
      return write.call(stream, answer.parts[last], (error) => {
        answer.settle(!error);
        callback?.(error);
      });
    } finally {
      stream.uncork();
    }
  };
  try {
    send();
  } finally {
    if (!wrote) {
      restore();
      answer.settle(true);
    }
  }
}
