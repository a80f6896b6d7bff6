/**
 * From a batch as the wire carries it (src/wire/ingest.ts) to the rows the store keeps
 * (src/hub/store.ts): series named by node, metric and labels; histograms flattened the way
 * Prometheus exposes them (`_bucket` with `le`, `_sum`, `_count`); events with their envelope as
 * columns. The node of every row is the batch's agent node, whatever a label or an event says.
 */
import { formatNumber } from '../agent/exposition.js';
import { type Batch } from '../wire/ingest.js';
import { seriesId, type BatchRows, type EventRow, type SampleRow, type SeriesRow, type SeriesType } from './store.js';

/** Ids of series already hashed: the same series arrive in every batch of a node. Bounded. */
class IdCache {
  private readonly ids = new Map<string, bigint>();
  constructor(private readonly max = 1_000_000) {}
  get(node: string, metric: string, labels: Record<string, string>, key: string): bigint {
    let id = this.ids.get(key);
    if (id === undefined) {
      if (this.ids.size >= this.max) this.ids.clear();
      id = seriesId(node, metric, labels);
      this.ids.set(key, id);
    }
    return id;
  }
}

export class Normalizer {
  private readonly cache = new IdCache();
  /** metric name → type, as agents declared them (bounded by the families a batch may carry) */
  readonly types = new Map<string, SeriesType>();

  rows(batch: Batch, received: number): BatchRows {
    const node = batch.agent.node;
    const ts = Date.parse(batch.time);
    const series: SeriesRow[] = [];
    const samples: SampleRow[] = [];
    const add = (metric: string, type: SeriesType, labels: Record<string, string>, key: string, value: number, delta: number | null): void => {
      const id = this.cache.get(node, metric, labels, `${node}\u0001${metric}\u0001${key}`);
      series.push({ id, node, metric, type, labels });
      samples.push({ series: id, ts, value, delta });
    };
    for (const f of batch.families) {
      const names = f.labels.map((l, i) => [l, i] as const).filter(([l]) => l !== 'node');
      if (f.type !== 'histogram' && this.types.size < 10_000) this.types.set(f.name, f.type);
      for (const s of f.series) {
        const labels: Record<string, string> = {};
        for (const [l, i] of names) labels[l] = s.labels[i]!;
        const key = s.labels.join('\u0000');
        if (f.type === 'counter') add(f.name, 'counter', labels, key, s.value!, s.delta!);
        else if (f.type === 'gauge') add(f.name, 'gauge', labels, key, s.value!, null);
        else {
          const h = s.hist!;
          const d = s.hist_delta!;
          f.buckets!.forEach((le, i) => {
            const l = formatNumber(le);
            add(`${f.name}_bucket`, 'counter', { ...labels, le: l }, `${key}\u0000${l}`, h.cumulative[i]!, d.cumulative[i]!);
          });
          add(`${f.name}_bucket`, 'counter', { ...labels, le: '+Inf' }, `${key}\u0000+Inf`, h.count, d.count);
          add(`${f.name}_sum`, 'counter', labels, key, h.sum, d.sum);
          add(`${f.name}_count`, 'counter', labels, key, h.count, d.count);
        }
      }
      if (f.type === 'histogram' && this.types.size < 10_000) for (const suffix of ['_bucket', '_sum', '_count']) this.types.set(f.name + suffix, 'counter');
    }
    const events: EventRow[] = batch.events.map((e) => {
      const event = { ...e, node };
      return {
        ts: Date.parse(e.time),
        node,
        type: e.type,
        namespace: e.namespace,
        pod: e.pod,
        container: e.container,
        workload_kind: e.workload_kind,
        workload: e.workload,
        cgroup: e.cgroup,
        body: JSON.stringify(event),
      };
    });
    return {
      report: {
        node,
        instance: batch.agent.instance,
        seq: batch.seq,
        version: batch.agent.version,
        started: Date.parse(batch.agent.started),
        received,
        cgroupSubtree: batch.agent.cgroup_subtree,
        status: JSON.stringify({ ...batch.status, dropped: batch.dropped }),
      },
      series,
      samples,
      events,
    };
  }
}
