import { spawn } from "node:child_process";
import { accessSync, constants, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { pathToFileURL } from "node:url";
import { type Started, startService, stopProcess } from "../load/process.js";
import { repoRoot } from "../load/scenarios.js";

/**
 * npm run bench:k6 — runs bench/k6/http.js and then bench/k6/grpc.js with a real k6 (from PATH, else
 * ../shared/tools/k6 beside the repository) against a service started here as `npm start` starts it,
 * on free ports, and prints per scenario p50/p95/p99, the thresholds and the dropped iterations, read
 * from k6's --summary-export JSON. Options: --rate=0.5 (the scripts' RATE), --only=w1,w2 (their
 * SCENARIOS), --scripts=http,grpc. Exits 1 when a threshold fails or k6 fails.
 */
const root = repoRoot();
const HOW_TO_GET =
  "k6 not found on PATH nor at ../shared/tools/k6. Install it (https://grafana.com/docs/k6/latest/set-up/install-k6/: " +
  "a .deb/.rpm, `brew install k6`, or the static binary from https://github.com/grafana/k6/releases) and put it on PATH.";

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function findK6(): string | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) if (dir && executable(join(dir, "k6"))) return join(dir, "k6");
  const shared = join(root, "../shared/tools/k6");
  return executable(shared) ? shared : undefined;
}

interface Metric {
  [stat: string]: unknown;
  thresholds?: Record<string, boolean>;
}
interface Summary {
  metrics: Record<string, Metric>;
}

interface Row {
  script: string;
  scenario: string;
  requests: string;
  p50: string;
  p95: string;
  p99: string;
  thresholds: string;
  dropped: string;
}

/** In k6's summary export a threshold's value is true when it was crossed (failed). */
function thresholdText(m: Metric | undefined): { text: string; failed: boolean } {
  const entries = Object.entries(m?.thresholds ?? {});
  return { text: entries.map(([t, crossed]) => `${t} ${crossed ? "FAIL" : "pass"}`).join(", "), failed: entries.some(([, c]) => c) };
}

/** Iterations the scenario's stages ask for (the integral of the arrival rate). */
function asked(stages: { duration: string; target: number }[], startRate: number): number {
  let rate = startRate;
  let total = 0;
  for (const s of stages) {
    const m = /^(\d+)(s|m)$/.exec(s.duration);
    const seconds = m ? Number(m[1]) * (m[2] === "m" ? 60 : 1) : 0;
    total += ((rate + s.target) / 2) * seconds;
    rate = s.target;
  }
  return total;
}

const ms = (v: unknown) => (typeof v === "number" ? v.toFixed(1) : "–");

/** The table rows of one script: a row per scenario, then a row for the script-wide figures. */
async function rows(script: string, summary: Summary, only: string[], rate: number): Promise<{ rows: Row[]; failed: boolean }> {
  const { scenarioOptions } = await import(pathToFileURL(join(root, "bench/k6/lib/options.js")).href);
  const metric = script === "http" ? "http_req_duration" : "grpc_req_duration";
  const options = scenarioOptions(only, rate, metric, {});
  const out: Row[] = [];
  let failed = false;
  for (const name of only) {
    const m = summary.metrics[`${metric}{scenario:${name}}`];
    const t = thresholdText(m);
    failed ||= t.failed;
    const count = typeof m?.count === "number" ? m.count : 0;
    const sc = options.scenarios[name];
    const missing = Math.max(0, Math.round(asked(sc.stages, sc.startRate) - count));
    out.push({
      script,
      scenario: name,
      requests: count.toLocaleString("en-US"),
      p50: ms(m?.["p(50)"]),
      p95: ms(m?.["p(95)"]),
      p99: ms(m?.["p(99)"]),
      thresholds: t.text,
      dropped: `≈${missing}`,
    });
  }
  const wide = Object.entries(summary.metrics).filter(([k, m]) => !k.includes("{") && m.thresholds);
  const texts = wide.map(([k, m]) => {
    const t = thresholdText(m);
    failed ||= t.failed;
    return `${k}: ${t.text}`;
  });
  const checks = summary.metrics.checks;
  const reqs = summary.metrics[script === "http" ? "http_reqs" : "grpc_reqs"] ?? summary.metrics.iterations;
  out.push({
    script,
    scenario: "all",
    requests: typeof reqs?.count === "number" ? reqs.count.toLocaleString("en-US") : "–",
    p50: ms(summary.metrics[metric]?.["p(50)"]),
    p95: ms(summary.metrics[metric]?.["p(95)"]),
    p99: ms(summary.metrics[metric]?.["p(99)"]),
    thresholds: `${texts.join("; ")}; checks ${checks?.passes ?? 0} passed, ${checks?.fails ?? 0} failed`,
    dropped: String(summary.metrics.dropped_iterations?.count ?? 0),
  });
  return { rows: out, failed };
}

function printTable(all: Row[]): void {
  const head: Row = {
    script: "script",
    scenario: "scenario",
    requests: "requests",
    p50: "p50 ms",
    p95: "p95 ms",
    p99: "p99 ms",
    dropped: "dropped",
    thresholds: "thresholds",
  };
  const keys = Object.keys(head) as (keyof Row)[];
  const width = keys.map((k) => Math.max(...[head, ...all].map((r) => r[k].length)));
  const line = (r: Row) => `| ${keys.map((k, i) => r[k].padEnd(width[i])).join(" | ")} |`;
  const rule = `| ${width.map((w) => "-".repeat(w)).join(" | ")} |`;
  process.stdout.write(`\n${[line(head), rule, ...all.map(line)].join("\n")}\n\n`);
}

function runK6(k6: string, args: string[]): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(k6, args, { stdio: ["ignore", "inherit", "inherit"], cwd: root });
    child.once("error", reject);
    child.once("exit", (code) => resolve(code));
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const rate = Number(opt("rate") ?? 1);
  const only = (opt("only") ?? "w1,w2,w3").toLowerCase().split(",");
  const scripts = (opt("scripts") ?? "http,grpc").split(",");
  const k6 = findK6();
  if (!k6) {
    process.stderr.write(`${HOW_TO_GET}\n`);
    process.exit(1);
  }
  const dir = mkdtempSync(join(tmpdir(), "adjoint-k6-"));
  const service: Started = await startService(root);
  const table: Row[] = [];
  let failed = false;
  try {
    process.stdout.write(`${k6}; service on HTTP ${service.httpPort}, gRPC ${service.grpcPort} (log ${service.log})\n`);
    for (const script of scripts) {
      const target = script === "http" ? `BASE_URL=http://127.0.0.1:${service.httpPort}` : `GRPC_ADDR=127.0.0.1:${service.grpcPort}`;
      const file = join(dir, `${script}.json`);
      const code = await runK6(k6, [
        "run",
        ...["-e", target, "-e", `RATE=${rate}`, "-e", `SCENARIOS=${only.join(",")}`],
        "--summary-trend-stats=avg,p(50),p(95),p(99),max,count",
        `--summary-export=${file}`,
        `bench/k6/${script}.js`,
      ]);
      // 99: thresholds crossed (the table says which); anything else non-zero: k6 itself failed.
      if (code !== 0 && code !== 99) failed = true;
      const r = await rows(script, JSON.parse(readFileSync(file, "utf8")) as Summary, only, rate);
      failed ||= r.failed;
      table.push(...r.rows);
    }
  } finally {
    await stopProcess(service.child);
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`\nk6 at RATE=${rate}, scenarios ${only.join(",")}; dropped: ≈ asked − done per scenario, exact per script\n`);
  printTable(table);
  if (failed) process.exitCode = 1;
}

await main();
