/**
 * Which answered requests get an access-log line. Every one by default (ADJOINT_ACCESS_LOG_EVERY = 1);
 * with N > 1, one successful request in N — counted, not drawn at random, so that the volume is exact
 * and a line's `every` field scales its counts back — and every failure, which is what an operator
 * reads logs for. Both transports ask the same sampler, so N is per process, not per transport.
 */
export class AccessSampler {
  private sinceLast = 0;

  constructor(readonly every: number) {}

  /** Whether this request is logged; `failed` for a refusal or an error. */
  wants(failed: boolean): boolean {
    if (failed || this.every <= 1) return true;
    if (++this.sinceLast < this.every) return false;
    this.sinceLast = 0;
    return true;
  }
}
