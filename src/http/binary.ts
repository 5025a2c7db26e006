import { invalid } from "../errors.js";
import { copyBytes, pooledBytes } from "../runtime/shared-memory.js";
import { jsonBody, serializeJson } from "../service/json-view.js";
import { toLittleEndianBytes } from "../service/tensor.js";
import type { DifferentiateOutput } from "../service/types.js";

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

  /** The framed body and its header length. */
  frame(headerText: string): { body: Buffer; headerLength: number } {
    const header = Buffer.from(headerText, "utf8");
    // Not Buffer.concat: the parts may view a batch's shared memory (service.differentiateEncoded).
    // A large answer in pooled memory (the caller gives it back once it is sent), placed so that its
    // binary part is 8-byte aligned, as the tensors it copies are: copied word by word, not a byte at a time.
    const body = pooledBytes(header.byteLength + this.length, (8 - (header.byteLength % 8)) % 8);
    header.copy(body, 0);
    let at = header.byteLength;
    for (const part of this.parts) {
      copyBytes(body, part, at);
      at += part.byteLength;
    }
    // Every byte written, or none of this memory (not zeroed) goes out.
    if (at !== body.byteLength) throw new Error(`BinaryWriter: framed ${at} of ${body.byteLength} bytes`);
    return { body, headerLength: header.byteLength };
  }
}

/** An answer in the binary framing: its JSON with every tensor a reference into the binary part that follows. */
export function binaryAnswer(out: DifferentiateOutput): { body: Buffer; headerLength: number } {
  const writer = new BinaryWriter();
  return writer.frame(serializeJson(jsonBody(out, writer.add), out.allowNonFinite));
}
