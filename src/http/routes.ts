import { Readable, Transform } from "node:stream";
import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { AdjointError } from "../errors.js";
import { releaseShared } from "../runtime/shared-memory.js";
import { AccessSampler, type SampledLine } from "../service/access-log.js";
import { type Admission, LARGE_BODY, overloaded, type ShedReason } from "../service/admission.js";
import { tensorBase64, tensorJson } from "../service/json-view.js";
import type { Metrics } from "../service/metrics.js";
import type { AdjointService } from "../service/service.js";
import { thenFinally } from "../service/settle.js";
import type { AnswerMemory, CallContext, DifferentiateInput, DifferentiateOutput, FunctionSpec } from "../service/types.js";
import { BINARY_TYPE, BINARY_TYPES, type BinaryAnswer, binaryAnswer, HEADER_LENGTH, splitFrame } from "./binary.js";
import { type BodyLease, readBody } from "./body.js";
import { fromFastifyError, malformedJson, sendProblem } from "./errors.js";
import { minimizeRoute } from "./minimize-route.js";
import { loadOpenApi, ref, SCHEMA_ID } from "./openapi.js";
import { pageRoutes } from "./page.js";

/** An HTTP access-log line's fields (besides pino's own, the request id and the sampler's). */
interface HttpAccessLine extends SampledLine {
  method: string;
  route: string;
  status: number;
  ms: number;
}

export interface RoutesOptions {
  readonly service: AdjointService;
  readonly metrics: Metrics;
  /** Requests and body bytes in flight on HTTP; without it nothing is refused for load. */
  readonly admission?: Admission;
  /** How long a large request may wait for a slot before it is refused, ms. */
  readonly admissionWaitMs?: number;
  /** Which requests get an access-log line (absent: every one). */
  readonly accessLog?: AccessSampler;
}

declare module "fastify" {
  interface FastifyRequest {
    /** The binary part of a framed body (binary.ts). */
    binaryPart?: Uint8Array;
    /** Body bytes this request holds of the admission budget (undefined: not counted). */
    admitted?: number;
    /** The pooled memory the body was read into (body.ts), given back when the exchange is over. */
    bodyLease?: BodyLease;
    /** The response, for the body's reader: its memory is held until the response closes. */
    response?: FastifyReply["raw"];
  }
}

const JSON_TYPE = "application/json; charset=utf-8";

/**
 * The REST adapter: routes validated by the schemas of openapi.yaml, each a few lines over the
 * service. Nothing here knows how a function is evaluated.
 */
export async function adjointRoutes(
  app: FastifyInstance,
  { service, metrics, admission, admissionWaitMs: waitMs = 5000, accessLog = new AccessSampler(1) }: RoutesOptions,
): Promise<void> {
  const openapi = loadOpenApi();
  app.addSchema({ $id: SCHEMA_ID, components: openapi.doc.components });
  app.decorateRequest("binaryPart", undefined);
  app.decorateRequest("admitted", undefined);
  app.decorateRequest("bodyLease", undefined);
  app.decorateRequest("response", undefined);

  // JSON with fastify's own protections (prototype poisoning), and the parser's words when it fails.
  const defaultJson = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  type Done = (err: Error | null, value?: unknown) => void;
  const parseJson = (request: FastifyRequest, body: Buffer, done: Done) => {
    const text = body.toString();
    defaultJson(request, text, (err, value) => {
      if (err && (err as { code?: string }).code !== "FST_ERR_CTP_EMPTY_JSON_BODY") done(malformedJson(text), undefined);
      else done(err as Error | null, value);
    });
  };
  // No parseAs: the parsers take the stream and read it themselves (body.ts), within the route's bodyLimit.
  const read = (request: FastifyRequest, payload: Readable, done: Done, parse: (body: Buffer) => void, shift?: number) =>
    readBody(
      request,
      payload,
      request.routeOptions.bodyLimit ?? Number.POSITIVE_INFINITY,
      (lease) => {
        if (request.bodyLease === undefined) request.response?.once("close", () => request.bodyLease?.release());
        request.bodyLease = lease;
      },
      (err, body) => (err === null ? parse(body as Buffer) : done(err)),
      shift,
    );
  app.addContentTypeParser("application/json", (request, payload, done) =>
    read(request, payload, done, (body) => parseJsonBody(request, body, done)),
  );
  const parseJsonBody = (request: FastifyRequest, body: Buffer, done: Done) => {
    if (body.byteLength <= LARGE_BODY) return parseJson(request, body, done);
    // A large body is read on the pool; its tensors come back as a binary part, as if framed. Its memory
    // is held while a worker reads it, even if the client leaves meanwhile.
    const lease = request.bodyLease;
    lease?.hold();
    service.readLargeJson(body).then(
      (split) => {
        if (split === undefined) parseJson(request, body, done);
        else {
          request.binaryPart = split.binary;
          if (split.binary !== undefined) lease?.adopt(split.binary);
          done(null, split.header);
        }
        lease?.release();
      },
      (e) => {
        lease?.release();
        done(e as Error, undefined);
      },
    );
  };
  app.addContentTypeParser(BINARY_TYPES, (request, payload, done) => {
    // The binary part 8-byte aligned in memory: its tensors are copied into the batch word by word.
    const headerLength = Number(request.headers[HEADER_LENGTH]);
    const shift = Number.isInteger(headerLength) && headerLength > 0 ? (8 - (headerLength % 8)) % 8 : 0;
    read(
      request,
      payload,
      done,
      (body) => {
        try {
          const frame = splitFrame(body, request.headers[HEADER_LENGTH]);
          request.binaryPart = frame.binary;
          defaultJson(request, frame.header, (err, value) => (err ? done(malformedJson(frame.header), undefined) : done(null, value)));
        } catch (e) {
          done(e as Error, undefined);
        }
      },
      shift,
    );
  });

  // Callback-style hooks: an async hook costs a promise per request, more than what these do.
  app.addHook("onRequest", (request, reply, done) => {
    reply.header("x-request-id", request.id);
    request.response = reply.raw;
    if (admission === undefined) return done();
    const answered = admit(admission, request, reply, waitMs);
    if (answered === false) done();
    else if (answered !== true) answered.then((yes) => yes || done());
  });
  if (admission !== undefined) {
    app.addHook("preParsing", (request, reply, payload, done) => {
      // A body of undeclared length (chunked) is counted as it arrives: it may not grow past the budget.
      if (request.admitted === undefined || request.headers["content-length"] !== undefined) done(null, payload);
      else done(null, payload.pipe(countingStream(admission, request, reply)));
    });
  }
  app.addHook("onResponse", (request, reply, done) => {
    const route = request.routeOptions.url ?? "unmatched";
    const status = reply.statusCode;
    const ms = reply.elapsedTime;
    metrics.observe("http", route, status, ms / 1000);
    if (accessLog.wants(status >= 400)) {
      const line: HttpAccessLine = { method: request.method, route, status, ms: Math.round(ms * 1000) / 1000 };
      request.log.info(accessLog.mark(line), "request completed");
    }
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

  // Not an async handler: an answer made at once (a point computed on the event loop) is sent in the
  // turn that read the request, without the promises an async handler costs (service.differentiateEncoded),
  // and written at that turn's end with the turn's other answers (write-together.ts).
  app.post<{ Body: DifferentiateInput }>("/v1/differentiate", { schema: { body: ref("DifferentiateRequest") } }, (request, reply) => {
    const ctx = new HttpCallContext(request, reply);
    if (wantsBinary(request)) {
      return respond(request, ctx, binaryAnswer, (answer) =>
        sendParts(reply.type(BINARY_TYPE).header(HEADER_LENGTH, String(answer.headerLength)), answer),
      );
    }
    const tensors = request.body.encoding === "base64" ? tensorBase64 : tensorJson;
    return respond(
      request,
      ctx,
      (out) => service.encodeJson(out, tensors, ctx),
      (body) => sendPooled(reply.type(JSON_TYPE), body),
    );
  });

  /**
   * Asks the service for the answer and sends it: at once when it is ready at once (undefined for
   * fastify: sent), else when the promise settles. The binary part views the body's memory, which the
   * request may read after a wait (a slot for a large answer): held until the answer is sent, even if
   * the client leaves first.
   */
  const respond = <T>(
    request: FastifyRequest<{ Body: DifferentiateInput }>,
    ctx: HttpCallContext,
    encode: (out: DifferentiateOutput, memory: AnswerMemory) => T | Promise<T>,
    send: (answer: T) => FastifyReply,
  ): Promise<FastifyReply> | undefined => {
    const lease = request.bodyLease;
    lease?.hold();
    const sent = thenFinally(
      () => service.differentiateEncoded(request.body, ctx, encode),
      send,
      () => lease?.release(),
    );
    return sent instanceof Promise ? sent : undefined;
  };

  minimizeRoute(app, service);

  app.post<{ Body: { function: FunctionSpec } }>("/v1/functions", { schema: { body: ref("RegisterRequest") } }, async (request, reply) => {
    const { info, created } = await service.registerFunction(request.body.function, new HttpCallContext(request, reply));
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
  app.get("/metrics", async (_request, reply) => reply.type(metrics.registry.contentType).send(await metrics.exposition()));
  app.get("/openapi.yaml", async (_request, reply) => reply.type("application/yaml; charset=utf-8").send(openapi.text));

  await app.register(fastifySwagger, { mode: "static", specification: { document: openapi.doc as never } });
  await app.register(fastifySwaggerUi, { routePrefix: "/docs" });
  await app.register(pageRoutes);
}

// Not encapsulated: the parsers, hooks and handlers apply to the whole server.
(adjointRoutes as unknown as Record<symbol, boolean>)[Symbol.for("skip-override")] = true;

/**
 * Admission, before fastify reads the body: from Content-Length (a chunked body is taken as large and
 * counted as it arrives). A refusal is answered at once, and the connection closed rather than left
 * to drain a body nobody reads. Requests without a body (health, readiness, metrics, lookups) are not counted,
 * so that probes answer under load. True when it answered.
 */
function admit(admission: Admission, request: FastifyRequest, reply: FastifyReply, waitMs: number): boolean | Promise<boolean> {
  const method = request.method;
  if (method === "GET" || method === "HEAD") return false;
  const declared = request.headers["content-length"];
  let bytes = 0;
  if (declared !== undefined) {
    bytes = Number(declared);
    // fastify refuses a body over its limit (413) before reading it: nothing to count.
    if (!(bytes <= (request.routeOptions.bodyLimit ?? Number.POSITIVE_INFINITY))) return false;
  } else if (request.headers["transfer-encoding"] !== undefined) bytes = LARGE_BODY + 1;
  const verdict = admission.admitOrWait(bytes, waitMs);
  return verdict instanceof Promise
    ? verdict.then((refused) => settle(admission, request, reply, bytes, refused))
    : settle(admission, request, reply, bytes, verdict);
}

/** Answers a refusal (true), or holds the admitted slot until the exchange ends (false). */
function settle(
  admission: Admission,
  request: FastifyRequest,
  reply: FastifyReply,
  bytes: number,
  refused: ShedReason | undefined,
): boolean {
  if (refused !== undefined) {
    // The body is not read: the connection is closed rather than left to drain it.
    if (bytes > 0) reply.header("connection", "close");
    sendProblem(reply, overloaded("http", refused));
    return true;
  }
  if (reply.raw.destroyed) {
    // The client left while waiting for a slot: give it back; there is no one to answer.
    admission.release(bytes);
    return true;
  }
  request.admitted = bytes;
  // "close" comes once, whether the answer was sent, the client left or a timeout cut the connection.
  reply.raw.once("close", () => admission.release(request.admitted ?? 0));
  return false;
}

function countingStream(admission: Admission, request: FastifyRequest, reply: FastifyReply): Transform {
  let received = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      received += chunk.byteLength;
      const held = request.admitted ?? 0;
      if (received <= held) return callback(null, chunk);
      request.admitted = received;
      if (!admission.grow(received - held)) {
        reply.header("connection", "close");
        return callback(overloaded("http", "bytes"));
      }
      callback(null, chunk);
    },
  });
}

/** A binary answer, in one piece or as a stream of its parts (the batch memory they view is given back once the exchange is over). */
function sendParts(reply: FastifyReply, answer: BinaryAnswer): FastifyReply {
  if (answer.parts.length === 1) return reply.send(answer.parts[0]);
  if (answer.release !== undefined) reply.raw.once("close", answer.release);
  return reply.header("content-length", String(answer.length)).send(Readable.from(answer.parts));
}

/** Sends an answer; one made in pooled memory (a large one) goes back to the pool once the response is over. */
function sendPooled(reply: FastifyReply, body: string | Buffer): FastifyReply {
  if (typeof body !== "string") reply.raw.once("close", () => releaseShared(body));
  return reply.send(body);
}

function wantsBinary(request: FastifyRequest): boolean {
  return request.headers.accept?.includes(BINARY_TYPE) ?? false;
}

/**
 * The client's disconnect cancels the work; the framed body's binary part travels with the request.
 * The signal (and its listener) is made only when the service asks for it: only pool jobs do. A class
 * rather than an object literal with a getter, which V8 builds slowly, once per request.
 */
class HttpCallContext implements CallContext {
  private controller: AbortController | undefined;
  readonly binary: Uint8Array | undefined;

  constructor(
    request: FastifyRequest,
    private readonly reply: FastifyReply,
  ) {
    this.binary = request.binaryPart;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const c = new AbortController();
      this.controller = c;
      const raw = this.reply.raw;
      if (raw.destroyed && !raw.writableFinished) c.abort(new Error("the client disconnected"));
      else raw.once("close", () => raw.writableFinished || c.abort(new Error("the client disconnected")));
    }
    return this.controller.signal;
  }
}
