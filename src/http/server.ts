import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import type { Logger } from "pino";
import type { AccessSampler } from "../service/access-log.js";
import type { Admission } from "../service/admission.js";
import type { Metrics } from "../service/metrics.js";
import { requestId } from "../service/request-id.js";
import type { AdjointService } from "../service/service.js";
import { lazyRequestLogger } from "./request-logger.js";
import { adjointRoutes } from "./routes.js";
import { writeTogether } from "./write-together.js";

export interface HttpServerOptions {
  readonly service: AdjointService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly bodyLimit: number;
  readonly admission?: Admission;
  /** Which requests get an access-log line (absent: every one). */
  readonly accessLog?: AccessSampler;
  /** Headers and body must arrive within this long (ms), else the connection is closed. */
  readonly requestTimeoutMs?: number;
  /** A connection silent this long (ms) is closed. */
  readonly idleTimeoutMs?: number;
  /** A kept-alive connection with no new request this long (ms) is closed. */
  readonly keepAliveTimeoutMs?: number;
}

export async function buildHttpServer(options: HttpServerOptions): Promise<FastifyInstance> {
  const requestTimeout = options.requestTimeoutMs ?? 10_000;
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    // One line per request, written by the routes' onResponse hook (with route, status and time).
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyRequestLogger,
    genReqId: (req) => requestId(req.headers["x-request-id"]),
    bodyLimit: options.bodyLimit,
    return503OnClosing: true,
    // A slow client cannot hold a connection: the request must arrive within requestTimeout (Node
    // checks every connectionsCheckingInterval, 30 s by default, too coarse for a 10 s limit), and a
    // silent one is closed after the idle timeout.
    requestTimeout,
    connectionTimeout: options.idleTimeoutMs ?? 60_000,
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 72_000,
    http: {
      requestTimeout,
      headersTimeout: requestTimeout,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(requestTimeout / 4))),
    },
    ajv: {
      // Schemas are OpenAPI 3.1 (x- keywords allowed); no coercion, no silent removal of unknown fields.
      customOptions: { strict: false, coerceTypes: false, removeAdditional: false, useDefaults: false, verbose: true, allErrors: false },
    },
  });
  writeTogether(app);
  await app.register(adjointRoutes, {
    service: options.service,
    metrics: options.metrics,
    admission: options.admission,
    accessLog: options.accessLog,
    // A body waiting for a large slot must still arrive within the request timeout once admitted.
    admissionWaitMs: Math.min(5000, requestTimeout / 2),
  });
  return app;
}
