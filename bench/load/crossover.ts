import { availableParallelism } from "node:os";
import { WorkerPool } from "../../src/runtime/pool.js";
import { estimateUs, vectorises } from "../../src/runtime/scheduler.js";
import { loadConfig } from "../../src/service/config.js";
import { Metrics } from "../../src/service/metrics.js";
import { AdjointService } from "../../src/service/service.js";
import type { DifferentiateInput } from "../../src/service/types.js";

/**
 * Where the worker pool starts to pay: the same batch through the service forced inline and forced
 * onto the pool, for growing batch sizes. `node dist/bench/load/crossover.js` (CROSSOVER_MS per
 * measurement, default 400). The inline/pool decision (src/runtime/scheduler.ts) is calibrated on it.
 */
const BUDGET_MS = Number(process.env.CROSSOVER_MS ?? 400);
const workers = Number(process.env.CROSSOVER_WORKERS ?? Math.max(2, availableParallelism()));

const config = loadConfig([], {}, { workers, timeLimitMs: 600_000, queueSize: 10_000 });
const pool = new WorkerPool({ workers, queueSize: 10_000, cacheSize: 100 });
const metrics = new Metrics(() => pool, false);
const inline = new AdjointService({ ...config, inlineBudgetUs: Number.POSITIVE_INFINITY }, pool, metrics);
const pooled = new AdjointService({ ...config, inlineBudgetUs: -1 }, pool, metrics);
await inline.start();

/** Median microseconds of a request, repeated for about BUDGET_MS. */
async function median(service: AdjointService, input: DifferentiateInput): Promise<number> {
  await service.differentiate(input);
  const times: number[] = [];
  const end = performance.now() + BUDGET_MS;
  while (performance.now() < end || times.length < 5) {
    const t = performance.now();
    await service.differentiate(input);
    times.push((performance.now() - t) * 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const terms = (n: number) => Array.from({ length: n }, (_, i) => `sin(x1*${(1 + i / 100).toFixed(2)})*x2`).join("+");
const cases: { name: string; expression: string; mode: string }[] = [
  { name: "W1, reverse (vectorised)", expression: "x1*exp(-0.5*(x1^2+x2^2))", mode: "reverse" },
  { name: "W1, forward gradient (per point)", expression: "x1*exp(-0.5*(x1^2+x2^2))", mode: "forward" },
  { name: "~300 ops, reverse (vectorised)", expression: terms(100), mode: "reverse" },
  { name: "~300 ops, forward gradient (per point)", expression: terms(100), mode: "forward" },
];

const ping = performance.now();
for (let i = 0; i < 200; i++) await pool.run({ kind: "ping" });
process.stdout.write(`pool round trip (empty task): ${(((performance.now() - ping) / 200) * 1000).toFixed(1)} µs; ${workers} workers\n\n`);

for (const c of cases) {
  process.stdout.write(`${c.name}\n  points   inline µs   pool µs   estimate µs\n`);
  let crossover: number | undefined;
  for (const n of [1, 10, 100, 1000, 10_000, 100_000]) {
    const x1 = Array.from({ length: n }, (_, i) => Math.sin(i));
    const x2 = Array.from({ length: n }, (_, i) => Math.cos(i));
    const input: DifferentiateInput = { function: { expression: c.expression }, columns: { x1, x2 }, mode: c.mode };
    const a = await median(inline, input);
    const b = await median(pooled, input);
    const entry = inline.functions.resolve(input.function);
    const sweeps = c.mode === "forward" ? 4 : 3;
    const vectorised = vectorises(entry.fn, { mode: c.mode as "reverse" }, n);
    if (crossover === undefined && b < a) crossover = n;
    process.stdout.write(
      `  ${String(n).padStart(6)}  ${a.toFixed(0).padStart(10)}  ${b.toFixed(0).padStart(8)}  ${estimateUs(entry.work, sweeps, n, vectorised).toFixed(0).padStart(12)}\n`,
    );
  }
  process.stdout.write(`  the pool is faster from ${crossover ?? "no size measured"} points\n\n`);
}
await inline.close();
