import type { FastifyReply, FastifyRequest } from "fastify";
import { AdjointError, asAdjointError, exhausted, invalid } from "../errors.js";
import { problemDetails, retryAfter } from "../service/errors.js";

interface AjvError {
  readonly keyword: string;
  readonly instancePath: string;
  readonly params: Record<string, unknown>;
  readonly message?: string;
  readonly parentSchema?: { description?: string; properties?: Record<string, unknown> };
}

/** `/points/3/x1` → `points[3].x1`. */
function fieldOf(instancePath: string): string {
  return instancePath
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce((acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc ? `${acc}.${part}` : part), "");
}

const join = (path: string, key: string) => (path ? `${path}.${key}` : key);

/**
 * A schema violation as a message naming the field. With one error per request (allErrors off), the
 * last error is the decisive one: for a oneOf, ajv lists the branches' errors first and the oneOf last,
 * and the schema's description says what was expected.
 */
export function validationError(errors: readonly AjvError[]): AdjointError {
  const e = errors[errors.length - 1];
  const path = fieldOf(e.instancePath);
  const where = path || "the request";
  switch (e.keyword) {
    case "required": {
      const field = join(path, String(e.params.missingProperty));
      return invalid(`${field} is required`, { field });
    }
    case "additionalProperties": {
      const field = join(path, String(e.params.additionalProperty));
      const known = Object.keys(e.parentSchema?.properties ?? {});
      return invalid(`${field}: unknown field${known.length ? `; ${where} has ${known.join(", ")}` : ""}`, { field });
    }
    case "oneOf":
    case "anyOf":
      return invalid(`${where}: ${e.parentSchema?.description ?? e.message}`, { field: path || undefined });
    case "enum":
      return invalid(`${where} must be one of ${(e.params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`, {
        field: path || undefined,
      });
    default:
      return invalid(`${where} ${e.message ?? "is invalid"}`, { field: path || undefined });
  }
}

/** fastify's own errors (body parsing, limits, media types, validation) as the service's error kinds. */
export function fromFastifyError(e: unknown, request: FastifyRequest): AdjointError {
  if (e instanceof AdjointError) return e;
  const err = e as { code?: string; validation?: AjvError[]; statusCode?: number; message?: string };
  if (err.validation) return validationError(err.validation);
  switch (err.code) {
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return invalid("the body is empty; send a JSON request");
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return exhausted(`the body is larger than the limit of ${request.routeOptions.bodyLimit ?? "?"} bytes (ADJOINT_BODY_LIMIT)`);
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new UnsupportedMediaType(`unsupported content type ${request.headers["content-type"] ?? "(none)"}`);
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return invalid(err.message ?? "bad request");
  return asAdjointError(e);
}

/** A 415: bad input, but its own HTTP status. */
export class UnsupportedMediaType extends AdjointError {
  constructor(message: string) {
    super(
      "invalid_argument",
      `${message}; send application/json, or application/vnd.adjoint+binary (or application/octet-stream) with Adjoint-Header-Length`,
    );
  }
}

/** The JSON parse error, with the parser's own words (what and where). */
export function malformedJson(text: string): AdjointError {
  try {
    JSON.parse(text);
  } catch (e) {
    return invalid(`the body is not valid JSON: ${(e as Error).message}`);
  }
  return invalid("the body is not acceptable JSON (keys such as __proto__ and constructor are refused)");
}

/** Sends an error as application/problem+json (with Retry-After when the client should come back). */
export function sendProblem(reply: FastifyReply, error: AdjointError): FastifyReply {
  const body = problemDetails(error, String(reply.request.id));
  if (error instanceof UnsupportedMediaType) body.status = 415;
  const after = retryAfter(error);
  if (after !== undefined) reply.header("retry-after", String(after));
  return reply.code(body.status).type("application/problem+json").send(JSON.stringify(body));
}
