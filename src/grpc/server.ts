import { once } from "node:events";
import { type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { asAdjointError, exhausted } from "../errors.js";
import type { AccessSampler } from "../service/access-log.js";
import { type Admission, LARGE_BODY, overloaded, type ShedReason } from "../service/admission.js";

/** How long a large call may wait for a large slot before it is refused, ms. */
const ADMISSION_WAIT_MS = 5000;

import type { Metrics } from "../service/metrics.js";
import type { AdjointService } from "../service/service.js";
import type { AnswerMemory, CallContext, DifferentiateOutput } from "../service/types.js";
import { CallRecord, type CallReporting, callContext, decode, type ServerCall, status } from "./call.js";
import { differentiateInput, differentiateResponse, functionInfo, functionSpec, listOpsResponse } from "./convert.js";
import { grpcServiceDefinition, reflectionPackage } from "./definition.js";
import { directResponseBytes } from "./direct-response.js";
import { bindWithFlowWindow } from "./flow-control.js";
import {
  AdjointService as AdjointServiceDesc,
  type DifferentiateRequest,
  DifferentiateRequestSchema,
  type DifferentiateResponse,
  DifferentiateResponseSchema,
  FunctionInfoSchema,
  GetFunctionRequestSchema,
  ListOpsRequestSchema,
  ListOpsResponseSchema,
  RegisterFunctionRequestSchema,
} from "./gen/adjoint/v1/adjoint_pb.js";
import { installMessageMemory, noteLargestTensor, PartedAnswer, releaseMessage } from "./message-memory.js";
import { minimizeHandler } from "./minimize.js";

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
  /** HTTP/2 flow-control window per call and per connection, bytes (flow-control.ts). */
  readonly flowWindow: number;
  /** Requests and message bytes in flight; without it nothing is refused for load. */
  readonly admission?: Admission;
  /** Which answered calls get an access-log line (absent: every one). */
  readonly accessLog?: AccessSampler;
}

/** What the handlers share: the service, where they report, and the limits they enforce. */
interface HandlerContext extends CallReporting {
  readonly service: AdjointService;
  readonly maxMessage: number;
  readonly admission?: Admission;
}

/** An answer's bytes: in one piece, or in parts that view the batch memory its tensors lie in. */
type Encoded = Uint8Array | PartedAnswer;

/**
 * An answer's bytes (encoded here, or already by a fast path), refused when over the message limit
 * (grpc-js would fail the call after the handler).
 */
function encode<Desc extends DescMessage>(hc: HandlerContext, schema: Desc, message: MessageShape<Desc> | Encoded): Encoded {
  const bytes = message instanceof Uint8Array || message instanceof PartedAnswer ? message : toBinary(schema, message);
  if (bytes.byteLength > hc.maxMessage) {
    if (bytes instanceof PartedAnswer) bytes.settle(true);
    throw exhausted(
      `the answer is ${bytes.byteLength} bytes, over the message limit of ${hc.maxMessage} bytes (ADJOINT_GRPC_MAX_MESSAGE); ask for fewer points, or send them in several requests or over DifferentiateStream`,
    );
  }
  return bytes;
}

/**
 * A unary handler: admits the request by size, then decodes it, calls `handle` and encodes the answer.
 * With `largestTensor`, a large request's shared memory (message-memory.ts) goes back to the pool once
 * answered, unless `largestTensor` says views of it may outlive the call (undefined for no tensor, null
 * for "keep"); its largest tensor aligns the method's next message.
 */
function unary<In extends DescMessage, Out extends DescMessage>(
  hc: HandlerContext,
  method: string,
  input: In,
  output: Out,
  handle: (request: MessageShape<In>, ctx: CallContext) => MessageShape<Out> | Encoded | Promise<MessageShape<Out> | Encoded>,
  largestTensor?: (request: MessageShape<In>) => Uint8Array | undefined | null,
): grpc.handleUnaryCall<Buffer, Encoded> {
  const { admission } = hc;
  return (call, callback) => {
    const record = new CallRecord(call as ServerCall, hc, method);
    const bytes = call.request;
    const size = bytes.byteLength;
    const refuse = (refused: ShedReason) => {
      const error = overloaded("grpc", refused);
      record.finish(error);
      callback(status(error, record.id));
    };
    const fail = (e: unknown) => {
      admission?.release(size);
      const error = asAdjointError(e);
      record.finish(error, e);
      callback(status(error, record.id));
    };
    const answer = (response: MessageShape<Out> | Encoded) => {
      let encoded: Encoded;
      try {
        encoded = encode(hc, output, response);
      } catch (e) {
        fail(e);
        return;
      }
      // A large answer goes to grpc-js on a later turn of the event loop: grpc-js copies it behind its
      // frame header and writes it at once, milliseconds that should not follow straight on from the
      // milliseconds of encoding it, with small calls waiting behind both.
      if (encoded.byteLength > LARGE_BODY) setImmediate(deliver, encoded);
      else deliver(encoded);
    };
    let reusable = false;
    const deliver = (encoded: Encoded) => {
      admission?.release(size);
      record.finish();
      callback(null, encoded);
      // Answered in full: no worker reads the request's memory any more (a failed call's might).
      if (reusable) releaseMessage(bytes);
    };
    // Called straight from grpc-js's callback rather than a promise chain: an answer that is ready at
    // once (inline evaluation) costs no extra turns of the microtask queue.
    const run = () => {
      let response: ReturnType<typeof handle>;
      try {
        const request = decode(input, bytes);
        // Only a message the decoder assembled in shared memory (message-memory.ts) is aligned or given back.
        if (largestTensor !== undefined && bytes.buffer instanceof SharedArrayBuffer) {
          const largest = largestTensor(request);
          reusable = largest !== null;
          if (largest) noteLargestTensor(call.getPath(), bytes, largest);
        }
        response = handle(request, callContext(call as ServerCall));
      } catch (e) {
        fail(e);
        return;
      }
      if (response instanceof Promise) response.then(answer, fail);
      else answer(response);
    };
    const verdict = admission?.admitOrWait(size, ADMISSION_WAIT_MS, true);
    if (verdict instanceof Promise) verdict.then((refused) => (refused === undefined ? run() : refuse(refused)));
    else if (verdict !== undefined) refuse(verdict);
    // Likewise a large message is decoded on a later turn than the one grpc-js assembled it in.
    else if (size > LARGE_BODY) setImmediate(run);
    else run();
  };
}

/**
 * Messages a stream may have read but not yet answered. Beyond it the stream stops reading, so
 * HTTP/2 flow control holds the client back instead of the server queueing its messages.
 */
const STREAM_WINDOW = 8;

/** Answers in order, one message at a time, against one function compiled once for the stream. */
function differentiateStream(hc: HandlerContext): grpc.handleBidiStreamingCall<Buffer, Encoded> {
  const { admission } = hc;
  return (call) => {
    const record = new CallRecord(call as ServerCall, hc, "DifferentiateStream");
    const ctx = callContext(call as ServerCall);
    const session = hc.service.openStream();
    let sequence = 0;
    let chain = Promise.resolve();
    let failed = false;
    const fail = (e: unknown) => {
      failed = true;
      const error = asAdjointError(e);
      record.finish(error, e);
      call.emit("error", status(error, record.id));
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
          const answer = await session.next(differentiateInput(request), ctx, (out, memory) =>
            encode(hc, DifferentiateResponseSchema, answerMessage(out, n, memory)),
          );
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
        record.finish();
        call.end();
      });
    });
  };
}

/**
 * An answer as its encoded bytes when it is one point of scalars and tensors (direct-response.ts), its
 * large tensors sent from the batch memory they lie in where `memory` lends it (PartedAnswer); else as
 * a message.
 */
function answerMessage(out: DifferentiateOutput, sequence: number, memory?: AnswerMemory): DifferentiateResponse | Encoded {
  return directResponseBytes(out, sequence, memory) ?? differentiateResponse(out, sequence);
}

/**
 * A Differentiate request's largest raw tensor among its point and columns, whose memory lives only as
 * long as the call; null when the request holds a graph, whose constants a compiled function may keep.
 */
function largestRequestTensor(request: DifferentiateRequest): Uint8Array | undefined | null {
  if (request.function?.source.case === "graph") return null;
  let largest: Uint8Array | undefined;
  const tensors = [...Object.values(request.point?.tensors ?? {}), ...Object.values(request.columns)];
  for (const t of tensors) if (t.raw.byteLength > (largest?.byteLength ?? 0)) largest = t.raw;
  return largest;
}

/** Adds the adjoint service's handlers to the server. */
function addAdjointService(server: grpc.Server, hc: HandlerContext): void {
  const { service } = hc;
  server.addService(grpcServiceDefinition(AdjointServiceDesc, true), {
    differentiate: unary(
      hc,
      "Differentiate",
      DifferentiateRequestSchema,
      DifferentiateResponseSchema,
      (request, ctx) =>
        service.differentiateEncoded(differentiateInput(request), ctx, (out, memory) =>
          encode(hc, DifferentiateResponseSchema, answerMessage(out, 0, memory)),
        ),
      largestRequestTensor,
    ),
    differentiateStream: differentiateStream(hc),
    minimize: minimizeHandler(hc),
    registerFunction: unary(hc, "RegisterFunction", RegisterFunctionRequestSchema, FunctionInfoSchema, (request, ctx) =>
      service.registerFunction(functionSpec(request.function), ctx).then(({ info }) => functionInfo(info)),
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
export function buildGrpcServer(options: GrpcServerOptions): {
  server: grpc.Server;
  health: HealthImplementation;
  /** Binds the server, insecure, with the flow-control window (flow-control.ts); resolves to the port (useful with port 0). */
  bind: (host: string, port: number) => Promise<number>;
} {
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessage,
    "grpc.max_send_message_length": options.maxMessage,
    // Nothing serves channelz (no channelz service is added), and with it on grpc-js builds call
    // trackers and timestamps for every call and message.
    "grpc.enable_channelz": 0,
    // grpc-js reads a call's whole message before any handler runs, so admission cannot refuse one
    // unread: this bounds what one connection can make the server hold at once.
    ...(options.maxStreams ? { "grpc.max_concurrent_streams": options.maxStreams } : {}),
    ...(options.maxConnectionAgeMs
      ? { "grpc.max_connection_age_ms": options.maxConnectionAgeMs, "grpc.max_connection_age_grace_ms": 30_000 }
      : {}),
  });
  const { service, metrics, logger, maxMessage, admission, accessLog, flowWindow } = options;
  const memory = installMessageMemory();
  if (!memory.receive || !memory.send) {
    logger.warn(
      memory,
      "this grpc-js's server calls have moved: large messages are copied as grpc-js copies them (grpc/message-memory.ts)",
    );
  }
  addAdjointService(server, {
    service,
    metrics,
    logger,
    maxMessage,
    ...(admission ? { admission } : {}),
    ...(accessLog ? { accessLog } : {}),
  });

  const health = new HealthImplementation({ "": "NOT_SERVING", [SERVICE_NAME]: "NOT_SERVING" });
  health.addToServer(server);
  new ReflectionService(reflectionPackage()).addToServer(server);
  const bind = async (host: string, port: number) => {
    const bound = await bindWithFlowWindow(server, `${host}:${port}`, flowWindow);
    if (!bound.windowSet) {
      logger.warn(
        { flowWindow },
        "this grpc-js does not take the flow-control window: calls keep HTTP/2's 64 KiB, and large messages cross slowly",
      );
    }
    return bound.port;
  };
  return { server, health, bind };
}

/** Marks the whole server and the adjoint service serving or not in grpc.health.v1. */
export function setServing(health: HealthImplementation, serving: boolean): void {
  const state = serving ? "SERVING" : "NOT_SERVING";
  health.setStatus("", state);
  health.setStatus(SERVICE_NAME, state);
}
