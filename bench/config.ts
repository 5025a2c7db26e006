/** Run settings from the command line (see bench/README.md). */
export interface BenchConfig {
  /** Shorter warm-ups and fewer rounds: a smoke run, figures noisier. */
  readonly quick: boolean;
  /** Include the tfjs contenders. */
  readonly tfjs: boolean;
}

/** Scales a duration or count for quick runs. */
export function scaled(config: BenchConfig, full: number, quick: number): number {
  return config.quick ? quick : full;
}

/** A target's verdict; quick runs warm up too briefly to judge one. */
export function verdict(config: BenchConfig, met: boolean): string {
  const v = met ? "met" : "NOT met";
  return config.quick ? `${v} (quick run: warm-ups too short to judge)` : v;
}
