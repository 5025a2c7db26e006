import { canVectorize } from "../engine/batch.js";
import type { CompiledFunction, EvaluateRequest } from "../engine/compiled-function.js";
import type { Graph } from "../ir/graph.js";
import { findOp } from "../ops/registry.js";
import { costOf } from "../ops/types.js";

/**
 * Inline or pool, and how to split: decided by an estimate of the job's cost. A pool round trip costs
 * tens to hundreds of microseconds (60–180 µs measured on the 2-core machine), while a small function
 * evaluates in microseconds, so small jobs run on the event loop and only big ones pay for workers.
 * The constants are fitted to bench/load/crossover.ts; docs/service.md has the measurements.
 */
export const COST = {
  /** The engine's vectorised pass (all-scalar elementwise functions): per point, and per unit of work. */
  vectorised: { nsPerPoint: 150, nsPerUnit: 5 },
  /** Point-by-point evaluation (tensors, traces, modes that do not vectorise). */
  perPoint: { nsPerPoint: 4000, nsPerUnit: 20 },
  /** Batches smaller than this go point by point even when they could vectorise (a pass has a fixed cost). */
  vectoriseFrom: 8,
  /**
   * Functions with more work than this per sweep never run inline, however few the points: their first
   * call compiles programs (reverse graph, code generation) and a call may take long, which must not
   * block the event loop.
   */
  inlineMaxWork: 20_000,
  /**
   * Derived graphs estimated larger than this are never built on the event loop (8,192 nodes: a few
   * milliseconds to derive and compile, once per function); the engine also stops an inline build
   * that grows past it, and the request moves to the pool.
   */
  inlineMaxNodes: 8192,
  /** A trace's rows (nodes × points) cost about this much each to record and shape; large traces go to the pool. */
  nsPerTraceRow: 2000,
  /** Each pool task should carry at least this much work, so that the round trip is a small share of it. */
  minTaskUs: 500,
} as const;

/**
 * Units of work in one evaluation sweep of a graph: the sum of each op node's cost as its op counts
 * it (OpDef.cost: the output's elements by default, multiply-adds for products and convolutions).
 * An estimate for scheduling only (see COST).
 */
export function graphWork(graph: Graph): number {
  let work = 0;
  for (const node of graph.nodes) {
    if (node.op === "input" || node.op === "const") continue;
    const def = findOp(node.op);
    if (!def) throw new Error(`op ${node.op} is not in the table`);
    work += costOf(
      def,
      node.args.map((a) => graph.nodes[a].shape),
      node.shape,
      node.attrs,
    );
  }
  return work;
}

/**
 * Whether a batch goes through the engine's vectorised pass (engine/batch.ts): what the engine says it
 * can vectorise, for enough points to be worth a pass.
 */
export function vectorises(fn: CompiledFunction, request: EvaluateRequest, points: number): boolean {
  return points >= COST.vectoriseFrom && canVectorize(fn, request);
}

/** Estimated microseconds for `points` points of a function of `work` units per sweep, `sweeps` sweeps each. */
export function estimateUs(work: number, sweeps: number, points: number, vectorised = false): number {
  const c = vectorised ? COST.vectorised : COST.perPoint;
  return (points * (c.nsPerPoint + work * sweeps * c.nsPerUnit)) / 1000;
}

export type Placement = "inline" | "pool";

/**
 * Inline only what is provably small: little work per sweep, a small estimated cost, and derived
 * graphs (`derivedNodes`, estimated from the mode before anything is built) small enough to build here.
 */
export function place(work: number, estimatedUs: number, inlineBudgetUs: number, derivedNodes = 0): Placement {
  return work <= COST.inlineMaxWork && estimatedUs <= inlineBudgetUs && derivedNodes <= COST.inlineMaxNodes ? "inline" : "pool";
}

/** Splits points [0, count) into at most `workers` contiguous ranges of at least COST.minTaskUs each. */
export function splitRanges(count: number, estimatedUs: number, workers: number): [number, number][] {
  const byCost = Math.max(1, Math.floor(estimatedUs / COST.minTaskUs));
  const parts = Math.max(1, Math.min(workers, byCost, count));
  const ranges: [number, number][] = [];
  for (let p = 0; p < parts; p++) ranges.push([Math.floor((p * count) / parts), Math.floor(((p + 1) * count) / parts)]);
  return ranges;
}
