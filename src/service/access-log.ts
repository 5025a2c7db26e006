/**
 * Which answered requests get an access-log line. Every failure (a refusal or an error), which is what
 * an operator reads logs for. Successes: every one while they come at no more than `maxPerSecond` lines
 * in a second of the process (ADJOINT_ACCESS_LOG_MAX_PER_SECOND, 100 by default; 0: no bound), so that a
 * service answering tens of thousands of requests a second does not spend 7 % of its event loop
 * formatting lines nobody reads one by one (the metrics count every request). Past the bound, a success
 * gets no line, and the next line says how many did not (`unlogged`). With `every` N > 1
 * (ADJOINT_ACCESS_LOG_EVERY), only one success in N is a candidate at all — counted, not drawn at
 * random, so that the volume is exact and a line's `every` field scales its counts back. Both transports
 * ask the same sampler, so the bounds are per process, not per transport.
 */
/** What the sampler adds to a line it let through. */
export interface SampledLine {
  /** Set when one success in `every` is logged. */
  every?: number;
  /** Successes left without a line since the previous one, past the per-second bound. */
  unlogged?: number;
}

export class AccessSampler {
  private sinceLast = 0;
  private second = Number.NEGATIVE_INFINITY;
  private linesThisSecond = 0;
  private skipped = 0;
  /** For the request just let through: the successes the per-second bound left without a line before it (0 for a failure). */
  unlogged = 0;

  constructor(
    readonly every: number,
    readonly maxPerSecond = 0,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** Whether this request is logged; `failed` for a refusal or an error. */
  wants(failed: boolean): boolean {
    if (failed) {
      this.unlogged = 0;
      return true;
    }
    if (this.every > 1) {
      if (++this.sinceLast < this.every) return false;
      this.sinceLast = 0;
    }
    if (this.maxPerSecond > 0) {
      const second = Math.floor(this.clock() / 1000);
      if (second !== this.second) {
        this.second = second;
        this.linesThisSecond = 0;
      }
      if (this.linesThisSecond >= this.maxPerSecond) {
        this.skipped++;
        return false;
      }
      this.linesThisSecond++;
    }
    this.unlogged = this.skipped;
    this.skipped = 0;
    return true;
  }

  /** `line`, with what a reader needs to scale the counts back (`every`, `unlogged`), for a request `wants` just let through. */
  mark<Line extends SampledLine>(line: Line): Line {
    if (this.every > 1) line.every = this.every;
    if (this.unlogged > 0) line.unlogged = this.unlogged;
    return line;
  }
}
