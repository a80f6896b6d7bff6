/**
 * Prometheus exposition for values the kernel already aggregated. prom-client's metric types are
 * kept (the registry, the text format, HELP/TYPE lines, escaping); only `get()` is overridden so that
 * each scrape reports the snapshot the agent read from the BPF maps instead of values observed one by
 * one in JavaScript.
 */
import { Counter, Gauge, Histogram, type LabelValues } from 'prom-client';

export interface Row<L extends string> {
  labels: LabelValues<L>;
  value: number;
}

export interface HistogramRow<L extends string> {
  labels: LabelValues<L>;
  /** cumulative counts for each finite bucket bound, then +Inf */
  cumulative: readonly number[];
  count: number;
  sum: number;
}

interface Config<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
}

export class SnapshotCounter<L extends string> extends Counter<L> {
  private readonly rows: () => Iterable<Row<L>>;

  constructor(cfg: Config<L> & { rows: () => Iterable<Row<L>> }) {
    super({ name: cfg.name, help: cfg.help, labelNames: cfg.labelNames, registers: [] });
    this.rows = cfg.rows;
  }

  override async get(): ReturnType<Counter<L>['get']> {
    const base = await super.get();
    return { ...base, values: [...this.rows()].map((r) => ({ labels: r.labels, value: r.value })) };
  }
}

export class SnapshotGauge<L extends string> extends Gauge<L> {
  private readonly rows: () => Iterable<Row<L>>;

  constructor(cfg: Config<L> & { rows: () => Iterable<Row<L>> }) {
    super({ name: cfg.name, help: cfg.help, labelNames: cfg.labelNames, registers: [] });
    this.rows = cfg.rows;
  }

  override async get(): ReturnType<Gauge<L>['get']> {
    const base = await super.get();
    return { ...base, values: [...this.rows()].map((r) => ({ labels: r.labels, value: r.value })) };
  }
}

export class SnapshotHistogram<L extends string> extends Histogram<L> {
  private readonly rows: () => Iterable<HistogramRow<L>>;
  private readonly bounds: readonly number[];
  private readonly metricName: string;
  /** An empty histogram of the same name: the header (name, help, type) of every get(). Histogram's
   * own get() calls getForPromString(), which this class overrides, so super.get() cannot serve. */
  private readonly template: Histogram<L>;

  constructor(cfg: Config<L> & { buckets: readonly number[]; rows: () => Iterable<HistogramRow<L>> }) {
    const config = { name: cfg.name, help: cfg.help, labelNames: cfg.labelNames, buckets: [...cfg.buckets], registers: [] };
    super(config);
    this.template = new Histogram(config);
    this.rows = cfg.rows;
    this.bounds = cfg.buckets;
    this.metricName = cfg.name;
  }

  override async get(): ReturnType<Histogram<L>['get']> {
    const base = await this.template.get();
    const values: Awaited<ReturnType<Histogram<L>['get']>>['values'] = [];
    for (const r of this.rows()) {
      this.bounds.forEach((le, i) => {
        values.push({ metricName: `${this.metricName}_bucket`, labels: { ...r.labels, le }, value: r.cumulative[i] ?? r.count });
      });
      values.push({ metricName: `${this.metricName}_bucket`, labels: { ...r.labels, le: '+Inf' }, value: r.count });
      values.push({ metricName: `${this.metricName}_sum`, labels: r.labels, value: r.sum });
      values.push({ metricName: `${this.metricName}_count`, labels: r.labels, value: r.count });
    }
    return { ...base, values };
  }

  /** prom-client's registry prefers this to get() for histograms; both report the snapshot. */
  async getForPromString(): ReturnType<Histogram<L>['get']> {
    return this.get();
  }
}
