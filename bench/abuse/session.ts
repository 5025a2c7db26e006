import { grpcClient } from "../load/clients.js";
import { residentBytes, type Started, startService as startLoadService } from "../load/process.js";
import { repoRoot } from "../load/scenarios.js";
import { call, type Family, type Outcome, post, type Target } from "./families.js";
import type { ProbeReading } from "./probe.js";
import { W1_GRPC_REQUEST, W1_HTTP_BODY, workedExampleError } from "./worked.js";

const MB = 1024 * 1024;

/**
 * The service as its own process, started as `npm start` and the image start it (the load benchmark's
 * startService: the start script's malloc settings and V8 flags), with info logs, through a link named
 * adjoint-abuse-service.js for ps and top. The memory it keeps after an attack depends on those
 * settings: without MALLOC_MMAP_THRESHOLD_, glibc keeps megabyte buffers in its heap once freed.
 */
export function startService(env: Record<string, string> = {}): Promise<Started> {
  return startLoadService(repoRoot(), { ADJOINT_LOG_LEVEL: "info", ...env }, "abuse");
}

/** What one family did to the service. */
export interface FamilyReport {
  readonly family: string;
  readonly outcome: Outcome;
  readonly seconds: number;
  readonly probe: ProbeReading;
  readonly rssBefore: number;
  readonly rssAfter: number | undefined;
  /** Seconds after the burst until resident memory was back within MEMORY_SLACK of the start (or gave up). */
  readonly settled: number;
  /** undefined when the process is alive and the worked example exact over both transports. */
  readonly broken: string | undefined;
}

/** How far above its starting size resident memory may stay after an attack. */
export const MEMORY_SLACK = 300 * MB;

/**
 * Runs one family against a running service: memory before, the burst, then up to `settleMs` for
 * resident memory to come back within MEMORY_SLACK of `startRss` (the service hands garbage back
 * within seconds of going idle), the cheap client's figures for the whole time, and a check that the
 * service is alive and exact.
 */
export async function runFamily(
  service: Started,
  family: Family,
  scale: number,
  readProbe: () => Promise<ProbeReading> | ProbeReading,
  startRss: number,
  settleMs = 15_000,
): Promise<FamilyReport> {
  const pid = service.child.pid as number;
  const target: Target = { httpPort: service.httpPort, grpcPort: service.grpcPort };
  await readProbe();
  const rssBefore = residentBytes(pid) ?? 0;
  const started = performance.now();
  let outcome: Outcome;
  try {
    outcome = await family.run(target, scale);
  } catch (e) {
    outcome = { answers: {}, faults: [`the attack itself failed: ${(e as Error).message}`] };
  }
  const seconds = (performance.now() - started) / 1000;
  const burstEnd = performance.now();
  // Long enough for the cheap client to have asked at least once even after an instant refusal.
  await new Promise((r) => setTimeout(r, 300));
  let rssAfter = residentBytes(pid);
  while (rssAfter !== undefined && rssAfter - startRss > MEMORY_SLACK && performance.now() - burstEnd < settleMs) {
    await new Promise((r) => setTimeout(r, 500));
    rssAfter = residentBytes(pid);
  }
  const settled = (performance.now() - burstEnd) / 1000;
  const probe = await readProbe();
  const alive = service.child.exitCode === null && service.child.signalCode === null;
  const broken = alive ? await stillExact(target) : "the process exited";
  return { family: family.name, outcome, seconds, probe, rssBefore, rssAfter, settled, broken };
}

/** Everything wrong in a report: faults, wrong cheap answers, a cheap wait over 1 s, memory that stayed. */
export function problems(r: FamilyReport, startRss: number): string[] {
  const out = [...r.outcome.faults, ...r.probe.wrong];
  if (r.probe.worstHttp > 1000 || r.probe.worstGrpc > 1000) out.push("a cheap request waited over 1 s");
  if (r.rssAfter !== undefined && r.rssAfter - startRss > MEMORY_SLACK) {
    out.push(
      `resident memory ${(r.rssAfter / MB).toFixed(0)} MB ${r.settled.toFixed(0)} s after, over ${MEMORY_SLACK / MB} MB above the start (${(startRss / MB).toFixed(0)} MB)`,
    );
  }
  if (r.broken !== undefined) out.push(r.broken);
  return out.map((p) => `${r.family}: ${p}`);
}

export function reportRow(r: FamilyReport): string {
  const answers = Object.entries(r.outcome.answers)
    .map(([k, v]) => `${k} ×${v}`)
    .join(", ");
  const after = r.rssAfter === undefined ? "gone" : (r.rssAfter / MB).toFixed(0);
  return `| ${r.family} | ${answers} (${r.seconds.toFixed(1)} s) | ${r.probe.worstHttp.toFixed(0)} ms (new connection ${r.probe.worstHttpNew.toFixed(0)} ms) | ${r.probe.worstGrpc.toFixed(0)} ms | ${(r.rssBefore / MB).toFixed(0)} → ${after} MB (${r.settled.toFixed(1)} s) | ${r.broken ?? "yes"} |`;
}

export const REPORT_HEADER =
  "| family | answers | worst cheap HTTP | worst cheap gRPC | RSS before → after (time to settle) | alive and exact after |\n|---|---|---|---|---|---|";

/** undefined when the worked example is still exact over both transports. */
export async function stillExact(target: Target): Promise<string | undefined> {
  const a = await post(target.httpPort, "/v1/differentiate", W1_HTTP_BODY, {}, 10_000);
  if (a.status !== 200) return `the worked example over HTTP answered ${a.status}: ${a.text.slice(0, 200)}`;
  const bad = workedExampleError(JSON.parse(a.text));
  if (bad) return bad;
  const client = grpcClient(target.grpcPort, true);
  const g = await call(client, W1_GRPC_REQUEST, 10_000);
  client.close();
  return g.code === "OK" ? undefined : `the worked example over gRPC answered ${g.code}: ${g.details}`;
}

export { MB };
