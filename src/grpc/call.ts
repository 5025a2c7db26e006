import { randomUUID } from "node:crypto";
import { type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { type AdjointError, invalid } from "../errors.js";
import { grpcCode, retryAfter } from "../service/errors.js";
import type { CallContext } from "../service/types.js";

/** What the helpers below read of a call, whatever its shape (unary, server streaming, bidirectional). */
export interface ServerCall {
  readonly cancelled: boolean;
  readonly metadata: grpc.Metadata;
  getDeadline(): grpc.Deadline;
  once(event: "cancelled", listener: () => void): unknown;
}

/** The client's x-request-id when it is a sensible token, else a fresh one; and a logger that names it. */
export function requestLog(call: ServerCall, logger: Logger, method: string): { id: string; log: Logger } {
  const given = call.metadata.get("x-request-id")[0];
  const id = typeof given === "string" && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID();
  return { id, log: logger.child({ reqId: id, method }) };
}

/** The client's deadline and cancellation as the service's call context (the signal made on first use). */
export function callContext(call: ServerCall): CallContext {
  return new GrpcCallContext(call);
}

/** A class rather than an object literal with a getter, which V8 builds slowly, once per call. */
class GrpcCallContext implements CallContext {
  readonly deadline: number | undefined;
  private controller: AbortController | undefined;

  constructor(private readonly call: ServerCall) {
    const d = call.getDeadline();
    this.deadline = d instanceof Date ? d.getTime() : Number.isFinite(d) ? Number(d) : undefined;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const c = new AbortController();
      this.controller = c;
      if (this.call.cancelled) c.abort(new Error("the client cancelled the call"));
      else this.call.once("cancelled", () => c.abort(new Error("the client cancelled the call or its deadline passed")));
    }
    return this.controller.signal;
  }
}

/** An error as a gRPC status, with where it lies in trailing metadata (adjoint-field, -node, -input, -position). */
export function status(error: AdjointError, requestId: string): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set("x-request-id", requestId);
  metadata.set("adjoint-kind", error.kind);
  for (const [k, v] of Object.entries(error.location)) if (v !== undefined) metadata.set(`adjoint-${k}`, String(v));
  const after = retryAfter(error);
  if (after !== undefined) metadata.set("retry-after", String(after));
  return { code: grpcCode(error) as grpc.status, details: error.message, metadata };
}

/** A request's bytes as a message; bytes that are not one are the client's fault, not the server's. */
export function decode<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  try {
    return fromBinary(schema, bytes);
  } catch (e) {
    throw invalid(`the request message could not be decoded: ${(e as Error).message}`);
  }
}
