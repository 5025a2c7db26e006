import { examplesDir, type PythonContender, PythonSide, type PythonTiming } from "./python.js";

/**
 * M1, Rosenbrock n = 100 by L-BFGS-B from (−1.2, 1, …) with gtol 1e-10, ftol 1e-15: one POST
 * /v1/minimize (timed in this process, the HTTP exchange and the JSON answer included) against the
 * examples' Python gRPC client loop and scipy in-process with rosen_der (each timed in Python). As
 * bench/README.md asks: the same warm-up for every contender, then interleaved rounds (A, B, C; each
 * round starts one contender later), medians over rounds and the median of per-round ratios.
 */
const N = 100;
const ROSENBROCK = "sum(100*(x[1:] - x[:-1]^2)^2 + (1 - x[:-1])^2)";

type Contender = "post" | PythonContender;
const CONTENDERS: readonly Contender[] = ["post", "loop", "scipy"];

export interface M1Options {
  readonly warmups: number;
  readonly rounds: number;
}

export interface M1Result {
  readonly ms: Record<Contender, number>;
  readonly evaluations: Record<Contender, number>;
  readonly error: Record<Contender, number>;
  /** Per-round ratios over the POST: median and interquartile range. */
  readonly loopRatio: Spread;
  readonly scipyRatio: Spread;
  readonly rounds: readonly Record<Contender, number>[];
}

export interface Spread {
  readonly median: number;
  readonly q1: number;
  readonly q3: number;
}

export async function m1(base: string, grpcTarget: string, root: string, options: M1Options): Promise<M1Result> {
  const x0 = Array.from({ length: N }, (_, i) => (i % 2 === 0 ? -1.2 : 1));
  const body = JSON.stringify({
    function: { expression: ROSENBROCK, inputs: [{ name: "x", shape: [N] }] },
    start: { x: x0 },
    options: { gtol: 1e-10, ftol: 1e-15, maxIterations: 2000 },
  });
  const post = async (): Promise<PythonTiming> => {
    const t = performance.now();
    const r = await fetch(`${base}/v1/minimize`, { method: "POST", headers: { "content-type": "application/json" }, body });
    const out = (await r.json()) as { evaluations: number; point: { x: { data: number[] } } };
    const ms = performance.now() - t;
    if (!r.ok) throw new Error(`POST /v1/minimize: ${r.status} ${JSON.stringify(out)}`);
    return { ms, evaluations: out.evaluations, error: Math.max(...out.point.x.data.map((v) => Math.abs(v - 1))) };
  };
  const python = await PythonSide.start(examplesDir(root), grpcTarget, N);
  try {
    const once = (c: Contender) => (c === "post" ? post() : python.run(c));
    for (let w = 0; w < options.warmups; w++) for (const c of CONTENDERS) await once(c);
    const rounds: Record<Contender, number>[] = [];
    const last = {} as Record<Contender, PythonTiming>;
    for (let r = 0; r < options.rounds; r++) {
      const round = {} as Record<Contender, number>;
      for (let i = 0; i < CONTENDERS.length; i++) {
        const c = CONTENDERS[(r + i) % CONTENDERS.length];
        last[c] = await once(c);
        round[c] = last[c].ms;
      }
      rounds.push(round);
    }
    const pick = <T>(f: (c: Contender) => T) => Object.fromEntries(CONTENDERS.map((c) => [c, f(c)])) as Record<Contender, T>;
    return {
      ms: pick((c) => spread(rounds.map((r) => r[c])).median),
      evaluations: pick((c) => last[c].evaluations),
      error: pick((c) => last[c].error),
      loopRatio: spread(rounds.map((r) => r.loop / r.post)),
      scipyRatio: spread(rounds.map((r) => r.scipy / r.post)),
      rounds,
    };
  } finally {
    python.close();
  }
}

/** Median and quartiles (by the nearest rank). */
export function spread(values: readonly number[]): Spread {
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.round(q * (s.length - 1))))];
  return { median: at(0.5), q1: at(0.25), q3: at(0.75) };
}
