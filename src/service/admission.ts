import { RetryableError } from "./errors.js";

/** Bodies above this many bytes are "large": they draw on their own, smaller allowance. */
export const LARGE_BODY = 64 * 1024;

export interface AdmissionLimits {
  /** Requests in flight. */
  readonly maxInflight: number;
  /** Body bytes in flight. */
  readonly maxInflightBytes: number;
  /** Large-body requests in flight (a share of maxInflight). */
  readonly maxInflightLarge: number;
}

/** Why a request was refused, for the metrics. */
export type ShedReason = "requests" | "bytes" | "large";

/**
 * Admission for one transport: how many requests, large requests and body bytes are in flight, and
 * whether one more fits. It decides before a body is parsed (HTTP: from Content-Length, before it is
 * read; gRPC: before the message is decoded), so overload costs a refusal, not the parsing. A few
 * counter updates per request: no allocation, no timer.
 */
export class Admission {
  requests = 0;
  bytes = 0;
  large = 0;

  constructor(
    readonly transport: "http" | "grpc",
    readonly limits: AdmissionLimits,
    private readonly onShed: (reason: ShedReason) => void = () => {},
  ) {}

  /** Takes a slot for a request of `bytes` (its declared or received body), or says why not. */
  tryAdmit(bytes: number): ShedReason | undefined {
    const big = bytes > LARGE_BODY;
    const { maxInflight, maxInflightBytes, maxInflightLarge } = this.limits;
    let refused: ShedReason | undefined;
    if (this.requests >= maxInflight) refused = "requests";
    else if (big && this.large >= maxInflightLarge) refused = "large";
    // A lone request is always let through up to the body limit, else one larger than the budget could never run.
    else if (this.requests > 0 && this.bytes + bytes > maxInflightBytes) refused = "bytes";
    if (refused !== undefined) {
      this.onShed(refused);
      return refused;
    }
    this.requests++;
    this.bytes += bytes;
    if (big) this.large++;
    return undefined;
  }

  /**
   * Counts more bytes against a request admitted as large (a chunked body, as it arrives): false when
   * that takes the transport over its byte budget.
   */
  grow(by: number): boolean {
    this.bytes += by;
    return this.bytes <= this.limits.maxInflightBytes || this.requests === 1;
  }

  release(bytes: number): void {
    this.requests--;
    this.bytes -= bytes;
    if (bytes > LARGE_BODY) this.large--;
  }
}

/** The refusal a client sees: come back in a second. */
export function overloaded(transport: "http" | "grpc", reason: ShedReason): RetryableError {
  const what =
    reason === "requests"
      ? "too many requests in flight (ADJOINT_MAX_INFLIGHT)"
      : reason === "large"
        ? "too many large requests in flight (ADJOINT_MAX_INFLIGHT_LARGE)"
        : "too many request bytes in flight (ADJOINT_MAX_INFLIGHT_BYTES)";
  return new RetryableError("resource_exhausted", `the server is busy: ${what} on ${transport}; retry later`, 1);
}
