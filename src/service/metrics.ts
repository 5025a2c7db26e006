import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { Admission, ShedReason } from "./admission.js";

/** What the pool reports for the utilisation gauges. */
export interface PoolGauge {
  readonly workers: number;
  readonly queued: number;
  readonly utilization: number;
  /** Estimated µs of work taken on and not finished. */
  readonly queuedUs?: number;
}

const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** The request, cache and job counters and histograms that the service updates as it works. */
function jobMetrics(registers: Registry[]) {
  return {
    requests: new Counter({
      name: "adjoint_requests_total",
      help: "Requests answered, by transport, route (HTTP route or gRPC method) and status",
      labelNames: ["transport", "route", "status"] as const,
      registers,
    }),
    latency: new Histogram({
      name: "adjoint_request_duration_seconds",
      help: "Time from request to answer, by transport, route and status",
      labelNames: ["transport", "route", "status"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    queueWait: new Histogram({
      name: "adjoint_pool_queue_wait_seconds",
      help: "Time a pool task waited for a worker",
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    compute: new Histogram({
      name: "adjoint_compute_seconds",
      help: "Time spent evaluating, inline on the event loop or in a worker (per pool task)",
      labelNames: ["where"] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    cache: new Counter({
      name: "adjoint_cache_lookups_total",
      help: "Function cache lookups: source (spec text to hash), compiled (by hash), registry (by id), worker (per pool task)",
      labelNames: ["cache", "result"] as const,
      registers,
    }),
    placements: new Counter({
      name: "adjoint_jobs_total",
      help: "Evaluation jobs by where they ran (inline or pool)",
      labelNames: ["where"] as const,
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
    help: "Event-loop delay since the previous scrape: its p50, p99 and max (quantile label)",
    labelNames: ["quantile"],
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
  readonly requests: Counter<"transport" | "route" | "status">;
  readonly latency: Histogram<"transport" | "route" | "status">;
  readonly queueWait: Histogram<string>;
  readonly compute: Histogram<"where">;
  readonly cache: Counter<"cache" | "result">;
  readonly placements: Counter<"where">;
  readonly cancelled: Counter<"reason">;
  readonly shed: Counter<"transport" | "reason">;
  private readonly admissions: Admission[] = [];
  private readonly loopDelay: IntervalHistogram;

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

  /** Reports a transport's admission in the in-flight gauges. */
  trackAdmission(admission: Admission): void {
    this.admissions.push(admission);
  }

  shedRequest(transport: "http" | "grpc", reason: ShedReason): void {
    this.count(`shed|${transport}|${reason}`, () => this.shed.labels(transport, reason));
  }

  /** Stops the event-loop monitor (its sampling timer). */
  close(): void {
    this.loopDelay.disable();
  }

  private inlineCompute: { observe(v: number): void } | undefined;
  private readonly children = new Map<string, { inc(): void }>();
  private readonly requestChildren = new Map<string, { count: { inc(): void }; time: { observe(v: number): void } }>();

  /** An inline evaluation and its time (children with bound labels: no label hashing per request). */
  ranInline(seconds: number): void {
    this.inlineCompute ??= this.compute.labels("inline");
    this.inlineCompute.observe(seconds);
    this.count("jobs|inline", () => this.placements.labels("inline"));
  }

  ranOnPool(): void {
    this.count("jobs|pool", () => this.placements.labels("pool"));
  }

  cacheLookup(cache: string, result: "hit" | "miss"): void {
    this.count(`cache|${cache}|${result}`, () => this.cache.labels(cache, result));
  }

  private count(key: string, make: () => { inc(): void }): void {
    let child = this.children.get(key);
    if (child === undefined) {
      child = make();
      this.children.set(key, child);
    }
    child.inc();
  }

  /** Records one answered request. */
  observe(transport: "http" | "grpc", route: string, status: string | number, seconds: number): void {
    const key = `${transport}|${route}|${status}`;
    let child = this.requestChildren.get(key);
    if (child === undefined) {
      const labels = { transport, route, status: String(status) };
      child = { count: this.requests.labels(labels), time: this.latency.labels(labels) };
      this.requestChildren.set(key, child);
    }
    child.count.inc();
    child.time.observe(seconds);
  }
}
