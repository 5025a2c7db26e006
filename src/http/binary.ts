import { invalid } from "../errors.js";
import { bufferView } from "../runtime/shared-memory.js";
import { jsonBody, serializeJson } from "../service/json-view.js";
import { toLittleEndianBytes } from "../service/tensor.js";
import type { AnswerMemory, DifferentiateOutput } from "../service/types.js";

/**
 * The binary framing for large tensors, after Triton's binary tensor extension: the body is a JSON
 * request of `Adjoint-Header-Length` bytes followed by a binary part, and tensors in the JSON refer
 * to byte ranges of that part: {"shape": [...], "dtype": "float64", "binary": {"offset": 0, "length": 800}}.
 * The same framing carries answers to clients that accept it: `columns` arrays become references.
 */
export const BINARY_TYPE = "application/vnd.adjoint+binary";
export const BINARY_TYPES = [BINARY_TYPE, "application/octet-stream"];
export const HEADER_LENGTH = "adjoint-header-length";

export interface Framed {
  readonly header: string;
  readonly binary: Uint8Array;
}

/**
 * Splits a framed body into its JSON header text and its binary part (a view, not a copy; tensor
 * decoding reads unaligned data with one copy, service/tensor.ts).
 */
export function splitFrame(body: Buffer, headerLength: string | string[] | undefined): Framed {
  const n = Number(Array.isArray(headerLength) ? headerLength[0] : headerLength);
  if (headerLength === undefined || !Number.isInteger(n) || n < 0) {
    throw invalid(`a binary body needs an ${HEADER_LENGTH} header: the length of the JSON request at its start`, { field: HEADER_LENGTH });
  }
  if (n > body.byteLength) {
    throw invalid(`${HEADER_LENGTH} is ${n}, but the body has only ${body.byteLength} bytes`, { field: HEADER_LENGTH });
  }
  return { header: body.subarray(0, n).toString("utf8"), binary: body.subarray(n) };
}

/** Collects arrays into the binary part of an answer, handing back the reference that replaces each. */
export class BinaryWriter {
  private readonly parts: Uint8Array[] = [];
  private length = 0;

  add = (tensor: { readonly shape: readonly number[]; readonly data: Float64Array }): unknown => {
    // Keep every block 8-byte aligned from the start of the binary part.
    const pad = (8 - (this.length % 8)) % 8;
    if (pad) this.push(new Uint8Array(pad));
    const offset = this.length;
    const bytes = toLittleEndianBytes(tensor.data);
    this.push(bytes);
    return { shape: tensor.shape, dtype: "float64", binary: { offset, length: bytes.byteLength } };
  };

  private push(bytes: Uint8Array): void {
    this.parts.push(bytes);
    this.length += bytes.byteLength;
  }

  /**
   * The framed body as the parts it is sent in: the header, then the binary part's blocks as they lie
   * (views of the batch's memory, which the caller keeps until the answer is sent). Copying 1.6 MB of
   * gradient into one buffer first took 0.2–0.4 ms of the event loop for a training step.
   */
  frame(headerText: string): BinaryAnswer {
    const header = Buffer.from(headerText, "utf8");
    const length = header.byteLength + this.length;
    // A small answer in one piece: one write, and nothing to keep.
    if (length <= ONE_PIECE) return { parts: [Buffer.concat([header, ...this.parts], length)], length, headerLength: header.byteLength };
    const parts = [header, ...this.parts.map((p) => bufferView(p))];
    return { parts, length, headerLength: header.byteLength, viewsMemory: true };
  }
}

/** Answers up to this many bytes are copied into one buffer; larger ones are sent from where their tensors lie. */
const ONE_PIECE = 64 * 1024;

/** An answer in the binary framing, in parts; `release` gives back the memory they view, once they are sent. */
export interface BinaryAnswer {
  readonly parts: readonly Buffer[];
  readonly length: number;
  readonly headerLength: number;
  readonly viewsMemory?: boolean;
  release?: () => void;
}

/** An answer in the binary framing: its JSON with every tensor a reference into the binary part that follows. */
export function binaryAnswer(out: DifferentiateOutput, memory: AnswerMemory): BinaryAnswer {
  const writer = new BinaryWriter();
  const answer = writer.frame(serializeJson(jsonBody(out, writer.add), out.allowNonFinite));
  if (answer.viewsMemory) answer.release = memory.keep();
  return answer;
}
