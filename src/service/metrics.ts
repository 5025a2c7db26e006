import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { AggregatorRegistry, Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";
import type { TaskResult } from "../runtime/task.js";
import type { Admission, ShedReason } from "./admission.js";
import { CellCounter, CellHistogram, type CounterCell, type HistogramCell } from "./metric-cells.js";

/** What the pool reports for the utilisation gauges. */
export interface PoolGauge {
  readonly workers: number;
  readonly queued: number;
  readonly utilization: number;
  /** Estimated µs of work taken on and not finished. */
  readonly queuedUs?: number;
}

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The request, cache and job counters and histograms that the service updates as it works. Those
 * recorded on every request are cells (metric-cells.ts); the rare ones are prom-client's own.
 */
function jobMetrics(registers: Registry[]) {
  return {
    requests: new CellCounter<"transport" | "route" | "status">(
      "adjoint_requests_total",
      "Requests answered, by transport, route (HTTP route or gRPC method) and status",
      registers,
    ),
    latency: new CellHistogram<"transport" | "route" | "status">(
      "adjoint_request_duration_seconds",
      "Time from request to answer, by transport, route and status",
      LATENCY_BUCKETS,
      registers,
    ),
    queueWait: new CellHistogram<never>(
      "adjoint_pool_queue_wait_seconds",
      "Time a pool task waited for a worker",
      LATENCY_BUCKETS,
      registers,
    ),
    compute: new CellHistogram<"where">(
      "adjoint_compute_seconds",
      "Time spent evaluating, inline on the event loop or in a worker (per pool task)",
      LATENCY_BUCKETS,
      registers,
    ),
    cache: new CellCounter<"cache" | "result">(
      "adjoint_cache_lookups_total",
      "Function cache lookups: source (spec text to hash), compiled (by hash), registry (by id), worker (per pool task)",
      registers,
    ),
    placements: new CellCounter<"where">("adjoint_jobs_total", "Evaluation jobs by where they ran (inline or pool)", registers),
    helperChunks: new Counter({
      name: "adjoint_matmul_helper_chunks_total",
      help: "Chunks of large matrix products computed by the workers' helper threads (ADJOINT_MATMUL_HELPERS) rather than by the workers themselves",
      registers,
    }),
    cancelled: new Counter({
      name: "adjoint_jobs_cancelled_total",
      help: "Jobs stopped, or not started, because their deadline passed or the client went away (pool tasks are aborted)",
      labelNames: ["reason"] as const,
      registers,
    }),
  };
}

/** Gauges read from the pool at scrape time (0 while there is no pool). */
function registerPoolGauges(registers: Registry[], pool: () => PoolGauge | undefined): void {
  new Gauge({
    name: "adjoint_pool_workers",
    help: "Worker threads in the pool",
    registers,
    collect() {
      this.set(pool()?.workers ?? 0);
    },
  });
  new Gauge({
    name: "adjoint_pool_queued_tasks",
    help: "Pool tasks waiting for a worker",
    registers,
    collect() {
      this.set(pool()?.queued ?? 0);
    },
  });
  new Gauge({
    name: "adjoint_pool_utilization",
    help: "Share of the pool's capacity used since start (0–1)",
    // In a cluster: the pools' mean, as every pool has as many workers.
    aggregator: "average",
    registers,
    collect() {
      this.set(pool()?.utilization ?? 0);
    },
  });
}

/** Gauges of the load taken on and not finished: admitted requests and bytes, and the pool's queued work. */
function registerLoadGauges(registers: Registry[], admissions: readonly Admission[], pool: () => PoolGauge | undefined): void {
  new Gauge({
    name: "adjoint_inflight_requests",
    help: "Requests admitted and not yet answered, by transport",
    labelNames: ["transport"],
    registers,
    collect() {
      for (const a of admissions) this.set({ transport: a.transport }, a.requests);
    },
  });
  new Gauge({
    name: "adjoint_inflight_bytes",
    help: "Request body bytes admitted and not yet answered, by transport",
    labelNames: ["transport"],
    registers,
    collect() {
      for (const a of admissions) this.set({ transport: a.transport }, a.bytes);
    },
  });
  new Gauge({
    name: "adjoint_pool_queued_work_seconds",
    help: "Estimated work taken on by the pool and not finished (the bound of the queue by time)",
    registers,
    collect() {
      this.set((pool()?.queuedUs ?? 0) / 1e6);
    },
  });
}

/** The event-loop delay gauge; returns the monitor so that close() can stop it. */
function registerLoopDelay(registers: Registry[]): IntervalHistogram {
  // How long the event loop was held since the last scrape: the delay any request waited for it.
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  new Gauge({
    name: "adjoint_event_loop_delay_seconds",
    help: "Event-loop delay since the previous scrape: its p50, p99 and max (quantile label); in a cluster, the worst process's",
    labelNames: ["quantile"],
    aggregator: "max",
    registers,
    collect() {
      if (loopDelay.count > 0) {
        this.set({ quantile: "0.5" }, loopDelay.percentile(50) / 1e9);
        this.set({ quantile: "0.99" }, loopDelay.percentile(99) / 1e9);
        this.set({ quantile: "1" }, loopDelay.max / 1e9);
      }
      loopDelay.reset();
    },
  });
  return loopDelay;
}

/**
 * The service's Prometheus metrics, on a registry of their own (so that several servers in one process,
 * as in the tests, do not collide). Served as text at GET /metrics.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests: CellCounter<"transport" | "route" | "status">;
  private readonly latency: CellHistogram<"transport" | "route" | "status">;
  private readonly queueWait: CellHistogram<never>;
  private readonly compute: CellHistogram<"where">;
  private readonly cache: CellCounter<"cache" | "result">;
  private readonly placements: CellCounter<"where">;
  readonly cancelled: Counter<"reason">;
  private readonly helperChunks: Counter;
  readonly shed: Counter<"transport" | "reason">;
  private readonly admissions: Admission[] = [];
  private readonly loopDelay: IntervalHistogram;
  /** In a cluster: the whole service's exposition, gathered by the primary. */
  private wholeService?: () => Promise<string>;

  constructor(pool: () => PoolGauge | undefined, defaultMetrics = true) {
    // Registration order is the order of GET /metrics, so the groups below keep it.
    const registers = [this.registry];
    const jobs = jobMetrics(registers);
    this.requests = jobs.requests;
    this.latency = jobs.latency;
    this.queueWait = jobs.queueWait;
    this.compute = jobs.compute;
    this.cache = jobs.cache;
    this.placements = jobs.placements;
    this.cancelled = jobs.cancelled;
    this.helperChunks = jobs.helperChunks;
    registerPoolGauges(registers, pool);
    this.shed = new Counter({
      name: "adjoint_requests_shed_total",
      help: "Requests refused for load before their body was read or decoded, by transport and the limit reached (requests, large, bytes)",
      labelNames: ["transport", "reason"],
      registers,
    });
    registerLoadGauges(registers, this.admissions, pool);
    this.loopDelay = registerLoopDelay(registers);
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Serves every process's metrics together (summed, or as each gauge says) at GET /metrics, whichever
   * process a scrape reaches: `gather` asks the primary, which asks every process for its registry.
   */
  shareWithCluster(gather: () => Promise<string>): void {
    AggregatorRegistry.setRegistries([this.registry]);
    // Constructing one makes prom-client answer the primary's requests for this process's metrics.
    new AggregatorRegistry();
    this.wholeService = gather;
  }

  /** The text served at GET /metrics. */
  exposition(): Promise<string> {
    return this.wholeService?.() ?? this.registry.metrics();
  }

  /** Reports a transport's admission in the in-flight gauges. */
  trackAdmission(admission: Admission): void {
    this.admissions.push(admission);
  }

  shedRequest(transport: "http" | "grpc", reason: ShedReason): void {
    this.shed.inc({ transport, reason });
  }

  /** Stops the event-loop monitor (its sampling timer). */
  close(): void {
    this.loopDelay.disable();
  }

  private readonly inline = {
    compute: undefined as HistogramCell | undefined,
    job: undefined as CounterCell | undefined,
  };
  private readonly pool = {
    wait: undefined as HistogramCell | undefined,
    compute: undefined as HistogramCell | undefined,
    job: undefined as CounterCell | undefined,
  };
  /** By transport, route and status: three lookups of strings and numbers already made, rather than a key built every request. */
  private readonly requestCells = new Map<string, Map<string, Map<string | number, { count: CounterCell; time: HistogramCell }>>>();

  /** An inline evaluation and its time. */
  ranInline(seconds: number): void {
    const cells = this.inline;
    cells.compute ??= this.compute.cell("inline", { where: "inline" });
    cells.job ??= this.placements.cell("inline", { where: "inline" });
    cells.compute.observe(seconds);
    cells.job.inc();
  }

  /** A pool job placed. */
  ranOnPool(): void {
    this.pool.job ??= this.placements.cell("pool", { where: "pool" });
    this.pool.job.inc();
  }

  /**
   * A pool task done: how long it waited for a worker (from `postedAt`, ms since the epoch) and how long
   * it computed, whether its worker had the function compiled, and what the worker's helpers computed.
   */
  ranTask(result: TaskResult, postedAt: number): void {
    const cells = this.pool;
    cells.wait ??= this.queueWait.cell("", {});
    cells.compute ??= this.compute.cell("pool", { where: "pool" });
    cells.wait.observe(Math.max(0, result.startedAt - postedAt) / 1000);
    cells.compute.observe((result.finishedAt - result.startedAt) / 1000);
    this.cacheLookup("worker", result.compiled ? "miss" : "hit");
    if (result.helpedChunks) this.helperChunks.inc(result.helpedChunks);
  }

  cacheLookup(cache: string, result: "hit" | "miss"): void {
    this.cache.cell(`${cache}|${result}`, { cache, result }).inc();
  }

  /** Records one answered request. */
  observe(transport: "http" | "grpc", route: string, status: string | number, seconds: number): void {
    let byRoute = this.requestCells.get(transport);
    if (byRoute === undefined) this.requestCells.set(transport, (byRoute = new Map()));
    let byStatus = byRoute.get(route);
    if (byStatus === undefined) byRoute.set(route, (byStatus = new Map()));
    let cells = byStatus.get(status);
    if (cells === undefined) {
      const key = `${transport}|${route}|${status}`;
      const labels = { transport, route, status: String(status) };
      cells = { count: this.requests.cell(key, labels), time: this.latency.cell(key, labels) };
      byStatus.set(status, cells);
    }
    cells.count.inc();
    cells.time.observe(seconds);
  }
}
