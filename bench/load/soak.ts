import type { ChildProcess } from "node:child_process";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { checkScenario, DIFFERENTIATE, grpcCall, grpcClient, httpPost, keepAliveAgent } from "./clients.js";
import { residentBytes } from "./process.js";
import { SCENARIOS, type Scenario } from "./scenarios.js";

/**
 * The soak: the worked example (W1) and the W3 training step mixed, over HTTP and gRPC, each stream
 * at a steady arrival rate (an open model: requests start on schedule whether or not earlier ones have
 * answered, up to a cap in flight) for `seconds`, after a warm-up. Every answer's numbers are checked
 * (a wrong number counts as an error). Every 5 s the service's resident memory is sampled, and from its
 * /metrics its main thread's V8 heap in use and external memory.
 * The W3 streams run in a worker thread of their own: checking a W3 answer (megabytes to decode) holds
 * the event loop it runs on for milliseconds, and a W1 answer arriving meanwhile would be timed late,
 * the client's delay counted as the service's. Separate clients do not share an event loop either.
 * Rates: LOAD_SOAK_W1_RATE (requests/s per transport, 200), LOAD_SOAK_W3_RATE (per transport, 2),
 * LOAD_SOAK_WARMUP (seconds, 15).
 */
const W1_RATE = Number(process.env.LOAD_SOAK_W1_RATE ?? 200);
const W3_RATE = Number(process.env.LOAD_SOAK_W3_RATE ?? 2);
const WARMUP = Number(process.env.LOAD_SOAK_WARMUP ?? 15);
const SAMPLE_MS = 5000;
/**
 * Memory counts as still growing when the peak of the last third of the samples exceeds the peak of the
 * middle third by more than this. (The first third holds the heap's growth to its working size.)
 */
const GROWTH_TOLERANCE = 0.1;

interface Stream {
  readonly name: string;
  readonly rate: number;
  readonly maxInFlight: number;
  readonly send: () => Promise<string | undefined>;
}

interface StreamFigures {
  name: string;
  rate: number;
  requests: number;
  throughput: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  /** Requests not started because `maxInFlight` were still waiting (the service fell behind): reported, not an error. */
  skipped: number;
  firstError?: string;
}

export interface SoakReport {
  seconds: number;
  warmup: number;
  streams: StreamFigures[];
  total: { requests: number; throughput: number; errors: number; skipped: number };
  /** Resident memory of the service process, MiB: [seconds since the start, MiB]. */
  rss: [number, number][];
  /** The main thread's V8 heap in use (nodejs_heap_size_used_bytes from /metrics), MiB, same times. */
  heapUsed: [number, number][];
  /** The main thread's external memory (nodejs_external_memory_bytes), MiB, same times. */
  external: [number, number][];
  rssStartMiB: number;
  rssEndMiB: number;
  rssMaxMiB: number;
  /** Peak of the last third of the samples over the peak of the middle third. */
  rssGrowth: number;
  rssByMinute: MinuteSummary[];
  heapByMinute: MinuteSummary[];
  ok: boolean;
}

function percentile(sorted: number[], q: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : Number.NaN;
}

/** Runs the streams at their rates for `seconds`. */
async function drive(streams: readonly Stream[], seconds: number, stop: () => boolean = () => false): Promise<StreamFigures[]> {
  const start = performance.now();
  const end = start + seconds * 1000;
  const state = streams.map(() => ({
    issued: 0,
    inFlight: 0,
    latencies: [] as number[],
    errors: 0,
    skipped: 0,
    firstError: undefined as string | undefined,
  }));
  const pending = new Set<Promise<void>>();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const until = Math.min(now, end);
      streams.forEach((s, i) => {
        const st = state[i];
        const due = Math.floor(((until - start) / 1000) * s.rate);
        while (st.issued < due) {
          st.issued++;
          if (st.inFlight >= s.maxInFlight) {
            st.skipped++;
            continue;
          }
          st.inFlight++;
          const t = performance.now();
          const p = s
            .send()
            .catch((e: Error) => e.message ?? String(e))
            .then((bad) => {
              st.latencies.push(performance.now() - t);
              if (bad) {
                st.errors++;
                st.firstError ??= bad;
              }
              st.inFlight--;
              pending.delete(p);
            });
          pending.add(p);
        }
      });
      if (now >= end || stop()) resolve();
      else setTimeout(tick, 2);
    };
    tick();
  });
  await Promise.all(pending);
  return streams.map((s, i) => {
    const st = state[i];
    const sorted = st.latencies.sort((a, b) => a - b);
    return {
      name: s.name,
      rate: s.rate,
      requests: sorted.length,
      throughput: sorted.length / seconds,
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
      max: sorted[sorted.length - 1] ?? Number.NaN,
      errors: st.errors,
      skipped: st.skipped,
      ...(st.firstError ? { firstError: st.firstError } : {}),
    };
  });
}

function streamsFor(scenarios: readonly Scenario[], httpPort: number, grpcPort: number): { streams: Stream[]; close: () => void } {
  const url = new URL(`http://127.0.0.1:${httpPort}/v1/differentiate`);
  // Each stream its own connections, as separate clients would have: a W3 message (megabytes) does
  // not queue W1's small ones behind it on one HTTP/2 connection.
  const agents = [keepAliveAgent(32), keepAliveAgent(8)];
  const clients = [grpcClient(grpcPort, true), grpcClient(grpcPort, true)];
  const streams: Stream[] = [];
  for (const s of scenarios) {
    const w3 = s.name === "W3";
    const rate = w3 ? W3_RATE : W1_RATE;
    const agent = agents[w3 ? 1 : 0];
    const client = clients[w3 ? 1 : 0];
    const maxInFlight = w3 ? 16 : 256;
    streams.push({
      name: `${s.name} HTTP`,
      rate,
      maxInFlight,
      send: async () => {
        const a = await httpPost(agent, url, s.http.body, s.http.headers);
        return s.checkHttp(a.status, a.headerLength, a.body);
      },
    });
    streams.push({
      name: `${s.name} gRPC`,
      rate,
      maxInFlight,
      send: async () => s.checkGrpc(await grpcCall(client, DIFFERENTIATE, s.grpc)),
    });
  }
  return {
    streams,
    close: () => {
      for (const a of agents) a.destroy();
      for (const c of clients) c.close();
    },
  };
}

const MiB = 1024 * 1024;

interface MinuteSummary {
  minute: number;
  min: number;
  median: number;
  max: number;
}

/** Min, median and max of a series of [seconds, value] per minute (a last partial minute joins the one before). */
function byMinute(series: [number, number][], seconds: number): MinuteSummary[] {
  const out: MinuteSummary[] = [];
  for (let m = 0; m * 60 < seconds; m++) {
    const xs = series
      .filter(([at]) => at >= m * 60 && (at < (m + 1) * 60 || (m + 1) * 60 >= seconds))
      .map(([, v]) => v)
      .sort((a, b) => a - b);
    if (xs.length) out.push({ minute: m + 1, min: xs[0], median: xs[xs.length >> 1], max: xs[xs.length - 1] });
  }
  return out;
}

/**
 * The service's main thread's V8 heap in use and its external memory (array buffers, shared batch
 * memory included), bytes, from its Prometheus metrics (Node's default metrics).
 */
async function mainThreadMemory(httpPort: number): Promise<{ heap: number; external: number } | undefined> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    const read = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1]);
    const heap = read("nodejs_heap_size_used_bytes");
    const external = read("nodejs_external_memory_bytes");
    return Number.isFinite(heap) && Number.isFinite(external) ? { heap, external } : undefined;
  } catch {
    return undefined;
  }
}

interface W3Job {
  readonly role: "soak-w3";
  readonly httpPort: number;
  readonly grpcPort: number;
  readonly warmup: number;
  readonly seconds: number;
}

/** The W3 streams, warm-up then measured period, driven in a worker thread; resolves to their figures. */
function driveW3InWorker(job: Omit<W3Job, "role">): Promise<StreamFigures[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: { role: "soak-w3", ...job } satisfies W3Job });
    worker.once("message", (figures: StreamFigures[]) => resolve(figures));
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`the W3 client thread exited (${code}) before reporting`)));
  });
}

if (!isMainThread && (workerData as W3Job | undefined)?.role === "soak-w3") {
  const job = workerData as W3Job;
  const { streams, close } = streamsFor([SCENARIOS.W3()], job.httpPort, job.grpcPort);
  await drive(streams, job.warmup);
  const figures = await drive(streams, job.seconds);
  close();
  parentPort?.postMessage(figures);
}

export async function soak(service: { child: ChildProcess; httpPort: number; grpcPort: number }, seconds: number): Promise<SoakReport> {
  const pid = service.child.pid as number;
  const scenarios = [SCENARIOS.W1(), SCENARIOS.W3()];
  for (const s of scenarios) {
    const bad = await checkScenario(s, service.httpPort, service.grpcPort);
    if (bad) throw new Error(`${s.name}: wrong answer before the soak: ${bad}`);
  }
  const { streams, close } = streamsFor([scenarios[0]], service.httpPort, service.grpcPort);
  const log = (line: string) => process.stdout.write(`${line}\n`);
  try {
    log(
      `soak: warm-up ${WARMUP} s, then ${seconds} s at ${streams.map((s) => `${s.name} ${s.rate}/s`).join(", ")}, W3 HTTP and W3 gRPC ${W3_RATE}/s (in a client thread of their own)`,
    );
    const w3Figures = driveW3InWorker({ httpPort: service.httpPort, grpcPort: service.grpcPort, warmup: WARMUP, seconds });
    // A failure there must not wait for the W1 streams to finish first.
    w3Figures.catch(() => {});
    await drive(streams, WARMUP);
    const t0 = performance.now();
    const rss: [number, number][] = [];
    const heapUsed: [number, number][] = [];
    const external: [number, number][] = [];
    let gone = false;
    const sample = async () => {
      const at = Math.round((performance.now() - t0) / 1000);
      const bytes = residentBytes(pid);
      if (bytes === undefined || service.child.exitCode !== null || service.child.signalCode !== null) {
        gone = true;
        return;
      }
      rss.push([at, Number((bytes / MiB).toFixed(1))]);
      const main = await mainThreadMemory(service.httpPort);
      if (main) {
        heapUsed.push([at, Number((main.heap / MiB).toFixed(1))]);
        external.push([at, Number((main.external / MiB).toFixed(1))]);
      }
      if (rss.length % 6 === 1) {
        const detail = main
          ? `; main thread heap used ${(main.heap / MiB).toFixed(1)} MiB, external ${(main.external / MiB).toFixed(1)} MiB`
          : "";
        log(`  ${String(at).padStart(4)} s  rss ${(bytes / MiB).toFixed(1)} MiB${detail}`);
      }
    };
    await sample();
    const timer = setInterval(sample, SAMPLE_MS);
    let figures: StreamFigures[];
    try {
      figures = [...(await drive(streams, seconds, () => gone)), ...(await w3Figures)];
    } finally {
      clearInterval(timer);
    }
    await sample();
    if (gone) throw new Error(`the service process ${pid} went away during the soak (see its log)`);
    const third = Math.max(1, Math.floor(rss.length / 3));
    const peak = (xs: [number, number][]) => Math.max(...xs.map(([, m]) => m));
    const middle = rss.slice(third, rss.length - third);
    const rssGrowth = peak(rss.slice(-third)) / peak(middle.length ? middle : rss);
    const rssByMinute = byMinute(rss, seconds);
    const heapByMinute = byMinute(heapUsed, seconds);
    const total = {
      requests: figures.reduce((a, f) => a + f.requests, 0),
      throughput: figures.reduce((a, f) => a + f.throughput, 0),
      errors: figures.reduce((a, f) => a + f.errors, 0),
      skipped: figures.reduce((a, f) => a + f.skipped, 0),
    };
    for (const f of figures) {
      log(
        `${f.name.padEnd(9)} ${f.throughput.toFixed(1).padStart(7)} req/s (asked ${f.rate}/s)  p50 ${f.p50.toFixed(2)} ms  p99 ${f.p99.toFixed(2)} ms  max ${f.max.toFixed(1)} ms  errors ${f.errors}  skipped ${f.skipped}${f.firstError ? `  first error: ${f.firstError}` : ""}`,
      );
    }
    const report: SoakReport = {
      seconds,
      warmup: WARMUP,
      streams: figures,
      total,
      rss,
      heapUsed,
      external,
      rssStartMiB: rss[0][1],
      rssEndMiB: rss[rss.length - 1][1],
      rssMaxMiB: peak(rss),
      rssGrowth: Number(rssGrowth.toFixed(3)),
      rssByMinute,
      heapByMinute,
      ok: total.errors === 0 && rssGrowth <= 1 + GROWTH_TOLERANCE,
    };
    rssByMinute.forEach((m, i) => {
      const h = heapByMinute[i];
      log(
        `minute ${m.minute}: rss min/median/max ${m.min}/${m.median}/${m.max} MiB; heap used ${h ? `${h.min}/${h.median}/${h.max}` : "?"} MiB`,
      );
    });
    log(
      `total ${total.throughput.toFixed(1)} req/s, ${total.requests} requests, errors ${total.errors}, skipped ${total.skipped}; rss start ${report.rssStartMiB} MiB, end ${report.rssEndMiB} MiB, max ${report.rssMaxMiB} MiB, last-third peak / middle-third peak ${report.rssGrowth} → ${report.ok ? "OK" : "FAILED"}`,
    );
    return report;
  } finally {
    close();
  }
}
