import { mkdirSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { BenchConfig } from "./config.js";
import { renderSection, type SectionResult } from "./report.js";
import { benchSparse } from "./suites/sparse.js";
import { benchW1 } from "./suites/w1.js";
import { benchW2 } from "./suites/w2.js";
import { benchW3 } from "./suites/w3.js";
import { benchW4 } from "./suites/w4.js";

/**
 * `npm run bench` (builds first) or `node dist/bench/run.js [--quick] [--no-tfjs] [--only=w1,w4]`.
 * Prints one table per workload and writes everything to bench/results/ as JSON.
 */
const SUITES: Record<string, (config: BenchConfig) => Promise<SectionResult | SectionResult[]>> = {
  w1: benchW1,
  w4: benchW4,
  w2: benchW2,
  w3: benchW3,
  sparse: benchSparse,
};

function parseArgs(argv: readonly string[]): { config: BenchConfig; only: string[] } {
  let quick = false;
  let tfjs = true;
  let only = Object.keys(SUITES);
  for (const arg of argv) {
    if (arg === "--quick") quick = true;
    else if (arg === "--no-tfjs") tfjs = false;
    else if (arg.startsWith("--only=")) only = arg.slice("--only=".length).split(",").filter(Boolean);
    else if (arg === "--help" || arg === "-h") {
      console.log("usage: node dist/bench/run.js [--quick] [--no-tfjs] [--only=w1,w4,w2,w3]");
      process.exit(0);
    } else throw new Error(`unknown argument ${arg}; try --help`);
  }
  for (const id of only) if (!SUITES[id]) throw new Error(`unknown workload ${id}; the workloads are ${Object.keys(SUITES).join(", ")}`);
  return { config: { quick, tfjs }, only };
}

async function main(): Promise<void> {
  const { config, only } = parseArgs(process.argv.slice(2));
  const started = new Date();
  const machine = {
    node: process.version,
    v8: process.versions.v8,
    cpu: os.cpus()[0]?.model ?? "unknown",
    cores: os.availableParallelism(),
    platform: `${os.platform()} ${os.release()}`,
    loadavg: os.loadavg(),
  };
  console.log(`adjoint benchmarks: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}${config.quick ? " (quick run)" : ""}`);
  console.log("times are medians per call over interleaved rounds; ratios are medians of per-round ratios (IQR alongside).");
  const sections: SectionResult[] = [];
  for (const id of only) {
    const t = performance.now();
    const result = await SUITES[id](config);
    for (const s of Array.isArray(result) ? result : [result]) {
      sections.push(s);
      console.log(renderSection(s));
    }
    console.log(`  (${id} took ${((performance.now() - t) / 1e3).toFixed(1)} s)`);
  }
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "bench", "results");
  mkdirSync(dir, { recursive: true });
  const report = { started: started.toISOString(), seconds: (Date.now() - started.getTime()) / 1e3, config, machine, sections };
  const stamp = started.toISOString().replace(/[:.]/g, "-");
  const json = `${JSON.stringify(report, null, 2)}\n`;
  writeFileSync(path.join(dir, `bench-${stamp}.json`), json);
  writeFileSync(path.join(dir, "latest.json"), json);
  console.log(
    `\nresults: ${path.relative(process.cwd(), path.join(dir, `bench-${stamp}.json`))} (and latest.json), ${report.seconds.toFixed(0)} s in all`,
  );
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
