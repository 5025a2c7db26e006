import { RetryableError } from "./errors.js";

/** Bodies above this many bytes are "large": they draw on their own, smaller allowance. */
export const LARGE_BODY = 64 * 1024;

/** Large requests that may wait for a slot at once (each holds a socket and a little buffer). */
export const MAX_WAITING_LARGE = 64;

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
 * A few slots taken in turn: a taker who finds them all taken may wait, first come first served, at
 * most `maxWaiting` at once and each at most its timeout. A freed slot passes straight to the next
 * waiter. Large requests (bodies, answers) go through these, so that the event loop works on one at a
 * time while cheap requests pass by.
 */
export class Slots {
  used = 0;
  private readonly waiting: ((granted: boolean) => void)[] = [];

  constructor(
    private readonly size: () => number,
    private readonly maxWaiting = MAX_WAITING_LARGE,
  ) {}

  tryTake(): boolean {
    if (this.used >= this.size()) return false;
    this.used++;
    return true;
  }

  /** A slot now (true), in turn (a promise), or none (false: none came in time, or too many wait). */
  take(timeoutMs: number): boolean | Promise<boolean> {
    if (this.tryTake()) return true;
    if (this.waiting.length >= this.maxWaiting) return false;
    return new Promise((resolve) => {
      const grant = (granted: boolean) => {
        clearTimeout(timer);
        resolve(granted);
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(grant), 1);
        resolve(false);
      }, timeoutMs);
      this.waiting.push(grant);
    });
  }

  give(): void {
    const next = this.waiting.shift();
    if (next) next(true);
    else this.used--;
  }
}

/**
 * Admission for one transport: how many requests, large requests and body bytes are in flight, and
 * whether one more fits. It decides before a body is parsed (HTTP: from Content-Length, before it is
 * read; gRPC: before the message is decoded), so overload costs a refusal, not the parsing. A few
 * counter updates per request: no allocation, no timer (unless a large request waits its turn).
 */
export class Admission {
  requests = 0;
  bytes = 0;
  /** Requests and bytes admitted so far (running counts, for the memory steward). */
  admitted = 0;
  admittedBytes = 0;
  readonly large: Slots;
  /** Bytes already in memory among requests waiting for a large slot (gRPC's; an HTTP body waits unread). */
  private waitingBytes = 0;

  constructor(
    readonly transport: "http" | "grpc",
    readonly limits: AdmissionLimits,
    private readonly onShed: (reason: ShedReason) => void = () => {},
  ) {
    this.large = new Slots(() => limits.maxInflightLarge);
  }

  /** Takes a slot for a request of `bytes` (its declared or received body), or says why not. */
  tryAdmit(bytes: number): ShedReason | undefined {
    const big = bytes > LARGE_BODY;
    const refused = this.refusal(bytes) ?? (big && !this.large.tryTake() ? "large" : undefined);
    if (refused !== undefined) return this.shed(refused);
    this.take(bytes);
    return undefined;
  }

  /**
   * Like tryAdmit, but a large request refused only because the large slots are taken may wait up to
   * `timeoutMs` for one (see Slots), its body unread: a client sending large bodies one after another
   * is served in turn instead of refused and reconnecting, and the waiting costs a socket, not a body.
   * A request whose bytes are already in memory (`held`: gRPC reads a message before any handler
   * runs) waits only while they fit the byte budget with the rest. Resolves to undefined once admitted.
   */
  admitOrWait(bytes: number, timeoutMs: number, held = false): ShedReason | undefined | Promise<ShedReason | undefined> {
    if (bytes <= LARGE_BODY) return this.tryAdmit(bytes);
    // Over the request count, or (bytes already held) over the byte budget: refused now. Otherwise the
    // turn comes first: the bytes of the large request ahead are gone by then.
    const early =
      this.requests >= this.limits.maxInflight
        ? "requests"
        : held && this.bytes + this.waitingBytes + bytes > this.limits.maxInflightBytes
          ? "bytes"
          : undefined;
    if (early !== undefined) return this.shed(early);
    const slot = this.large.take(timeoutMs);
    if (slot === true) return this.admitWithSlot(bytes);
    if (slot === false) return this.shed("large");
    const kept = held ? bytes : 0;
    this.waitingBytes += kept;
    return slot.then((granted) => {
      this.waitingBytes -= kept;
      return granted ? this.admitWithSlot(bytes) : this.shed("large");
    });
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
    if (bytes > LARGE_BODY) this.large.give();
  }

  /** Why the request and byte counts cannot take one more of `bytes`, if they cannot. */
  private refusal(bytes: number): ShedReason | undefined {
    if (this.requests >= this.limits.maxInflight) return "requests";
    // A lone request is always let through up to the body limit, else one larger than the budget could never run.
    if (this.requests > 0 && this.bytes + bytes > this.limits.maxInflightBytes) return "bytes";
    return undefined;
  }

  /** Admits a large request that holds a large slot already (or gives the slot back). */
  private admitWithSlot(bytes: number): ShedReason | undefined {
    const refused = this.refusal(bytes);
    if (refused !== undefined) {
      this.large.give();
      return this.shed(refused);
    }
    this.take(bytes);
    return undefined;
  }

  private take(bytes: number): void {
    this.requests++;
    this.admitted++;
    this.bytes += bytes;
    this.admittedBytes += bytes;
  }

  private shed(reason: ShedReason): ShedReason {
    this.onShed(reason);
    return reason;
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
