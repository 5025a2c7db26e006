import { Worker } from "node:worker_threads";
import { residentBytes, stopProcess } from "../load/process.js";
import { FAMILIES } from "./families.js";
import type { ProbeReading } from "./probe.js";
import { MB, problems, REPORT_HEADER, reportRow, runFamily, startService } from "./session.js";

/**
 * npm run bench:abuse — each attack family of issue 9 (bench/abuse/families.ts) against a fresh
 * service on its defaults, one after another. For each: what the service answered, the worst latency
 * of the cheap request (the worked example every 50 ms from a thread of its own, HTTP and gRPC
 * alternating) during the attack, the service's resident memory before and once it settles (back
 * within 300 MB of the start, or 15 s after the burst), and whether the
 * process is alive and still exact. `--only=name,name` picks families; ABUSE_SCALE (default 1) shrinks
 * the bursts. Exits 1 when any family found a fault.
 */
const only = process.argv
  .find((a) => a.startsWith("--only="))
  ?.slice(7)
  .split(",");
const scale = Number(process.env.ABUSE_SCALE ?? 1);

const service = await startService();
const pid = service.child.pid as number;
const probe = new Worker(new URL("./probe-thread.js", import.meta.url), {
  workerData: { httpPort: service.httpPort, grpcPort: service.grpcPort },
});
const ask = (m: "read" | "stop") =>
  new Promise<ProbeReading>((resolve) => {
    probe.once("message", resolve);
    probe.postMessage(m);
  });
const faults: string[] = [];
try {
  await new Promise((r) => setTimeout(r, 1000));
  const startRss = residentBytes(pid) ?? 0;
  process.stdout.write(`service pid ${pid}, resident ${(startRss / MB).toFixed(0)} MB at start\n\n${REPORT_HEADER}\n`);
  for (const family of FAMILIES) {
    if (only && !only.includes(family.name)) continue;
    const report = await runFamily(service, family, scale, () => ask("read"), startRss);
    process.stdout.write(`${reportRow(report)}\n`);
    faults.push(...problems(report, startRss));
    if (report.broken !== undefined) break;
  }
} finally {
  await ask("stop");
  await probe.terminate();
  await stopProcess(service.child);
}
process.stdout.write(faults.length ? `\n${faults.length} fault(s):\n${faults.map((f) => `- ${f}`).join("\n")}\n` : "\nno faults\n");
process.exitCode = faults.length ? 1 : 0;
