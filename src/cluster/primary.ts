import cluster, { type Worker } from "node:cluster";
import type { Logger } from "pino";
import { AggregatorRegistry } from "prom-client";
import { LruMap } from "../runtime/lru.js";
import type { ServiceConfig } from "../service/config.js";
import { isAdjointMessage, type LearnedMessage, type MemberMessage, type PrimaryMessage, type SharedSpec } from "./messages.js";

/** How long a registration waits for every other process to keep it. */
const LEARN_TIMEOUT_MS = 5000;
/** More unplanned exits than this within RESTART_WINDOW_MS and the primary gives up (the orchestrator restarts the whole). */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;

/**
 * The primary of a clustered adjoint (`--processes` above 1): it serves nothing itself. It starts one
 * member process per `processes`, each a whole service (HTTP, gRPC, its own worker pool) on the same
 * ports, the kernel's connections dealt round-robin among them; it replaces a member that dies, keeps
 * the functions clients registered so that every member knows every id, gathers the members' metrics
 * into one exposition, and on SIGTERM / SIGINT has every member drain and stop before it exits.
 *
 * Why processes and not one event loop: a small request's cost is the event loop's (parsing, the
 * answer, the write), and one loop reaches about half the rate of a route that does nothing; on a
 * machine with cores to spare, a second loop serves the other half.
 */
export function runPrimary(config: ServiceConfig, log: Logger, flush: () => void): void {
  cluster.setupPrimary({ serialization: "advanced" });
  const specs = new LruMap<string, SharedSpec>(config.registrySize, { maxBytes: config.cacheBytes, weigh: (s) => s.bytes });
  const metrics = new AggregatorRegistry();
  const learning = new Map<number, { pending: Set<number>; done: () => void }>();
  let learnCount = 0;
  let stopping: string | undefined;
  let stoppedAt = 0;
  const restarts: number[] = [];
  const serving = new Set<number>();
  /** Processes that have asked for the registered functions, and so are told of every later one. */
  const joined = new Set<number>();
  let announced = false;

  const reply = (worker: Worker, message: PrimaryMessage) => {
    if (worker.isConnected()) worker.send(message);
  };

  const register = (from: Worker, request: number, id: string, spec: SharedSpec) => {
    specs.set(id, spec);
    // Only processes that took their snapshot: one still starting finds this in the snapshot it asks for.
    const others = Object.values(cluster.workers ?? {}).filter(
      (w): w is Worker => w !== undefined && w !== from && joined.has(w.id) && w.isConnected(),
    );
    const answer = () => reply(from, { type: "adjoint:reply", request });
    if (others.length === 0) return answer();
    const learn = ++learnCount;
    const timer = setTimeout(() => finish(), LEARN_TIMEOUT_MS);
    const finish = () => {
      clearTimeout(timer);
      if (learning.delete(learn)) answer();
    };
    learning.set(learn, { pending: new Set(others.map((w) => w.id)), done: finish });
    for (const w of others)
      w.send({ type: "adjoint:learn", request: learn, id, spec: spec.spec, bytes: spec.bytes } satisfies PrimaryMessage);
  };

  /** A member that learned, or left: it no longer holds a registration back. */
  const learned = (workerId: number, learn?: number) => {
    for (const [n, l] of learning) {
      if (learn !== undefined && n !== learn) continue;
      l.pending.delete(workerId);
      if (l.pending.size === 0) l.done();
    }
  };

  cluster.on("message", (worker: Worker, m: unknown) => {
    if (!isAdjointMessage(m)) return;
    const message = m as MemberMessage | LearnedMessage;
    switch (message.type) {
      case "adjoint:register":
        register(worker, message.request, message.id, { spec: message.spec, bytes: message.bytes });
        break;
      case "adjoint:learned":
        learned(worker.id, message.request);
        break;
      case "adjoint:snapshot":
        joined.add(worker.id);
        reply(worker, { type: "adjoint:snapshot-reply", request: message.request, specs: [...specs.entries()] });
        break;
      case "adjoint:metrics":
        metrics.clusterMetrics().then(
          (text) => reply(worker, { type: "adjoint:reply", request: message.request, text }),
          (e: Error) => reply(worker, { type: "adjoint:reply", request: message.request, error: e.message }),
        );
        break;
      case "adjoint:serving":
        serving.add(worker.id);
        if (!announced && serving.size >= config.processes) {
          announced = true;
          log.info(
            { httpPort: message.httpPort, grpcPort: message.grpcPort, processes: config.processes, workers: config.workers },
            "adjoint is serving",
          );
        }
        break;
    }
  });

  const start = () => cluster.fork();

  cluster.on("exit", (worker, code, signal) => {
    serving.delete(worker.id);
    joined.delete(worker.id);
    learned(worker.id);
    if (stopping !== undefined) {
      if (code !== 0 && code !== null) process.exitCode = 1;
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        log.info("adjoint stopped");
        flush();
        process.exit(process.exitCode ?? 0);
      }
      return;
    }
    if (!announced) {
      // Before the service ever served, a process that exits failed to start (a port in use, a bad
      // setting): another would fail the same way.
      log.fatal({ member: worker.process.pid, code, signal }, "a service process failed to start: stopping");
      process.exitCode = 1;
      stop("SIGTERM");
      return;
    }
    const now = Date.now();
    restarts.push(now);
    while (restarts.length > 0 && restarts[0] < now - RESTART_WINDOW_MS) restarts.shift();
    if (restarts.length > MAX_RESTARTS) {
      log.fatal({ member: worker.process.pid, code, signal, restarts: restarts.length }, "a service process keeps dying: stopping");
      process.exitCode = 1;
      stop("SIGTERM");
      return;
    }
    log.error({ member: worker.process.pid, code, signal }, "a service process exited: starting another");
    start();
  });

  const stop = (signal: NodeJS.Signals) => {
    if (stopping !== undefined) {
      // A second signal (a second Ctrl-C) stops at once; one in the same second is the first again, as
      // npm and the terminal both deliver a Ctrl-C.
      if (Date.now() - stoppedAt < 1000) return;
      log.warn({ signal }, "second signal: stopping every service process at once");
      for (const w of Object.values(cluster.workers ?? {})) w?.process.kill("SIGKILL");
      flush();
      process.exit(1);
    }
    stopping = signal;
    stoppedAt = Date.now();
    const members = Object.values(cluster.workers ?? {});
    log.info({ signal, processes: members.length }, "signal received: stopping every service process");
    if (members.length === 0) {
      flush();
      process.exit(process.exitCode ?? 0);
    }
    for (const w of members) w?.process.kill(signal);
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  for (let i = 0; i < config.processes; i++) start();
}
