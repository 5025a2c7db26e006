import { AdjointError, type ErrorKind, type ErrorLocation } from "../errors.js";

/**
 * Error kinds to protocol codes, in one table: the HTTP status and the gRPC status code (numbers from
 * the gRPC spec, so this layer needs no gRPC import). The transports only look these up.
 */
export const ERROR_CODES: Readonly<Record<ErrorKind, { readonly http: number; readonly grpc: number; readonly title: string }>> = {
  invalid_argument: { http: 400, grpc: 3, title: "Invalid argument" },
  not_found: { http: 404, grpc: 5, title: "Not found" },
  // Limits: 413 (the request is too large); a full queue says 503 with Retry-After instead (see httpStatus).
  resource_exhausted: { http: 413, grpc: 8, title: "Resource exhausted" },
  deadline_exceeded: { http: 504, grpc: 4, title: "Deadline exceeded" },
  unavailable: { http: 503, grpc: 14, title: "Unavailable" },
  cancelled: { http: 499, grpc: 1, title: "Cancelled" },
  internal: { http: 500, grpc: 13, title: "Internal error" },
};

/** An AdjointError that asks the client to come back later (a full queue, a server shutting down). */
export class RetryableError extends AdjointError {
  constructor(
    kind: ErrorKind,
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(kind, message);
  }
}

export function httpStatus(e: AdjointError): number {
  if (e instanceof RetryableError) return 503;
  return ERROR_CODES[e.kind].http;
}

export function grpcCode(e: AdjointError): number {
  return ERROR_CODES[e.kind].grpc;
}

export function retryAfter(e: AdjointError): number | undefined {
  return e instanceof RetryableError ? e.retryAfterSeconds : undefined;
}

/** RFC 9457 problem details, with the location of the fault as extension members. */
export interface ProblemDetails extends ErrorLocation {
  type: string;
  title: string;
  status: number;
  detail: string;
  kind: ErrorKind;
  requestId?: string;
}

export function problemDetails(e: AdjointError, requestId?: string): ProblemDetails {
  const status = httpStatus(e);
  return {
    type: `urn:adjoint:problem:${e.kind.replace("_", "-")}`,
    title: ERROR_CODES[e.kind].title,
    status,
    detail: e.message,
    kind: e.kind,
    ...definedOnly(e.location),
    ...(requestId === undefined ? {} : { requestId }),
  };
}

function definedOnly(location: ErrorLocation): ErrorLocation {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(location)) if (v !== undefined) out[k] = v;
  return out as ErrorLocation;
}
