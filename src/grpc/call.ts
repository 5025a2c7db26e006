import { type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "pino";
import { type AdjointError, invalid } from "../errors.js";
import { AccessSampler, type SampledLine } from "../service/access-log.js";
import { grpcCode, retryAfter } from "../service/errors.js";
import type { Metrics } from "../service/metrics.js";
import { requestId } from "../service/request-id.js";
import type { CallContext } from "../service/types.js";

/** What the helpers below read of a call, whatever its shape (unary, server streaming, bidirectional). */
export interface ServerCall {
  readonly cancelled: boolean;
  readonly metadata: grpc.Metadata;
  getDeadline(): grpc.Deadline;
  once(event: "cancelled", listener: () => void): unknown;
}

/** Where calls report: the metrics, the log and which answered calls get an access-log line. */
export interface CallReporting {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Absent: every call is logged. */
  readonly accessLog?: AccessSampler;
}

const EVERY_CALL = new AccessSampler(1);

/**
 * One call's request id (the client's x-request-id when it is a sensible token, else a fresh one) and
 * start, and its one report when it ends: metrics, then the access-log line. The request id and method
 * go into each line's own fields rather than into a child logger, which would cost a logger per call;
 * the line reads the same.
 */
export class CallRecord {
  readonly id: string;
  private readonly started = performance.now();

  constructor(
    call: ServerCall,
    private readonly reporting: CallReporting,
    readonly method: string,
  ) {
    this.id = requestId(call.metadata.get("x-request-id")[0]);
  }

  /** Records the finished call; an internal error also logs its cause. */
  finish(error?: AdjointError, cause?: unknown): void {
    const { metrics, logger, accessLog = EVERY_CALL } = this.reporting;
    const code = error ? grpc.status[grpcCode(error)] : "OK";
    const seconds = (performance.now() - this.started) / 1000;
    metrics.observe("grpc", this.method, code, seconds);
    if (error?.kind === "internal") logger.error({ reqId: this.id, method: this.method, err: cause }, "internal error");
    if (!accessLog.wants(error !== undefined)) return;
    const line: AccessLine = { reqId: this.id, method: this.method, status: code, ms: Math.round(seconds * 1e6) / 1000 };
    if (error) line.detail = error.message;
    logger.info(accessLog.mark(line), "request completed");
  }
}

interface AccessLine extends SampledLine {
  reqId: string;
  method: string;
  status: string;
  ms: number;
  detail?: string;
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
