import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";

/**
 * Every setting of the service: its default, its environment variable and its command-line flag, in
 * one table. `loadConfig` reads flags over environment over defaults; docs/service.md lists the table
 * and `adjoint-server --help` prints it.
 */
export interface ServiceConfig {
  /** Address both servers bind. */
  host: string;
  httpPort: number;
  grpcPort: number;
  /** Largest HTTP request body, in bytes. */
  bodyLimit: number;
  /** Largest gRPC message received or sent, in bytes. */
  grpcMaxMessage: number;
  /** Close gRPC connections after this long (0: never), so that clients balancing across replicas see new ones. */
  grpcMaxConnectionAgeMs: number;
  /** Calls in flight on one gRPC connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS); clients queue the rest. */
  grpcMaxStreams: number;
  /** HTTP/2 flow-control window of each gRPC call and connection: how far ahead a client may send (src/grpc/flow-control.ts). */
  grpcFlowWindow: number;
  /** Most nodes in one function's graph (after parsing). */
  maxNodes: number;
  /** Most elements in one request's tensors (all inputs of all points together). */
  maxTensorElements: number;
  /** Most numbers in one answer (its memory, and its encoding's time). */
  maxAnswerElements: number;
  /** Most points in one batch. */
  maxPoints: number;
  /** Longest a request may compute, in milliseconds (a client deadline may shorten it). */
  timeLimitMs: number;
  /**
   * Service processes (a Node cluster), each with its event loop, its servers on the shared ports and
   * its own pool; 1 runs the service in this process alone.
   */
  processes: number;
  /** Worker threads in each process's pool. */
  workers: number;
  /** Pool tasks waiting beyond the running ones; more are refused (HTTP 503, gRPC RESOURCE_EXHAUSTED). */
  queueSize: number;
  /** Compiled functions kept (least recently used are dropped), on the main thread and in each worker. */
  cacheSize: number;
  /** Registered functions kept by id. */
  registrySize: number;
  /** Jobs estimated to cost less than this (microseconds) run inline on the event loop; larger go to the pool. */
  inlineBudgetUs: number;
  /**
   * A model's single batch estimated to cost more than this (µs) is split along its batch axis into
   * one shard per worker, computed in parallel and combined (0: never split, the default: on the
   * 2-core machine, with the client on the same cores, copying the parameters to every shard cost
   * more than the second core gave back; docs/service.md has the figures).
   */
  shardMinUs: number;
  /** On SIGTERM/SIGINT: how long to keep serving while not ready (for load balancers) before closing, ms. */
  drainMs: number;
  /** pino level: fatal, error, warn, info, debug, trace or silent. */
  logLevel: string;
  /** One access-log line per this many successful requests (failures are always logged); 1 logs every request. */
  accessLogEvery: number;
  /** Access-log lines for successes in one second, per process (0: no bound). */
  accessLogMaxPerSecond: number;
  /** Requests in flight per transport (received, not yet answered); more are refused before their bodies are read. */
  maxInflight: number;
  /** Bytes of request bodies in flight per transport; a request that would exceed it is refused before its body is read. */
  maxInflightBytes: number;
  /** Requests with a large body (over 64 KiB) in flight per transport: their own small allowance, so cheap requests keep theirs. */
  maxInflightLarge: number;
  /** An HTTP request (headers and body) must arrive within this long, ms; a slow body is cut off. */
  bodyTimeoutMs: number;
  /** HTTP: close a connection idle this long, ms (also while an answer is computed, so above the time limit). */
  idleTimeoutMs: number;
  /** HTTP: close a keep-alive connection with no new request after this long, ms. */
  keepAliveTimeoutMs: number;
  /** Estimated bytes of compiled functions kept on the main thread (per cache: compiled, registered). */
  cacheBytes: number;
  /** Estimated bytes of compiled functions kept by each worker. */
  workerCacheBytes: number;
  /** Nice levels below its process at which each pool worker thread runs (runtime/priority.ts). */
  workerNice: number;
  /** Helper threads with which each pool worker splits one large matrix product (tensor/kernels/gemm-team.ts). */
  matmulHelpers: number;
}

interface Setting {
  readonly key: keyof ServiceConfig;
  readonly env: string;
  readonly flag: string;
  readonly doc: string;
  /** The default; it may depend on the settings above it in SETTINGS, as loaded (empty for the help text). */
  readonly fallback: (loaded: Partial<ServiceConfig>) => string | number;
  readonly kind: "int" | "string";
  /** An integer setting's least value (1 unless given) and greatest (none unless given). */
  readonly min?: number;
  readonly max?: number;
}

/**
 * One worker per CPU the process may use: the container's CPU limit where there is one (cgroup v2
 * `cpu.max`, e.g. "200000 100000" is two CPUs), since Node's count is the host's.
 */
export function defaultWorkers(cpuMax = readCpuMax()): number {
  const cpus = availableParallelism();
  const [quota, period] = (cpuMax ?? "").trim().split(/\s+/);
  const limit = quota !== undefined && quota !== "max" && Number(period) > 0 ? Math.ceil(Number(quota) / Number(period)) : Number.NaN;
  return Math.max(1, Number.isFinite(limit) && limit > 0 ? Math.min(cpus, limit) : cpus);
}

/** One worker thread per CPU in all: the CPUs shared among the processes. */
function workersPerProcess(processes: number): number {
  return Math.max(1, Math.floor(defaultWorkers() / processes));
}

function readCpuMax(): string | undefined {
  try {
    return readFileSync("/sys/fs/cgroup/cpu.max", "utf8");
  } catch {
    return undefined;
  }
}

export const SETTINGS: readonly Setting[] = [
  { key: "host", env: "ADJOINT_HOST", flag: "host", kind: "string", fallback: () => "0.0.0.0", doc: "address both servers bind" },
  {
    key: "httpPort",
    env: "ADJOINT_HTTP_PORT",
    flag: "http-port",
    kind: "int",
    min: 0,
    max: 65_535,
    fallback: () => 8080,
    doc: "HTTP port (0: any free port)",
  },
  {
    key: "grpcPort",
    env: "ADJOINT_GRPC_PORT",
    flag: "grpc-port",
    kind: "int",
    min: 0,
    max: 65_535,
    fallback: () => 50051,
    doc: "gRPC port (0: any free port)",
  },
  {
    key: "bodyLimit",
    env: "ADJOINT_BODY_LIMIT",
    flag: "body-limit",
    kind: "int",
    fallback: () => 16 * 1024 * 1024,
    doc: "largest HTTP request body, bytes",
  },
  {
    key: "grpcMaxMessage",
    env: "ADJOINT_GRPC_MAX_MESSAGE",
    flag: "grpc-max-message",
    kind: "int",
    fallback: () => 16 * 1024 * 1024,
    doc: "largest gRPC message received or sent, bytes",
  },
  {
    key: "grpcMaxConnectionAgeMs",
    env: "ADJOINT_GRPC_MAX_CONNECTION_AGE_MS",
    flag: "grpc-max-connection-age-ms",
    kind: "int",
    min: 0,
    fallback: () => 0,
    doc: "close gRPC connections after this long, ms (0: never); lets client-side balancing see new replicas",
  },
  {
    key: "grpcMaxStreams",
    env: "ADJOINT_GRPC_MAX_STREAMS",
    flag: "grpc-max-streams",
    kind: "int",
    fallback: () => 16,
    doc: "gRPC calls in flight per connection; a client queues the rest (grpc-js reads every call's message before the service can refuse it)",
  },
  {
    key: "grpcFlowWindow",
    env: "ADJOINT_GRPC_FLOW_WINDOW",
    flag: "grpc-flow-window",
    kind: "int",
    min: 65_535,
    max: 2 ** 31 - 1,
    fallback: () => 2 * 1024 * 1024,
    doc: "gRPC: HTTP/2 flow-control window per call and per connection, bytes (how far ahead a client may send; HTTP/2's default 65535 makes a large message cross in many round trips)",
  },
  { key: "maxNodes", env: "ADJOINT_MAX_NODES", flag: "max-nodes", kind: "int", fallback: () => 100_000, doc: "most nodes in one function" },
  {
    key: "maxTensorElements",
    env: "ADJOINT_MAX_TENSOR_ELEMENTS",
    flag: "max-tensor-elements",
    kind: "int",
    fallback: () => 10_000_000,
    doc: "most input elements in one request (all inputs of all points)",
  },
  {
    key: "maxAnswerElements",
    env: "ADJOINT_MAX_ANSWER_ELEMENTS",
    flag: "max-answer-elements",
    kind: "int",
    fallback: () => 2_000_000,
    doc: "most numbers in one answer (a large JSON answer's numbers are written on the pool, about 0.1 µs each)",
  },
  {
    key: "maxPoints",
    env: "ADJOINT_MAX_POINTS",
    flag: "max-points",
    kind: "int",
    fallback: () => 100_000,
    doc: "most points in one batch",
  },
  {
    key: "timeLimitMs",
    env: "ADJOINT_TIME_LIMIT_MS",
    flag: "time-limit-ms",
    kind: "int",
    fallback: () => 30_000,
    doc: "longest a request may compute, ms",
  },
  {
    key: "processes",
    env: "ADJOINT_PROCESSES",
    flag: "processes",
    kind: "int",
    fallback: () => defaultWorkers(),
    doc: "service processes sharing the ports, each with its own event loop and pool (default: CPU count; 1: no cluster)",
  },
  {
    key: "workers",
    env: "ADJOINT_WORKERS",
    flag: "workers",
    kind: "int",
    fallback: (loaded) => workersPerProcess(loaded.processes ?? defaultWorkers()),
    doc: "worker threads per process (default: CPU count ÷ processes, at least 1)",
  },
  {
    key: "workerNice",
    env: "ADJOINT_WORKER_NICE",
    flag: "worker-nice",
    kind: "int",
    min: 0,
    max: 19,
    fallback: () => 10,
    doc: "nice levels below its process at which each pool worker thread and its matmul helpers run, so that event loops get a core first (Linux; default 10; 0: the same)",
  },
  {
    key: "matmulHelpers",
    env: "ADJOINT_MATMUL_HELPERS",
    flag: "matmul-helpers",
    kind: "int",
    min: 0,
    max: 16,
    fallback: () => (defaultWorkers() > 1 ? 1 : 0),
    doc: "helper threads with which each pool worker splits one large matrix product, same bits (default: 1 where there are two CPUs or more, else 0)",
  },
  {
    key: "queueSize",
    env: "ADJOINT_QUEUE_SIZE",
    flag: "queue-size",
    kind: "int",
    fallback: () => 256,
    doc: "pool tasks allowed to wait; beyond it HTTP 503 / RESOURCE_EXHAUSTED",
  },
  {
    key: "cacheSize",
    env: "ADJOINT_CACHE_SIZE",
    flag: "cache-size",
    kind: "int",
    fallback: () => 1000,
    doc: "compiled functions kept (LRU)",
  },
  {
    key: "registrySize",
    env: "ADJOINT_REGISTRY_SIZE",
    flag: "registry-size",
    kind: "int",
    fallback: () => 10_000,
    doc: "registered functions kept by id (LRU)",
  },
  {
    key: "inlineBudgetUs",
    env: "ADJOINT_INLINE_BUDGET_US",
    flag: "inline-budget-us",
    kind: "int",
    min: 0,
    fallback: () => 1000,
    doc: "jobs estimated below this many µs run inline; larger ones on the pool",
  },
  {
    key: "shardMinUs",
    env: "ADJOINT_SHARD_MIN_US",
    flag: "shard-min-us",
    kind: "int",
    min: 0,
    fallback: () => 0,
    doc: "a model batch estimated above this many µs is split across the workers (0, the default: never)",
  },
  {
    key: "drainMs",
    env: "ADJOINT_DRAIN_MS",
    flag: "drain-ms",
    kind: "int",
    min: 0,
    fallback: () => 0,
    doc: "on SIGTERM: serve this long while not ready, then close",
  },
  { key: "logLevel", env: "ADJOINT_LOG_LEVEL", flag: "log-level", kind: "string", fallback: () => "info", doc: "pino log level" },
  {
    key: "accessLogEvery",
    env: "ADJOINT_ACCESS_LOG_EVERY",
    flag: "access-log-every",
    kind: "int",
    fallback: () => 1,
    doc: "info access-log lines: one per this many successful requests (failures always; 1: every request)",
  },
  {
    key: "accessLogMaxPerSecond",
    env: "ADJOINT_ACCESS_LOG_MAX_PER_SECOND",
    flag: "access-log-max-per-second",
    kind: "int",
    min: 0,
    fallback: () => 100,
    doc: "access-log lines for successes in one second, per process; past it the next line counts those left out (`unlogged`); failures always (0: no bound)",
  },
  {
    key: "maxInflight",
    env: "ADJOINT_MAX_INFLIGHT",
    flag: "max-inflight",
    kind: "int",
    fallback: () => 256,
    doc: "requests in flight per transport; more get HTTP 503 + Retry-After / RESOURCE_EXHAUSTED before their body is read",
  },
  {
    key: "maxInflightBytes",
    env: "ADJOINT_MAX_INFLIGHT_BYTES",
    flag: "max-inflight-bytes",
    kind: "int",
    fallback: () => 64 * 1024 * 1024,
    doc: "request body bytes in flight per transport; a request that would pass it is refused like a busy server",
  },
  {
    key: "maxInflightLarge",
    env: "ADJOINT_MAX_INFLIGHT_LARGE",
    flag: "max-inflight-large",
    kind: "int",
    fallback: () => 1,
    doc: "requests with bodies over 64 KiB (or answers over 65,536 numbers) in flight per transport; up to 64 more wait their turn unread; small requests keep their own slots",
  },
  {
    key: "bodyTimeoutMs",
    env: "ADJOINT_BODY_TIMEOUT_MS",
    flag: "body-timeout-ms",
    kind: "int",
    fallback: () => 10_000,
    doc: "HTTP: headers and body must arrive within this long, ms; else the connection is closed (408)",
  },
  {
    key: "idleTimeoutMs",
    env: "ADJOINT_IDLE_TIMEOUT_MS",
    flag: "idle-timeout-ms",
    kind: "int",
    fallback: () => 60_000,
    doc: "HTTP: close a connection silent this long, ms (keep it above the time limit: a computing answer is silent)",
  },
  {
    key: "keepAliveTimeoutMs",
    env: "ADJOINT_KEEP_ALIVE_TIMEOUT_MS",
    flag: "keep-alive-timeout-ms",
    kind: "int",
    fallback: () => 72_000,
    doc: "HTTP: close a keep-alive connection after this long without a request, ms (above a load balancer's idle timeout)",
  },
  {
    key: "cacheBytes",
    env: "ADJOINT_CACHE_BYTES",
    flag: "cache-bytes",
    kind: "int",
    fallback: () => 64 * 1024 * 1024,
    doc: "estimated bytes of compiled functions kept on the main thread, per cache (compiled, registered); least recently used go first",
  },
  {
    key: "workerCacheBytes",
    env: "ADJOINT_WORKER_CACHE_BYTES",
    flag: "worker-cache-bytes",
    kind: "int",
    fallback: () => 48 * 1024 * 1024,
    doc: "estimated bytes of compiled functions (programs and their buffers) kept by each worker; a worker whose heap stays 64 MiB above this is replaced",
  },
];

export class ConfigError extends Error {}

function parseSetting(s: Setting, raw: string, source: string): string | number {
  if (s.kind === "string") return raw;
  const n = Number(raw);
  const min = s.min ?? 1;
  if (!Number.isInteger(n) || n < min) throw new ConfigError(`${source}: expected an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
  if (s.max !== undefined && n > s.max) throw new ConfigError(`${source}: expected an integer ≤ ${s.max}, got ${JSON.stringify(raw)}`);
  return n;
}

/** The defaults, overridden by environment variables, overridden by flags, overridden by `overrides`. */
export function loadConfig(
  argv: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
  overrides: Partial<ServiceConfig> = {},
): ServiceConfig {
  const options = Object.fromEntries(SETTINGS.map((s) => [s.flag, { type: "string" as const }]));
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false }).values as Record<string, string | undefined>;
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  const config: Record<string, string | number> = {};
  for (const s of SETTINGS) {
    const flag = values[s.flag];
    const fromEnv = env[s.env];
    if (typeof flag === "string") config[s.key] = parseSetting(s, flag, `--${s.flag}`);
    else if (fromEnv !== undefined && fromEnv !== "") config[s.key] = parseSetting(s, fromEnv, s.env);
    else config[s.key] = s.fallback(config as Partial<ServiceConfig>);
  }
  return { ...(config as unknown as ServiceConfig), ...overrides };
}

/**
 * What one process of a cluster of `processes` may use: the byte budgets are the whole service's,
 * shared evenly, so that more processes do not multiply the memory a deployment was sized for; counts
 * (requests in flight, queue) are each event loop's own, as each loop is a server of its own.
 */
export function perProcess(config: ServiceConfig): ServiceConfig {
  const n = config.processes;
  if (n <= 1) return config;
  const share = (bytes: number) => Math.max(1, Math.ceil(bytes / n));
  return { ...config, maxInflightBytes: share(config.maxInflightBytes), cacheBytes: share(config.cacheBytes) };
}

/** The settings as a help text (also the table in docs/service.md). */
export function configHelp(): string {
  const rows = SETTINGS.map((s) => `  --${s.flag.padEnd(22)} ${s.env.padEnd(30)} ${String(s.fallback({})).padEnd(10)} ${s.doc}`);
  return `usage: npm start -- [--flag value ...]   (or set the environment variables)\n\n  ${"flag".padEnd(24)} ${"environment".padEnd(30)} ${"default".padEnd(10)} meaning\n${rows.join("\n")}`;
}
