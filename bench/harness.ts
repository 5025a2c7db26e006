/**
 * Side-by-side timing for a shared, noisy machine: contenders run in interleaved rounds (A, B, C, A, B,
 * C, …, each round starting one contender later), so that drift and neighbours hit all of them alike;
 * each sample is a batch of calls timed together; figures are medians over rounds, and ratios are
 * medians of the per-round ratios, which cancel most of the drift that a ratio of medians would keep.
 */

export interface Contender {
  readonly name: string;
  /**
   * Makes `calls` calls, varying the point a little between calls, and returns a number computed
   * from the results, so that nothing can be optimised away.
   */
  readonly run: (calls: number) => number | Promise<number>;
  /** Untimed, before each sample: e.g. switch the tfjs backend. */
  readonly before?: () => unknown;
  /** Calls per sample; by default calibrated during warm-up so that a sample takes about targetMs. */
  readonly calls?: number;
  /** A note for the table, e.g. the result of its correctness check. */
  readonly note?: string;
}

export interface InterleaveOptions {
  /** Rounds to measure (fewer if maxMs runs out, but at least minRounds). */
  readonly rounds: number;
  readonly minRounds?: number;
  /** Target duration of one sample. */
  readonly targetMs: number;
  /** Round-robin warm-up before measuring, also used to calibrate calls per sample: at least this long… */
  readonly warmupMs: number;
  /**
   * …and, if set, until every contender has settled: its best per-call time has not improved by more
   * than 3% for this long (V8 optimises big generated functions in the background, late on a busy
   * machine), but no longer than warmupMaxMs.
   */
  readonly settleMs?: number;
  readonly warmupMaxMs?: number;
  /** Stop measuring after this long (once minRounds are done). */
  readonly maxMs?: number;
}

export interface Row {
  readonly name: string;
  readonly calls: number;
  readonly rounds: number;
  /** Per call, in microseconds: median, quartiles and minimum over rounds. */
  readonly medianUs: number;
  readonly p25Us: number;
  readonly p75Us: number;
  readonly minUs: number;
  readonly note?: string;
}

export interface Measurement {
  readonly rows: Row[];
  /** samples[round][contender]: microseconds per call. */
  readonly samples: number[][];
  /** Median over rounds of a's time ÷ b's time in the same round. */
  ratio(a: string, b: string): RatioSummary;
}

export interface RatioSummary {
  readonly median: number;
  readonly p25: number;
  readonly p75: number;
}

/** Everything contenders return ends up here, so no result is dead. */
export let sink = 0;

const now = (): number => Number(process.hrtime.bigint()) / 1e3;

async function sample(c: Contender, calls: number): Promise<number> {
  await c.before?.();
  const start = now();
  const r = c.run(calls);
  const value = typeof r === "number" ? r : await r;
  const us = now() - start;
  sink += value;
  return us / calls;
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function median(values: readonly number[]): number {
  return quantile(
    [...values].sort((x, y) => x - y),
    0.5,
  );
}

export async function interleave(contenders: readonly Contender[], options: InterleaveOptions): Promise<Measurement> {
  const k = contenders.length;
  const calls = contenders.map((c) => c.calls ?? 1);
  const estimate: number[] = new Array(k).fill(Number.NaN);
  // Warm-up, round-robin; calibrate calls per sample on the way (doubling, then from the last estimate).
  const warmStart = now();
  const settle = new Settle(k, (options.settleMs ?? 0) * 1e3);
  let warmRounds = 0;
  for (;;) {
    const t = now();
    const minimumDone = warmRounds >= 2 && t >= warmStart + options.warmupMs * 1e3;
    if (minimumDone && (settle.all(t) || t >= warmStart + (options.warmupMaxMs ?? options.warmupMs) * 1e3)) break;
    for (let i = 0; i < k; i++) {
      const perCall = await sample(contenders[i], calls[i]);
      settle.record(i, perCall, now());
      estimate[i] = Number.isNaN(estimate[i]) ? perCall : Math.min(perCall, 0.5 * estimate[i] + 0.5 * perCall);
      if (contenders[i].calls === undefined) {
        calls[i] = Math.max(1, Math.min(calls[i] * 4, Math.round((options.targetMs * 1e3) / estimate[i])));
      }
    }
    warmRounds++;
  }
  for (let i = 0; i < k; i++) {
    if (contenders[i].calls === undefined) calls[i] = Math.max(1, Math.round((options.targetMs * 1e3) / estimate[i]));
  }

  const samples: number[][] = [];
  const start = now();
  const minRounds = options.minRounds ?? Math.min(5, options.rounds);
  for (let r = 0; r < options.rounds; r++) {
    if (r >= minRounds && options.maxMs !== undefined && now() - start > options.maxMs * 1e3) break;
    const row: number[] = new Array(k);
    for (let j = 0; j < k; j++) {
      const i = (r + j) % k;
      row[i] = await sample(contenders[i], calls[i]);
    }
    samples.push(row);
  }

  const rows = contenders.map((c, i): Row => {
    const s = samples.map((row) => row[i]).sort((x, y) => x - y);
    return {
      name: c.name,
      calls: calls[i],
      rounds: s.length,
      medianUs: quantile(s, 0.5),
      p25Us: quantile(s, 0.25),
      p75Us: quantile(s, 0.75),
      minUs: s[0],
      ...(c.note === undefined ? {} : { note: c.note }),
    };
  });
  const index = (name: string): number => {
    const i = contenders.findIndex((c) => c.name === name);
    if (i < 0) throw new Error(`no contender named ${name}`);
    return i;
  };
  return {
    rows,
    samples,
    ratio(a, b) {
      const ia = index(a);
      const ib = index(b);
      const ratios = samples.map((row) => row[ia] / row[ib]).sort((x, y) => x - y);
      return { median: quantile(ratios, 0.5), p25: quantile(ratios, 0.25), p75: quantile(ratios, 0.75) };
    },
  };
}

/**
 * Tracks whether series of per-call times have settled. Noise only ever adds time, so the best time
 * so far marks progress (V8 optimising another function, a tier switch). A series has settled when its
 * best has improved by no more than 3% over the last `quiet` (in all: 40 chunks optimised one by one
 * each gain little) and its recent median is back near that best (while V8 compiles big functions in
 * the background, calls can run slower than they did interpreted).
 */
export class Settle {
  private readonly bests: { at: number; best: number }[][];
  private readonly recent: { at: number; perCall: number }[][];

  constructor(
    count: number,
    private readonly quietUs: number,
    private readonly tolerance = 0.03,
    private readonly nearBest = 1.5,
  ) {
    this.bests = Array.from({ length: count }, () => []);
    this.recent = Array.from({ length: count }, () => []);
  }

  record(i: number, perCall: number, at: number): void {
    const bests = this.bests[i];
    if (bests.length === 0 || perCall < bests[bests.length - 1].best) bests.push({ at, best: perCall });
    const recent = this.recent[i];
    recent.push({ at, perCall });
    // Keep the last second (and at least a few samples) for the median.
    while (recent.length > 8 && at - recent[0].at > 1e6) recent.shift();
  }

  settled(i: number, at: number): boolean {
    const bests = this.bests[i];
    if (bests.length === 0 || at - bests[0].at < this.quietUs) return false;
    let then = bests[0].best;
    for (const b of bests) if (b.at <= at - this.quietUs) then = b.best;
    const best = bests[bests.length - 1].best;
    if (best < (1 - this.tolerance) * then) return false;
    return median(this.recent[i].map((r) => r.perCall)) <= this.nearBest * best;
  }

  all(at: number): boolean {
    return this.bests.every((_, i) => this.settled(i, at));
  }
}

/** Relative error of a against a reference: |a − ref| / max(|ref|, floor). */
export function relativeError(a: number, ref: number, floor = 1e-300): number {
  return Math.abs(a - ref) / Math.max(Math.abs(ref), floor);
}

/** Largest |a[i] − ref[i]|, relative to the largest |ref[i]|. */
export function maxRelativeError(a: ArrayLike<number>, ref: ArrayLike<number>): number {
  let err = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    err = Math.max(err, Math.abs(a[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return err / (scale || 1);
}
