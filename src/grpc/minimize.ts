import { create, toBinary } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import { type AdjointError, asAdjointError } from "../errors.js";
import { record } from "../names.js";
import { type Admission, overloaded } from "../service/admission.js";
import type { BoundSpec, MinimizeInput, MinimizeOutput, MinimizeProgress, MinimizeRequestOptions } from "../service/minimize-input.js";
import type { AdjointService } from "../service/service.js";
import { CallRecord, type CallReporting, callContext, decode, status } from "./call.js";
import { functionSpec, pointValues, tensorMap, tensorValue } from "./convert.js";
import {
  type MinimizeOptions,
  type MinimizeProgress as MinimizeProgressMsg,
  MinimizeProgressSchema,
  type MinimizeRequest,
  MinimizeRequestSchema,
  MinimizeResultSchema,
} from "./gen/adjoint/v1/adjoint_pb.js";

/** What the handler needs of the server: the same fields as server.ts's handler context. */
export interface MinimizeHandlerContext extends CallReporting {
  readonly service: AdjointService;
  readonly admission?: Admission;
}

const METHOD = "Minimize";
const ADMISSION_WAIT_MS = 5000;

/**
 * Minimize: a server-streaming call. The request is admitted by size and checked before anything is
 * sent; progress records stream as the worker posts them, each with the point reached, so that a client
 * whose deadline cuts the call still holds the best point so far; the last message carries the result.
 */
export function minimizeHandler(hc: MinimizeHandlerContext): grpc.handleServerStreamingCall<Buffer, Uint8Array> {
  return (call) => {
    const report = new CallRecord(call, hc, METHOD);
    const size = call.request.byteLength;
    const end = (error?: AdjointError, cause?: unknown) => {
      report.finish(error, cause);
      if (error) call.emit("error", status(error, report.id));
      else call.end();
    };
    const run = () =>
      Promise.resolve()
        .then(() => {
          const input = minimizeInput(decode(MinimizeRequestSchema, call.request));
          return hc.service.prepareMinimize(input, callContext(call), { progressPoints: true });
        })
        .then((job) => job.run((p) => call.cancelled || call.write(toBinary(MinimizeProgressSchema, progressMessage(p)))))
        .then(
          (out) => {
            hc.admission?.release(size);
            if (!call.cancelled) call.write(toBinary(MinimizeProgressSchema, lastMessage(out)));
            end();
          },
          (e) => {
            hc.admission?.release(size);
            end(asAdjointError(e), e);
          },
        );
    const verdict = hc.admission?.admitOrWait(size, ADMISSION_WAIT_MS, true);
    if (verdict instanceof Promise) verdict.then((refused) => (refused === undefined ? run() : end(overloaded("grpc", refused))));
    else if (verdict !== undefined) end(overloaded("grpc", verdict));
    else run();
  };
}

/** The message as the service's request: the REST body's fields, unset ones left out. */
export function minimizeInput(r: MinimizeRequest): MinimizeInput {
  const bounds = record<BoundSpec>();
  for (const [name, b] of Object.entries(r.bounds)) {
    bounds[name] = { ...(b.lower ? { lower: tensorValue(b.lower) } : {}), ...(b.upper ? { upper: tensorValue(b.upper) } : {}) };
  }
  return {
    function: functionSpec(r.function),
    ...(r.start ? { start: pointValues(r.start) } : {}),
    ...(r.wrt.length ? { wrt: r.wrt } : {}),
    ...(r.method ? { method: r.method } : {}),
    ...(Object.keys(r.bounds).length ? { bounds } : {}),
    ...(r.options ? { options: optionsOf(r.options) } : {}),
    ...(r.initialize ? { initialize: { seed: r.initialize.seed } } : {}),
    ...(r.progressEvery ? { progressEvery: r.progressEvery } : {}),
  };
}

function optionsOf(o: MinimizeOptions): MinimizeRequestOptions {
  const out: Record<string, number> = {};
  const fields = ["maxIterations", "gtol", "ftol", "memory", "learningRate", "beta1", "beta2", "epsilon", "timeLimitMs"] as const;
  for (const k of fields) if (o[k] !== undefined) out[k] = o[k] as number;
  return out;
}

function progressMessage(p: MinimizeProgress): MinimizeProgressMsg {
  return create(MinimizeProgressSchema, {
    iteration: BigInt(p.iteration),
    value: p.value,
    gradientNorm: p.gradientNorm,
    evaluations: BigInt(p.evaluations),
    elapsedMs: p.elapsedMs,
    point: tensorMap(p.point),
  });
}

function lastMessage(out: MinimizeOutput): MinimizeProgressMsg {
  const last = out.history[out.history.length - 1];
  const result = create(MinimizeResultSchema, {
    point: tensorMap(out.point),
    value: out.value,
    gradientNorm: out.gradientNorm,
    iterations: BigInt(out.iterations),
    evaluations: BigInt(out.evaluations),
    hvps: BigInt(out.hvps),
    status: out.status,
    message: out.message,
    id: out.id,
    method: out.method,
    history: out.history.map((p) => progressMessage(p)),
  });
  const message = progressMessage({
    ...(last ?? { iteration: out.iterations, evaluations: out.evaluations, elapsedMs: 0 }),
    value: out.value,
    gradientNorm: out.gradientNorm,
    point: out.point,
  });
  message.result = result;
  return message;
}
