import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { asAdjointError } from "../errors.js";
import { problemDetails } from "../service/errors.js";
import type { MinimizeInput } from "../service/minimize-input.js";
import { minimizeJson, progressJson, tensorWriter } from "../service/minimize-view.js";
import type { AdjointService } from "../service/service.js";
import type { CallContext } from "../service/types.js";
import { ref } from "./openapi.js";

const ROUTE = "/v1/minimize";

/**
 * POST /v1/minimize: one JSON answer, or with `Accept: text/event-stream` a stream of Server-Sent
 * Events (`progress` records, then one `result`, or one `error`). The request is checked before the
 * stream starts, so a bad one is answered with problem+json and its status code as on every route.
 */
export function minimizeRoute(app: FastifyInstance, service: AdjointService): void {
  app.post<{ Body: MinimizeInput }>(ROUTE, { schema: { body: ref("MinimizeRequest") } }, async (request, reply) => {
    const tensor = tensorWriter(request.body.encoding);
    if (!wantsEvents(request)) {
      const out = await service.prepareMinimize(request.body, clientContext(request, reply)).run();
      return reply.type("application/json; charset=utf-8").send(minimizeJson(out, tensor));
    }
    const job = service.prepareMinimize(request.body, clientContext(request, reply));
    streamEvents(request, reply, (send) =>
      job.run((p) => send("progress", progressJson(p, tensor))).then((out) => send("result", minimizeJson(out, tensor))),
    );
    return reply;
  });
}

type Send = (event: string, data: string) => void;

/** Runs `work` with the response taken over as an event stream; an error after the start becomes an `error` event. */
function streamEvents(request: FastifyRequest, reply: FastifyReply, work: (send: Send) => Promise<void>): void {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    "x-request-id": String(request.id),
    // Proxies (nginx) must pass events through as they come rather than buffer the answer.
    "x-accel-buffering": "no",
  });
  const send: Send = (event, data) => {
    if (!res.destroyed) res.write(`event: ${event}\ndata: ${data}\n\n`);
  };
  // fastify's onResponse hook still counts and logs the exchange (status 200: the stream had started).
  work(send)
    .catch((e) => {
      const error = asAdjointError(e);
      if (error.kind === "internal") request.log.error({ err: e }, "internal error");
      send("error", JSON.stringify(problemDetails(error, String(request.id))));
    })
    .finally(() => res.end());
}

function wantsEvents(request: FastifyRequest): boolean {
  return request.headers.accept?.includes("text/event-stream") ?? false;
}

/**
 * The client's disconnect stops the run (the worker answers the point reached, which nobody reads);
 * the binary part (a framed body, or a large JSON body read on the pool) travels with the request.
 */
function clientContext(request: FastifyRequest, reply: FastifyReply): CallContext {
  const controller = new AbortController();
  const res = reply.raw;
  res.once("close", () => res.writableFinished || controller.abort(new Error("the client disconnected")));
  return { signal: controller.signal, binary: request.binaryPart };
}
