import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { AdjointError } from "../errors.js";
import { jsonBody, serializeJson, tensorBase64, tensorJson } from "../service/json-view.js";
import type { Metrics } from "../service/metrics.js";
import type { AdjointService } from "../service/service.js";
import type { CallContext, DifferentiateInput, FunctionSpec } from "../service/types.js";
import { BINARY_TYPE, BINARY_TYPES, BinaryWriter, HEADER_LENGTH, splitFrame } from "./binary.js";
import { fromFastifyError, malformedJson, sendProblem } from "./errors.js";
import { loadOpenApi, ref, SCHEMA_ID } from "./openapi.js";

export interface RoutesOptions {
  readonly service: AdjointService;
  readonly metrics: Metrics;
}

declare module "fastify" {
  interface FastifyRequest {
    /** The binary part of a framed body (binary.ts). */
    binaryPart?: Uint8Array;
  }
}

const JSON_TYPE = "application/json; charset=utf-8";

/**
 * The REST adapter: routes validated by the schemas of openapi.yaml, each a few lines over the
 * service. Nothing here knows how a function is evaluated.
 */
export async function adjointRoutes(app: FastifyInstance, { service, metrics }: RoutesOptions): Promise<void> {
  const openapi = loadOpenApi();
  app.addSchema({ $id: SCHEMA_ID, components: openapi.doc.components });
  app.decorateRequest("binaryPart", undefined);

  // JSON with fastify's own protections (prototype poisoning), and the parser's words when it fails.
  const defaultJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    defaultJson(request, body as string, (err, value) => {
      if (err && (err as { code?: string }).code !== "FST_ERR_CTP_EMPTY_JSON_BODY") done(malformedJson(body as string), undefined);
      else done(err as Error | null, value);
    });
  });
  app.addContentTypeParser(BINARY_TYPES, { parseAs: "buffer" }, (request, body, done) => {
    try {
      const frame = splitFrame(body as Buffer, request.headers[HEADER_LENGTH]);
      request.binaryPart = frame.binary;
      defaultJson(request, frame.header, (err, value) => (err ? done(malformedJson(frame.header), undefined) : done(null, value)));
    } catch (e) {
      done(e as Error, undefined);
    }
  });

  // Callback-style hooks: an async hook costs a promise per request, more than what these do.
  app.addHook("onRequest", (request, reply, done) => {
    reply.header("x-request-id", request.id);
    done();
  });
  app.addHook("onResponse", (request, reply, done) => {
    const route = request.routeOptions.url ?? "unmatched";
    metrics.observe("http", route, reply.statusCode, reply.elapsedTime / 1000);
    request.log.info(
      { method: request.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 1000) / 1000 },
      "request completed",
    );
    done();
  });
  app.setErrorHandler((e, request, reply) => {
    const error: AdjointError = fromFastifyError(e, request);
    if (error.kind === "internal") request.log.error({ err: e }, "internal error");
    else request.log.info({ kind: error.kind, detail: error.message }, "request refused");
    return sendProblem(reply, error);
  });
  app.setNotFoundHandler((request, reply) =>
    sendProblem(reply, new AdjointError("not_found", `no route ${request.method} ${request.url}`)),
  );

  app.post<{ Body: DifferentiateInput }>("/v1/differentiate", { schema: { body: ref("DifferentiateRequest") } }, async (request, reply) => {
    const out = await service.differentiate(request.body, callContext(request, reply));
    if (wantsBinary(request)) {
      const writer = new BinaryWriter();
      const { body, headerLength } = writer.frame(serializeJson(jsonBody(out, writer.add), out.allowNonFinite));
      return reply.type(BINARY_TYPE).header(HEADER_LENGTH, String(headerLength)).send(body);
    }
    const tensors = request.body.encoding === "base64" ? tensorBase64 : tensorJson;
    return reply.type(JSON_TYPE).send(serializeJson(jsonBody(out, tensors), out.allowNonFinite));
  });

  app.post<{ Body: { function: FunctionSpec } }>("/v1/functions", { schema: { body: ref("RegisterRequest") } }, async (request, reply) => {
    const { info, created } = service.registerFunction(request.body.function);
    if (created) reply.code(201).header("location", `/v1/functions/${info.id}`);
    return reply.type(JSON_TYPE).send(JSON.stringify(info));
  });

  app.get<{ Params: { id: string } }>("/v1/functions/:id", async (request, reply) =>
    reply.type(JSON_TYPE).send(JSON.stringify(service.getFunction(request.params.id))),
  );

  app.get("/v1/ops", async (_request, reply) => reply.type(JSON_TYPE).send(JSON.stringify(service.listOps())));

  app.get("/healthz", async (_request, reply) => reply.type(JSON_TYPE).send('{"status":"ok"}'));
  app.get("/readyz", async (_request, reply) =>
    service.ready ? reply.type(JSON_TYPE).send('{"status":"ready"}') : reply.code(503).type(JSON_TYPE).send('{"status":"not ready"}'),
  );
  app.get("/metrics", async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  app.get("/openapi.yaml", async (_request, reply) => reply.type("application/yaml; charset=utf-8").send(openapi.text));

  await app.register(fastifySwagger, { mode: "static", specification: { document: openapi.doc as never } });
  await app.register(fastifySwaggerUi, { routePrefix: "/docs" });
}

// Not encapsulated: the parsers, hooks and handlers apply to the whole server.
(adjointRoutes as unknown as Record<symbol, boolean>)[Symbol.for("skip-override")] = true;

function wantsBinary(request: FastifyRequest): boolean {
  return request.headers.accept?.includes(BINARY_TYPE) ?? false;
}

/**
 * The client's disconnect cancels the work; the framed body's binary part travels with the request.
 * The signal (and its listener) is made only when the service asks for it: only pool jobs do.
 */
function callContext(request: FastifyRequest, reply: FastifyReply): CallContext {
  let controller: AbortController | undefined;
  return {
    binary: request.binaryPart,
    get signal() {
      if (controller === undefined) {
        const c = new AbortController();
        controller = c;
        if (reply.raw.destroyed && !reply.raw.writableFinished) c.abort(new Error("the client disconnected"));
        else reply.raw.once("close", () => reply.raw.writableFinished || c.abort(new Error("the client disconnected")));
      }
      return controller.signal;
    },
  };
}
