import type { Figures } from "./drivers.js";

/** One round: the trivial server's run, then the service's, back to back. */
export interface Round {
  readonly trivial: Figures;
  readonly service: Figures;
}

/** A scenario over one transport: its rounds and the medians over them. */
export interface Comparison {
  readonly label: string;
  readonly client: string;
  readonly rounds: readonly Round[];
  /** Median over rounds of (service req/s ÷ trivial req/s in the same round), and its range. */
  readonly ratio: number;
  readonly ratioMin: number;
  readonly ratioMax: number;
  readonly trivial: Medians;
  readonly service: Medians;
}

interface Medians {
  readonly rps: number;
  readonly clientCpu?: number;
  readonly serverCpu?: number;
  readonly serverUsPerRequest?: number;
  readonly p99?: number;
  readonly mean?: number;
  readonly errors: number;
}

function median(values: readonly (number | undefined)[]): number | undefined {
  const v = values.filter((x): x is number => typeof x === "number" && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const h = v.length >> 1;
  return v.length % 2 ? v[h] : (v[h - 1] + v[h]) / 2;
}

function medians(list: readonly Figures[]): Medians {
  return {
    rps: median(list.map((f) => f.rps)) ?? Number.NaN,
    clientCpu: median(list.map((f) => f.clientCpu)),
    serverCpu: median(list.map((f) => f.serverCpu)),
    serverUsPerRequest: median(list.map((f) => f.serverUsPerRequest)),
    p99: median(list.map((f) => f.p99)),
    mean: median(list.map((f) => f.mean)),
    errors: list.reduce((a, f) => a + f.errors, 0),
  };
}

export function summarise(label: string, client: string, rounds: readonly Round[]): Comparison {
  const ratios = rounds.map((r) => r.service.rps / r.trivial.rps);
  return {
    label,
    client,
    rounds,
    ratio: median(ratios) ?? Number.NaN,
    ratioMin: Math.min(...ratios),
    ratioMax: Math.max(...ratios),
    trivial: medians(rounds.map((r) => r.trivial)),
    service: medians(rounds.map((r) => r.service)),
  };
}

const int = (x: number | undefined) => (x === undefined ? "–" : Math.round(x).toLocaleString("en-US"));
const fix = (x: number | undefined, d: number) => (x === undefined ? "–" : x.toFixed(d));

function latency(f: { p50?: number; p99?: number; mean?: number; max?: number }): string {
  if (f.p99 !== undefined) return `p50 ${fix(f.p50, 2)} p99 ${fix(f.p99, 2)} ms`;
  return `mean ${fix(f.mean, 2)} max ${fix(f.max, 1)} ms`;
}

function side(name: string, f: Figures): string {
  const errors = f.errors ? `, ${f.errors} errors` : "";
  return `${name} ${int(f.rps).padStart(6)} req/s (${latency(f)}${errors}) client ${fix(f.clientCpu, 2)} server ${fix(f.serverCpu, 2)} CPU-s/s, ${int(f.serverUsPerRequest)} µs/req`;
}

/** One printed line per round. */
export function roundLine(label: string, r: number, rounds: number, round: Round): string {
  const ratio = (100 * round.service.rps) / round.trivial.rps;
  return `${label} ${r + 1}/${rounds}  ${side("trivial", round.trivial)} | ${side("adjoint", round.service)} | ${ratio.toFixed(1)}%`;
}

/** The summary table (Markdown), medians over rounds. */
export function printTable(results: readonly Comparison[], seconds: number): void {
  const rows = [
    [
      "scenario",
      "client",
      "trivial req/s",
      "adjoint req/s",
      "adjoint ÷ trivial (range)",
      "client CPU-s/s triv. / adj.",
      "server CPU-s/s triv. / adj.",
      "server µs/req triv. / adj.",
      "errors",
    ],
  ];
  for (const c of results) {
    rows.push([
      c.label,
      c.client,
      int(c.trivial.rps),
      int(c.service.rps),
      `${(100 * c.ratio).toFixed(1)}% (${(100 * c.ratioMin).toFixed(0)}–${(100 * c.ratioMax).toFixed(0)}%)`,
      `${fix(c.trivial.clientCpu, 2)} / ${fix(c.service.clientCpu, 2)}`,
      `${fix(c.trivial.serverCpu, 2)} / ${fix(c.service.serverCpu, 2)}`,
      `${int(c.trivial.serverUsPerRequest)} / ${int(c.service.serverUsPerRequest)}`,
      `${c.trivial.errors} / ${c.service.errors}`,
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((cell, i) => cell.padEnd(widths[i])).join(" | ")} |`;
  process.stdout.write(`\nMedians over interleaved rounds of ${seconds} s per run:\n\n`);
  process.stdout.write(`${[line(rows[0]), line(widths.map((w) => "-".repeat(w))), ...rows.slice(1).map(line)].join("\n")}\n\n`);
}
