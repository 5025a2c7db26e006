import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestServer, type TestServer } from "../service/helpers.js";
import { ROOT, yamlDocuments } from "./helpers.js";

/**
 * docker/grafana/adjoint-dashboard.json and docker/prometheus/alerts.yaml name only metrics (and
 * labels) that a real server's GET /metrics exports, after a request over each transport; a renamed
 * metric fails here rather than leaving an empty panel or an alert that can never fire.
 */

// Added by Prometheus itself, not by the service: the scrape's `up` and the target labels.
const SYNTHETIC_METRICS = new Set(["up"]);
const SYNTHETIC_LABELS = new Set(["instance", "job", "le", "quantile"]);

let server: TestServer;
let metrics: Set<string>;
let labels: Set<string>;

beforeAll(async () => {
  server = await startTestServer();
  await server.post("/v1/differentiate", { function: { expression: "x*y" }, point: { x: 1, y: 2 } });
  await server.differentiate({ function: { source: { case: "expression", value: "x*y" } }, point: { values: { x: 1, y: 2 } } });
  const text = (await server.get("/metrics")).text;
  metrics = new Set();
  labels = new Set();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    metrics.add(m[1]);
    // A histogram's or summary's series carry suffixes.
    if (m[2] === "histogram") for (const s of ["_bucket", "_sum", "_count"]) metrics.add(m[1] + s);
    if (m[2] === "summary") for (const s of ["_sum", "_count"]) metrics.add(m[1] + s);
  }
  for (const m of text.matchAll(/^[a-z_:][a-z0-9_:]*\{([^}]*)\}/gm)) for (const l of m[1].matchAll(/([a-z_]+)="/g)) labels.add(l[1]);
  // Counters that have not counted yet show no series: their label names come from the declarations.
  const declared = readFileSync(join(ROOT, "src/service/metrics.ts"), "utf8");
  for (const m of declared.matchAll(/labelNames:\s*\[([^\]]*)\]/g)) for (const l of m[1].matchAll(/"(\w+)"/g)) labels.add(l[1]);
}, 60_000);
afterAll(async () => {
  await server?.close();
});

/** The metric and label names a PromQL expression uses (strings and Grafana variables dropped). */
function promqlNames(expr: string): { metrics: string[]; labels: string[] } {
  const bare = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\$__\w+/g, "5m");
  const used = [...bare.matchAll(/\b(adjoint_\w+|process_\w+|nodejs_\w+|up)\b/g)].map((m) => m[1]);
  const grouped = [...bare.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)].flatMap((m) =>
    m[1]
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean),
  );
  const matched = [...bare.matchAll(/\{([^}]*)\}/g)].flatMap((m) => [...m[1].matchAll(/(\w+)\s*(?:=~|!~|!=|=)/g)].map((x) => x[1]));
  return { metrics: used, labels: [...grouped, ...matched] };
}

function check(where: string, exprs: string[]) {
  expect(exprs.length, `${where}: no expressions found`).toBeGreaterThan(0);
  const unknownMetrics = new Set<string>();
  const unknownLabels = new Set<string>();
  for (const e of exprs) {
    const names = promqlNames(e);
    expect(names.metrics.length, `${where}: ${e} names no metric`).toBeGreaterThan(0);
    for (const m of names.metrics) if (!metrics.has(m) && !SYNTHETIC_METRICS.has(m)) unknownMetrics.add(m);
    for (const l of names.labels) if (!labels.has(l) && !SYNTHETIC_LABELS.has(l)) unknownLabels.add(l);
  }
  expect([...unknownMetrics], `${where}: metrics GET /metrics does not export`).toEqual([]);
  expect([...unknownLabels], `${where}: labels no exported series carries`).toEqual([]);
}

describe("dashboards and alerts against the metrics the service exports", () => {
  it("the Grafana dashboard's every panel queries exported metrics", () => {
    const dashboard = JSON.parse(readFileSync(join(ROOT, "docker/grafana/adjoint-dashboard.json"), "utf8")) as {
      panels: { title: string; targets: { expr: string }[] }[];
    };
    for (const p of dashboard.panels) expect(p.targets.length, p.title).toBeGreaterThan(0);
    check(
      "dashboard",
      dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
    );
  });

  it("the Prometheus rules cover error rate, p99, queue saturation and memory, on exported metrics", () => {
    const [doc] = yamlDocuments("docker/prometheus/alerts.yaml") as {
      groups: { rules: { alert: string; expr: string; for?: string }[] }[];
    }[];
    const rules = doc.groups.flatMap((g) => g.rules);
    const used = new Set(rules.flatMap((r) => promqlNames(r.expr).metrics));
    for (const m of [
      "adjoint_requests_total",
      "adjoint_request_duration_seconds_bucket",
      "adjoint_pool_queued_tasks",
      "process_resident_memory_bytes",
    ]) {
      expect(used, `no rule watches ${m}`).toContain(m);
    }
    for (const r of rules) expect(r.alert).toMatch(/^Adjoint[A-Z]\w+$/);
    check(
      "alerts",
      rules.map((r) => r.expr),
    );
  });
});
