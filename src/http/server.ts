import { randomUUID } from "node:crypto";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import type { Logger } from "pino";
import type { Metrics } from "../service/metrics.js";
import type { AdjointService } from "../service/service.js";
import { adjointRoutes } from "./routes.js";

export interface HttpServerOptions {
  readonly service: AdjointService;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly bodyLimit: number;
}

/** A request id from the client's x-request-id when it is a sensible token, else a fresh one. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

export async function buildHttpServer(options: HttpServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    // One line per request, written by the routes' onResponse hook (with route, status and time).
    logController: new LogController({ disableRequestLogging: true }),
    genReqId: (req) => {
      const given = req.headers["x-request-id"];
      return typeof given === "string" && REQUEST_ID.test(given) ? given : randomUUID();
    },
    bodyLimit: options.bodyLimit,
    return503OnClosing: true,
    ajv: {
      // Schemas are OpenAPI 3.1 (x- keywords allowed); no coercion, no silent removal of unknown fields.
      customOptions: { strict: false, coerceTypes: false, removeAdditional: false, useDefaults: false, verbose: true, allErrors: false },
    },
  });
  await app.register(adjointRoutes, { service: options.service, metrics: options.metrics });
  return app;
}
