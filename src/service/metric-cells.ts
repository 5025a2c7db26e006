import type { Registry } from "prom-client";

/**
 * Labelled counters and histograms for the request path. prom-client validates and hashes the labels
 * on every `inc` and `observe`, even through a child from `labels()`: about a microsecond each, and a
 * request records several. Here a label set's cell is found once and updated with plain arithmetic;
 * the registry reads the cells through `get()` at scrape time, the interface its own metrics
 * implement, and writes the exposition as it does for them.
 */
abstract class CellMetric<L extends string, C> {
  readonly aggregator = "sum";
  private readonly cells = new Map<string, { readonly labels: Readonly<Record<L, string>>; readonly cell: C }>();

  constructor(
    readonly name: string,
    readonly help: string,
    registers: readonly Registry[],
  ) {
    for (const r of registers) r.registerMetric(this as never);
  }

  /** The cell of one label set; `key` must identify the label values (callers keep it short). */
  cell(key: string, labels: Readonly<Record<L, string>>): C {
    let found = this.cells.get(key);
    if (found === undefined) {
      found = { labels, cell: this.create() };
      this.cells.set(key, found);
    }
    return found.cell;
  }

  reset(): void {
    this.cells.clear();
  }

  protected abstract create(): C;
  protected abstract values(labels: Readonly<Record<L, string>>, cell: C): MetricValue[];

  get(): { name: string; help: string; type: string; values: MetricValue[]; aggregator: string } {
    const values: MetricValue[] = [];
    for (const { labels, cell } of this.cells.values()) values.push(...this.values(labels, cell));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  abstract readonly type: string;
}

interface MetricValue {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName?: string;
}

export class CounterCell {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class CellCounter<L extends string> extends CellMetric<L, CounterCell> {
  readonly type = "counter";
  protected create(): CounterCell {
    return new CounterCell();
  }
  protected values(labels: Readonly<Record<L, string>>, cell: CounterCell): MetricValue[] {
    return [{ labels, value: cell.value }];
  }
}

export class HistogramCell {
  /** Observations per bucket (not cumulative), the last one past every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && v > bounds[i]) i++;
    this.counts[i]++;
    this.sum += v;
    this.count++;
  }
}

export class CellHistogram<L extends string> extends CellMetric<L, HistogramCell> {
  readonly type = "histogram";

  constructor(
    name: string,
    help: string,
    private readonly bounds: readonly number[],
    registers: readonly Registry[],
  ) {
    super(name, help, registers);
  }

  protected create(): HistogramCell {
    return new HistogramCell(this.bounds);
  }

  protected values(labels: Readonly<Record<L, string>>, cell: HistogramCell): MetricValue[] {
    const out: MetricValue[] = [];
    let cumulative = 0;
    this.bounds.forEach((le, i) => {
      cumulative += cell.counts[i];
      out.push({ labels: { le, ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
    });
    out.push({ labels: { le: "+Inf", ...labels }, value: cell.count, metricName: `${this.name}_bucket` });
    out.push({ labels, value: cell.sum, metricName: `${this.name}_sum` });
    out.push({ labels, value: cell.count, metricName: `${this.name}_count` });
    return out;
  }
}
