import cluster from "node:cluster";
import { realpathSync } from "node:fs";
import { pathToFileURL } from "node:url";
import type { FastifyInstance } from "fastify";
import { type Logger, pino } from "pino";
import { ClusterMember } from "./cluster/member.js";
import { runPrimary } from "./cluster/primary.js";
import { buildGrpcServer, setServing } from "./grpc/server.js";
import { buildHttpServer } from "./http/server.js";
import { countExternalMemoryInGlobalLimit, MemorySteward } from "./runtime/memory.js";
import { WorkerPool } from "./runtime/pool.js";
import { AccessSampler } from "./service/access-log.js";
import { Admission } from "./service/admission.js";
import { ConfigError, configHelp, loadConfig, perProcess, type ServiceConfig } from "./service/config.js";
import { Metrics } from "./service/metrics.js";
import { AdjointService } from "./service/service.js";

/** A running adjoint: the service, its two servers and the pool, with a graceful shutdown. */
export interface RunningAdjoint {
  readonly config: ServiceConfig;
  readonly service: AdjointService;
  readonly http: FastifyInstance;
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly logger: Logger;
  /**
   * Graceful shutdown: readiness and gRPC health go to not-serving at once (synchronously), requests
   * are still answered for `drainMs`, then both servers stop taking requests and finish the ones in
   * flight, and finally the pool closes.
   */
  shutdown(): Promise<void>;
}

/**
 * Log lines gathered in memory and handed to SonicBoom (pino's asynchronous destination) 64 KiB at a
 * time: SonicBoom measures its whole pending buffer's UTF-8 length on every write, which made a line
 * cost 1.5–3 µs, more than the worked example itself; pino.transport's worker thread cost the event
 * loop as much again in bookkeeping. Joining the lines first leaves a line an array push.
 */
class LineBatch {
  private lines: string[] = [];
  private size = 0;

  constructor(
    private readonly destination: { write(text: string): unknown },
    /** Most bytes in one write, lines kept whole (a line longer than this is written alone). */
    private readonly maxWrite = Number.POSITIVE_INFINITY,
  ) {}

  write(line: string): void {
    const size = Number.isFinite(this.maxWrite) ? Buffer.byteLength(line) : line.length;
    if (this.size + size > this.maxWrite) this.flush();
    this.lines.push(line);
    this.size += size;
    if (this.size >= 65_536) this.flush();
  }

  flush(): void {
    if (this.lines.length === 0) return;
    this.destination.write(this.lines.join(""));
    this.lines = [];
    this.size = 0;
  }
}

/** The most bytes the kernel writes to a pipe in one piece, never interleaved with another process's writes. */
const PIPE_BUF = 4096;

/**
 * Logs to stdout through LineBatch, flushed every 250 ms and at exit. The processes of a cluster share
 * stdout: each writes whole lines, at most PIPE_BUF bytes at a time, synchronously (an asynchronous
 * destination joins what waits into larger writes), so that no line is cut by another process's.
 */
function stdoutLogger(level: string, shared = false): { logger: Logger; flush: () => void } {
  const destination = pino.destination({ dest: 1, sync: shared });
  const batch = new LineBatch(destination, shared ? PIPE_BUF : Number.POSITIVE_INFINITY);
  setInterval(() => batch.flush(), 250).unref();
  const flush = () => {
    batch.flush();
    destination.flushSync();
  };
  // A cluster's lines say which process wrote them.
  const base = shared ? { service: "adjoint", pid: process.pid } : { service: "adjoint" };
  return { logger: pino({ level, base }, batch), flush };
}

/** Starts the service: the pool, then HTTP and gRPC, then readiness. */
export async function startAdjoint(config: ServiceConfig, logger?: Logger, member?: ClusterMember): Promise<RunningAdjoint> {
  const log = logger ?? pino({ level: config.logLevel, base: { service: "adjoint" } });
  const pool = new WorkerPool({
    workers: config.workers,
    queueSize: config.queueSize,
    cacheSize: config.cacheSize,
    cacheBytes: config.workerCacheBytes,
    workerNice: config.workerNice,
    matmulHelpers: config.matmulHelpers,
    // Half the time limit of queued work per worker: what is admitted starts with half its time left.
    maxQueuedUs: config.workers * config.timeLimitMs * 500,
  });
  const metrics = new Metrics(() => pool);
  if (member !== undefined) {
    metrics.shareWithCluster(() => member.metricsText());
    await member.join();
  }
  const admission = (transport: "http" | "grpc") => {
    const a = new Admission(transport, config, (reason) => metrics.shedRequest(transport, reason));
    metrics.trackAdmission(a);
    return a;
  };
  const httpAdmission = admission("http");
  const grpcAdmission = admission("grpc");
  const service = new AdjointService(config, pool, metrics, member);
  await service.start();
  const accessLog = new AccessSampler(config.accessLogEvery, config.accessLogMaxPerSecond);

  const http = await buildHttpServer({
    service,
    metrics,
    logger: log,
    bodyLimit: config.bodyLimit,
    admission: httpAdmission,
    accessLog,
    requestTimeoutMs: config.bodyTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    keepAliveTimeoutMs: config.keepAliveTimeoutMs,
  });
  // A long accept queue: refused clients reconnect at once, and with Node's default of 511 a burst of
  // them fills it, so the kernel drops a newcomer's SYN and the cheap request waits out the 1 s retry.
  await http.listen({ host: config.host, port: config.httpPort, backlog: 4096 });
  const httpPort = (http.server.address() as { port: number }).port;

  const {
    server: grpcServer,
    health,
    bind: bindGrpc,
  } = buildGrpcServer({
    service,
    metrics,
    logger: log,
    maxMessage: config.grpcMaxMessage,
    maxConnectionAgeMs: config.grpcMaxConnectionAgeMs,
    maxStreams: config.grpcMaxStreams,
    flowWindow: config.grpcFlowWindow,
    admission: grpcAdmission,
    accessLog,
  });
  const grpcPort = await bindGrpc(config.host, config.grpcPort);
  setServing(health, service.ready);
  const steward = new MemorySteward(
    () => httpAdmission.requests === 0 && grpcAdmission.requests === 0,
    () => httpAdmission.admitted + grpcAdmission.admitted,
    () => httpAdmission.admittedBytes + grpcAdmission.admittedBytes,
  ).start();
  if (member === undefined) log.info({ httpPort, grpcPort, workers: config.workers }, "adjoint is serving");
  else {
    // The primary says "adjoint is serving" once every process is. The line's pid is the logger's own (stdoutLogger).
    log.info({ httpPort, grpcPort, workers: config.workers }, "service process is serving");
    member.serving(httpPort, grpcPort);
  }

  let closing: Promise<void> | undefined;
  const shutdown = () => {
    if (closing) return closing;
    service.beginShutdown();
    setServing(health, false);
    log.info({ drainMs: config.drainMs }, "shutting down: not ready; finishing requests in flight");
    closing = (async () => {
      if (config.drainMs > 0) await new Promise((r) => setTimeout(r, config.drainMs));
      await Promise.all([http.close(), new Promise<void>((resolve) => grpcServer.tryShutdown(() => resolve()))]);
      await service.close();
      steward.stop();
      metrics.close();
      log.info("adjoint stopped");
    })();
    return closing;
  };
  return { config, service, http, httpPort, grpcPort, logger: log, shutdown };
}

async function main(argv: string[]): Promise<void> {
  countExternalMemoryInGlobalLimit();
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(`${configHelp()}\n`);
    return;
  }
  let config: ServiceConfig;
  try {
    config = loadConfig(argv);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    process.stderr.write(`adjoint: ${e.message}\n\n${configHelp()}\n`);
    process.exitCode = 2;
    return;
  }
  const clustered = config.processes > 1;
  const { logger, flush } = stdoutLogger(config.logLevel, clustered);
  // Whatever ends the process (a failed start included), the lines gathered so far are written.
  process.once("exit", flush);
  if (clustered && cluster.isPrimary) {
    runPrimary(config, logger, flush);
    return;
  }
  const processConfig = clustered ? perProcess(config) : config;
  const app = await startAdjoint(processConfig, logger, clustered ? new ClusterMember(processConfig) : undefined);
  const stop = (signal: string) => {
    app.logger.info({ signal }, "signal received");
    app.shutdown().then(
      () => {
        flush();
        process.exit(0);
      },
      (e) => {
        app.logger.error({ err: e }, "shutdown failed");
        flush();
        process.exit(1);
      },
    );
  };
  // A cluster's process hears a terminal's Ctrl-C twice, from the terminal and from the primary: the
  // second must not cut its drain short.
  const on = clustered ? process.on.bind(process) : process.once.bind(process);
  on("SIGTERM", () => stop("SIGTERM"));
  on("SIGINT", () => stop("SIGINT"));
}

/**
 * Why start-up failed, for an operator: the system's own words for what the machine refused (a port in
 * use, a host that does not resolve: errors with a code), the stack only for anything else, a fault to report.
 */
function startFailure(e: unknown): string {
  if (e instanceof Error && typeof (e as NodeJS.ErrnoException).code === "string") return e.message;
  return e instanceof Error ? (e.stack ?? e.message) : String(e);
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(realpathSync(entry)).href) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`adjoint: failed to start: ${startFailure(e)}\n`);
    process.exit(1);
  });
}
