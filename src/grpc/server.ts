import { once } from "node:events";
import { type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { type AdjointError, asAdjointError, exhausted } from "../errors.js";
import { type Admission, overloaded, type ShedReason } from "../service/admission.js";

/** How long a large call may wait for a large slot before it is refused, ms. */
const ADMISSION_WAIT_MS = 5000;

import { grpcCode } from "../service/errors.js";
import type { Metrics } from "../service/metrics.js";
import type { AdjointService } from "../service/service.js";
import type { CallContext, DifferentiateOutput } from "../service/types.js";
import { callContext, decode, requestLog, type ServerCall, status } from "./call.js";
import { differentiateInput, differentiateResponse, functionInfo, functionSpec, listOpsResponse } from "./convert.js";
import { grpcServiceDefinition, reflectionPackage } from "./definition.js";
import {
  AdjointService as AdjointServiceDesc,
  DifferentiateRequestSchema,
  type DifferentiateResponse,
  DifferentiateResponseSchema,
  FunctionInfoSchema,
  GetFunctionRequestSchema,
  ListOpsRequestSchema,
  ListOpsResponseSchema,
  RegisterFunctionRequestSchema,
} from "./gen/adjoint/v1/adjoint_pb.js";
import { minimizeHandler } from "./minimize.js";
import { scalarResponseBytes } from "./scalar-response.js";

export const SERVICE_NAME = AdjointServiceDesc.typeName;

export interface GrpcServerOptions {
  readonly service: AdjointService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly maxMessage: number;
  /** Close connections after this long (0 or absent: never). */
  readonly maxConnectionAgeMs?: number;
  /** Calls in flight per connection (absent: grpc-js's default, unbounded). */
  readonly maxStreams?: number;
  /** Requests and message bytes in flight; without it nothing is refused for load. */
  readonly admission?: Admission;
}

/** What the handlers share: the service, where they report, and the limits they enforce. */
interface HandlerContext {
  readonly service: AdjointService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly maxMessage: number;
  readonly admission?: Admission;
}

/** Records a finished call's metrics and logs it; an internal error also logs its cause. */
function finish(hc: HandlerContext, method: string, log: Logger, started: number, error?: AdjointError, cause?: unknown): void {
  const code = error ? grpc.status[grpcCode(error)] : "OK";
  const seconds = (performance.now() - started) / 1000;
  hc.metrics.observe("grpc", method, code, seconds);
  if (error?.kind === "internal") log.error({ err: cause }, "internal error");
  log.info({ status: code, ms: Math.round(seconds * 1e6) / 1000, ...(error ? { detail: error.message } : {}) }, "request completed");
}

/**
 * An answer's bytes (encoded here, or already by a fast path), refused when over the message limit
 * (grpc-js would fail the call after the handler).
 */
function encode<Desc extends DescMessage>(hc: HandlerContext, schema: Desc, message: MessageShape<Desc> | Uint8Array): Uint8Array {
  const bytes = message instanceof Uint8Array ? message : toBinary(schema, message);
  if (bytes.byteLength > hc.maxMessage) {
    throw exhausted(
      `the answer is ${bytes.byteLength} bytes, over the message limit of ${hc.maxMessage} bytes (ADJOINT_GRPC_MAX_MESSAGE); ask for fewer points, or send them in several requests or over DifferentiateStream`,
    );
  }
  return bytes;
}

/** A unary handler: admits the request by size, then decodes it, calls `handle` and encodes the answer. */
function unary<In extends DescMessage, Out extends DescMessage>(
  hc: HandlerContext,
  method: string,
  input: In,
  output: Out,
  handle: (request: MessageShape<In>, ctx: CallContext) => MessageShape<Out> | Uint8Array | Promise<MessageShape<Out> | Uint8Array>,
): grpc.handleUnaryCall<Buffer, Uint8Array> {
  const { admission } = hc;
  return (call, callback) => {
    const started = performance.now();
    const { id, log } = requestLog(call as ServerCall, hc.logger, method);
    const bytes = call.request;
    const size = bytes.byteLength;
    const refuse = (refused: ShedReason) => {
      const error = overloaded("grpc", refused);
      finish(hc, method, log, started, error);
      callback(status(error, id));
    };
    const run = () => {
      const ctx = callContext(call as ServerCall);
      Promise.resolve()
        .then(() => handle(decode(input, bytes), ctx))
        .then((response) => encode(hc, output, response))
        .then(
          (answer) => {
            admission?.release(size);
            finish(hc, method, log, started);
            callback(null, answer);
          },
          (e) => {
            admission?.release(size);
            const error = asAdjointError(e);
            finish(hc, method, log, started, error, e);
            callback(status(error, id));
          },
        );
    };
    const verdict = admission?.admitOrWait(size, ADMISSION_WAIT_MS, true);
    if (verdict instanceof Promise) verdict.then((refused) => (refused === undefined ? run() : refuse(refused)));
    else if (verdict !== undefined) refuse(verdict);
    else run();
  };
}

/**
 * Messages a stream may have read but not yet answered. Beyond it the stream stops reading, so
 * HTTP/2 flow control holds the client back instead of the server queueing its messages.
 */
const STREAM_WINDOW = 8;

/** Answers in order, one message at a time, against one function compiled once for the stream. */
function differentiateStream(hc: HandlerContext): grpc.handleBidiStreamingCall<Buffer, Uint8Array> {
  const { admission } = hc;
  return (call) => {
    const method = "DifferentiateStream";
    const started = performance.now();
    const { id, log } = requestLog(call as ServerCall, hc.logger, method);
    const ctx = callContext(call as ServerCall);
    const session = hc.service.openStream();
    let sequence = 0;
    let chain = Promise.resolve();
    let failed = false;
    const fail = (e: unknown) => {
      failed = true;
      const error = asAdjointError(e);
      finish(hc, method, log, started, error, e);
      call.emit("error", status(error, id));
    };
    let unanswered = 0;
    call.on("data", (bytes: Buffer) => {
      if (failed) return;
      const n = sequence++;
      if (++unanswered >= STREAM_WINDOW) call.pause();
      // Each message holds a slot until answered: a client cannot queue unbounded work on one stream.
      const size = bytes.byteLength;
      const refused = admission?.tryAdmit(size);
      if (refused !== undefined) {
        chain = chain.then(() => {
          if (!failed) fail(overloaded("grpc", refused));
        });
        return;
      }
      chain = chain.then(async () => {
        try {
          if (failed) return;
          const request = decode(DifferentiateRequestSchema, bytes);
          const answer = encode(hc, DifferentiateResponseSchema, answerMessage(await session.next(differentiateInput(request), ctx), n));
          // A client that does not read its answers is not given more work to produce.
          if (!call.write(answer)) await once(call, "drain", { signal: ctx.signal });
        } catch (e) {
          fail(e);
        } finally {
          admission?.release(size);
          if (--unanswered < STREAM_WINDOW && call.isPaused()) call.resume();
        }
      });
    });
    call.on("end", () => {
      chain = chain.then(() => {
        if (failed) return;
        finish(hc, method, log, started);
        call.end();
      });
    });
  };
}

/** An answer as its encoded bytes when it is all scalars (scalar-response.ts), else as a message. */
function answerMessage(out: DifferentiateOutput, sequence = 0): DifferentiateResponse | Uint8Array {
  return scalarResponseBytes(out, sequence) ?? differentiateResponse(out, sequence);
}

/** Adds the adjoint service's handlers to the server. */
function addAdjointService(server: grpc.Server, hc: HandlerContext): void {
  const { service } = hc;
  server.addService(grpcServiceDefinition(AdjointServiceDesc, true), {
    differentiate: unary(hc, "Differentiate", DifferentiateRequestSchema, DifferentiateResponseSchema, async (request, ctx) =>
      answerMessage(await service.differentiate(differentiateInput(request), ctx)),
    ),
    differentiateStream: differentiateStream(hc),
    minimize: minimizeHandler(hc),
    registerFunction: unary(hc, "RegisterFunction", RegisterFunctionRequestSchema, FunctionInfoSchema, (request) =>
      functionInfo(service.registerFunction(functionSpec(request.function)).info),
    ),
    getFunction: unary(hc, "GetFunction", GetFunctionRequestSchema, FunctionInfoSchema, (request) =>
      functionInfo(service.getFunction(request.id)),
    ),
    listOps: unary(hc, "ListOps", ListOpsRequestSchema, ListOpsResponseSchema, () => listOpsResponse(service.listOps())),
  });
}

/**
 * The gRPC adapter: handlers that convert messages and call the service, plus the standard health
 * service and server reflection. Requests arrive as bytes (see grpcServiceDefinition): each is admitted
 * by size before it is decoded, and each answer is serialised here, so that one over the message limit
 * is refused with RESOURCE_EXHAUSTED, and counted so, rather than failing after the metrics said OK.
 */
export function buildGrpcServer(options: GrpcServerOptions): { server: grpc.Server; health: HealthImplementation } {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessage,
    "grpc.max_send_message_length": options.maxMessage,
    // grpc-js reads a call's whole message before any handler runs, so admission cannot refuse one
    // unread: this bounds what one connection can make the server hold at once.
    ...(options.maxStreams ? { "grpc.max_concurrent_streams": options.maxStreams } : {}),
    ...(options.maxConnectionAgeMs
      ? { "grpc.max_connection_age_ms": options.maxConnectionAgeMs, "grpc.max_connection_age_grace_ms": 30_000 }
      : {}),
  });
  const { service, metrics, logger, maxMessage, admission } = options;
  addAdjointService(server, { service, metrics, logger, maxMessage, ...(admission ? { admission } : {}) });

  const health = new HealthImplementation({ "": "NOT_SERVING", [SERVICE_NAME]: "NOT_SERVING" });
  health.addToServer(server);
  new ReflectionService(reflectionPackage()).addToServer(server);
  return { server, health };
}

/** Binds the server; resolves to the port (useful with port 0). */
export function bindGrpc(server: grpc.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => (err ? reject(err) : resolve(bound)));
  });
}

/** Marks the whole server and the adjoint service serving or not in grpc.health.v1. */
export function setServing(health: HealthImplementation, serving: boolean): void {
  const state = serving ? "SERVING" : "NOT_SERVING";
  health.setStatus("", state);
  health.setStatus(SERVICE_NAME, state);
}
