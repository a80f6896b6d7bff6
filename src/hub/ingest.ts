/**
 * From a batch as the wire carries it (src/wire/ingest.ts) to the rows the store keeps
 * (src/hub/store.ts): series named by node, metric and labels; histograms flattened the way
 * Prometheus exposes them (`_bucket` with `le`, `_sum`, `_count`); events with their envelope as
 * columns; profiles as a row per stack (profiles.ts). The node of every row is the batch's agent
 * node, whatever a label or an event says.
 */
import { formatNumber } from '../agent/exposition.js';
import { type Batch } from '../wire/ingest.js';
import { profileRows } from './profiles.js';
import { seriesId, type BatchRows, type EventRow, type SampleRow, type SeriesRow, type SeriesType } from './store.js';

/**
 * Series already seen, by node, metric and label values: the same series arrive in every batch of a
 * node, and their rows (id, labels) are made once, not per batch. Bounded: past `max` it starts over.
 */
class SeriesCache {
  private readonly rows = new Map<string, SeriesRow>();
  constructor(private readonly max = 1_000_000) {}
  get(key: string, make: () => Omit<SeriesRow, 'id'>): SeriesRow {
    let row = this.rows.get(key);
    if (row === undefined) {
      if (this.rows.size >= this.max) this.rows.clear();
      const r = make();
      row = { ...r, id: seriesId(r.node, r.metric, r.labels) };
      this.rows.set(key, row);
    }
    return row;
  }
}

export class Normalizer {
  private readonly cache = new SeriesCache();
  /** metric name → type, as agents declared them (bounded by the families a batch may carry) */
  readonly types = new Map<string, SeriesType>();

  rows(batch: Batch, received: number): BatchRows {
    const node = batch.agent.node;
    const ts = Date.parse(batch.time);
    const series: SeriesRow[] = [];
    const samples: SampleRow[] = [];
    const add = (metric: string, type: SeriesType, labels: () => Record<string, string>, key: string, value: number, delta: number | null): void => {
      const row = this.cache.get(`${node}\u0001${metric}\u0001${key}`, () => ({ node, metric, type, labels: labels() }));
      series.push(row);
      samples.push({ series: row.id, ts, value, delta });
    };
    for (const f of batch.families) {
      const names = f.labels.map((l, i) => [l, i] as const).filter(([l]) => l !== 'node');
      if (f.type !== 'histogram' && this.types.size < 10_000) this.types.set(f.name, f.type);
      for (const s of f.series) {
        // the label object is made only for a series not seen before
        const labels = (): Record<string, string> => {
          const l: Record<string, string> = {};
          for (const [name, i] of names) l[name] = s.labels[i]!;
          return l;
        };
        const key = s.labels.join('\u0000');
        if (f.type === 'counter') add(f.name, 'counter', labels, key, s.value!, s.delta!);
        else if (f.type === 'gauge') add(f.name, 'gauge', labels, key, s.value!, null);
        else {
          const h = s.hist!;
          const d = s.hist_delta!;
          f.buckets!.forEach((le, i) => {
            const l = formatNumber(le);
            add(`${f.name}_bucket`, 'counter', () => ({ ...labels(), le: l }), `${key}\u0000${l}`, h.cumulative[i]!, d.cumulative[i]!);
          });
          add(`${f.name}_bucket`, 'counter', () => ({ ...labels(), le: '+Inf' }), `${key}\u0000+Inf`, h.count, d.count);
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
      profiles: profileRows(batch),
    };
  }
}
