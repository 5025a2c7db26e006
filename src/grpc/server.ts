import { randomUUID } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import type { AdjointError } from "../errors.js";
import { asAdjointError, grpcCode } from "../service/errors.js";
import type { Metrics } from "../service/metrics.js";
import type { AdjointService } from "../service/service.js";
import type { CallContext } from "../service/types.js";
import { differentiateInput, differentiateResponse, functionInfo, functionSpec, listOpsResponse } from "./convert.js";
import { grpcServiceDefinition, reflectionPackage } from "./definition.js";
import {
  AdjointService as AdjointServiceDesc,
  type DifferentiateRequest,
  type DifferentiateResponse,
  type GetFunctionRequest,
  type RegisterFunctionRequest,
} from "./gen/adjoint/v1/adjoint_pb.js";

export const SERVICE_NAME = AdjointServiceDesc.typeName;

export interface GrpcServerOptions {
  readonly service: AdjointService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly maxMessage: number;
  /** Close connections after this long (0 or absent: never). */
  readonly maxConnectionAgeMs?: number;
}

type ServerCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/** The request id (x-request-id metadata, or a fresh one) and a logger that carries it. */
function requestLog(call: ServerCall, logger: Logger, method: string): { id: string; log: Logger } {
  const given = call.metadata.get("x-request-id")[0];
  const id = typeof given === "string" && /^[A-Za-z0-9._:-]{1,128}$/.test(given) ? given : randomUUID();
  return { id, log: logger.child({ reqId: id, method }) };
}

/** The client's deadline and cancellation as the service's call context (the signal made on first use). */
function callContext(call: ServerCall): CallContext {
  let controller: AbortController | undefined;
  const d = call.getDeadline();
  const deadline = d instanceof Date ? d.getTime() : Number.isFinite(d) ? Number(d) : undefined;
  return {
    deadline,
    get signal() {
      if (controller === undefined) {
        const c = new AbortController();
        controller = c;
        if (call.cancelled) c.abort(new Error("the client cancelled the call"));
        else call.once("cancelled", () => c.abort(new Error("the client cancelled the call or its deadline passed")));
      }
      return controller.signal;
    },
  };
}

/** An error as a gRPC status, with where it lies in trailing metadata (adjoint-field, -node, -input, -position). */
function status(error: AdjointError, requestId: string): Partial<grpc.StatusObject> {
  const metadata = new grpc.Metadata();
  metadata.set("x-request-id", requestId);
  metadata.set("adjoint-kind", error.kind);
  for (const [k, v] of Object.entries(error.location)) if (v !== undefined) metadata.set(`adjoint-${k}`, String(v));
  return { code: grpcCode(error) as grpc.status, details: error.message, metadata };
}

/**
 * The gRPC adapter: handlers that convert messages and call the service, plus the standard health
 * service and server reflection.
 */
export function buildGrpcServer(options: GrpcServerOptions): { server: grpc.Server; health: HealthImplementation } {
  const { service, metrics, logger } = options;
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessage,
    "grpc.max_send_message_length": options.maxMessage,
    ...(options.maxConnectionAgeMs
      ? { "grpc.max_connection_age_ms": options.maxConnectionAgeMs, "grpc.max_connection_age_grace_ms": 30_000 }
      : {}),
  });

  const finish = (method: string, log: Logger, started: number, error?: AdjointError, cause?: unknown) => {
    const code = error ? grpc.status[grpcCode(error)] : "OK";
    const seconds = (performance.now() - started) / 1000;
    metrics.observe("grpc", method, code, seconds);
    if (error?.kind === "internal") log.error({ err: cause }, "internal error");
    log.info({ status: code, ms: Math.round(seconds * 1e6) / 1000, ...(error ? { detail: error.message } : {}) }, "request completed");
  };

  function unary<Req, Res>(method: string, handle: (request: Req, ctx: CallContext) => Res | Promise<Res>): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      const started = performance.now();
      const { id, log } = requestLog(call as ServerCall, logger, method);
      const ctx = callContext(call as ServerCall);
      Promise.resolve()
        .then(() => handle(call.request, ctx))
        .then(
          (response) => {
            finish(method, log, started);
            callback(null, response);
          },
          (e) => {
            const error = asAdjointError(e);
            finish(method, log, started, error, e);
            callback(status(error, id));
          },
        );
    };
  }

  /** Answers in order, one message at a time, against one function compiled once for the stream. */
  const differentiateStream: grpc.handleBidiStreamingCall<DifferentiateRequest, DifferentiateResponse> = (call) => {
    const method = "DifferentiateStream";
    const started = performance.now();
    const { id, log } = requestLog(call as ServerCall, logger, method);
    const ctx = callContext(call as ServerCall);
    const session = service.openStream();
    let sequence = 0;
    let chain = Promise.resolve();
    let failed = false;
    call.on("data", (request: DifferentiateRequest) => {
      const n = sequence++;
      chain = chain.then(async () => {
        if (failed) return;
        try {
          call.write(differentiateResponse(await session.next(differentiateInput(request), ctx), n));
        } catch (e) {
          failed = true;
          const error = asAdjointError(e);
          finish(method, log, started, error, e);
          call.emit("error", status(error, id));
        }
      });
    });
    call.on("end", () => {
      chain = chain.then(() => {
        if (failed) return;
        finish(method, log, started);
        call.end();
      });
    });
  };

  server.addService(grpcServiceDefinition(AdjointServiceDesc), {
    differentiate: unary<DifferentiateRequest, DifferentiateResponse>("Differentiate", async (request, ctx) =>
      differentiateResponse(await service.differentiate(differentiateInput(request), ctx)),
    ),
    differentiateStream,
    registerFunction: unary("RegisterFunction", (request: RegisterFunctionRequest) =>
      functionInfo(service.registerFunction(functionSpec(request.function)).info),
    ),
    getFunction: unary("GetFunction", (request: GetFunctionRequest) => functionInfo(service.getFunction(request.id))),
    listOps: unary("ListOps", () => listOpsResponse(service.listOps())),
  });

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
