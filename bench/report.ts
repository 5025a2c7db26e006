import type { Measurement, RatioSummary, Row } from "./harness.js";

/** One benchmark section's results: printed as a table, saved as JSON. */
export interface SectionResult {
  readonly id: string;
  readonly title: string;
  readonly tables: TableResult[];
  /** Headline figures: name → value (times in µs, ratios as plain numbers). */
  readonly summary: Record<string, number | string>;
  readonly notes: string[];
  /** Further tables, already formatted (e.g. W4's time to fast). */
  readonly plain?: PlainTable[];
  /** Anything else worth keeping in the JSON. */
  readonly extra?: Record<string, unknown>;
}

export interface PlainTable {
  readonly title: string;
  readonly header: string[];
  readonly rows: string[][];
}

export interface TableResult {
  readonly title: string;
  readonly baseline: string;
  readonly rows: (Row & { ratio: RatioSummary | null })[];
  /** samples[round][row]: µs per call, for any later analysis (JSON only). */
  readonly samples: number[][];
}

export function table(title: string, m: Measurement, baseline: string): TableResult {
  return { title, baseline, rows: m.rows.map((r) => ({ ...r, ratio: m.ratio(r.name, baseline) })), samples: m.samples };
}

export function formatTime(us: number): string {
  if (!Number.isFinite(us)) return String(us);
  if (us < 1) return `${(us * 1e3).toPrecision(3)} ns`;
  if (us < 1e3) return `${us.toPrecision(3)} µs`;
  if (us < 1e6) return `${(us / 1e3).toPrecision(3)} ms`;
  return `${(us / 1e6).toPrecision(3)} s`;
}

export function formatRatio(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  return x >= 100 ? `${Math.round(x)}×` : `${x.toPrecision(3)}×`;
}

function pad(s: string, width: number, right = false): string {
  const len = [...s].length;
  return right ? " ".repeat(Math.max(0, width - len)) + s : s + " ".repeat(Math.max(0, width - len));
}

export function renderTable(t: TableResult): string {
  const header = ["contender", "per call", "IQR", "÷ baseline", "ratio IQR", "calls×rounds", "check"];
  return renderPlain({
    title: `${t.title} — baseline: ${t.baseline}`,
    header,
    rows: t.rows.map((r) => [
      r.name,
      formatTime(r.medianUs),
      `${formatTime(r.p25Us)}–${formatTime(r.p75Us)}`,
      r.ratio ? formatRatio(r.ratio.median) : "",
      r.ratio ? `${r.ratio.p25.toPrecision(3)}–${r.ratio.p75.toPrecision(3)}` : "",
      `${r.calls}×${r.rounds}`,
      r.note ?? "",
    ]),
  });
}

/** A table with the first and last columns left-aligned, the others right-aligned. */
export function renderPlain(t: PlainTable): string {
  const { header, rows } = t;
  const widths = header.map((h, i) => Math.max([...h].length, ...rows.map((row) => [...row[i]].length)));
  const last = header.length - 1;
  const line = (cells: string[]) => cells.map((c, i) => pad(c, widths[i], i > 0 && i < last)).join("  ");
  return [
    `  ${t.title}`,
    `  ${line(header)}`,
    `  ${widths.map((w) => "─".repeat(w)).join("  ")}`,
    ...rows.map((row) => `  ${line(row)}`),
  ].join("\n");
}

export function renderSection(s: SectionResult): string {
  const out = [`\n━━ ${s.title} ━━`];
  for (const t of s.tables) out.push(renderTable(t), "");
  for (const t of s.plain ?? []) out.push(renderPlain(t), "");
  const keys = Object.keys(s.summary);
  if (keys.length) {
    const w = Math.max(...keys.map((k) => k.length));
    out.push("  summary:");
    for (const k of keys) {
      const v = s.summary[k];
      out.push(`    ${pad(k, w)}  ${typeof v === "number" ? formatSummary(k, v) : v}`);
    }
  }
  for (const n of s.notes) out.push(`  · ${n}`);
  return out.join("\n");
}

function formatSummary(key: string, v: number): string {
  if (key.endsWith("(µs)")) return formatTime(v);
  if (key.endsWith("(ms)")) return formatTime(v * 1e3);
  if (key.includes("÷")) return formatRatio(v);
  return String(v);
}
