import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batchSums, lateWorkloadRows, plan, workloadTableRows } from './store-sql.js';
import { PRESENCE_METRIC, seriesId, workloadKey, type BatchRows, type SeriesRow } from './store.js';

const row = (metric: string, labels: Record<string, string>, type: 'counter' | 'gauge' = 'counter'): SeriesRow => ({ id: seriesId('n1', metric, labels), node: 'n1', metric, type, labels });

test('batchSums sums a batch per workload key; gauges, zero deltas and pods without a workload are left out; presence of known workloads', () => {
  const web = { namespace: 'a', workload_kind: 'Deployment', workload: 'web' };
  const series = [
    row(PRESENCE_METRIC, { ...web, pod: 'web-1' }),
    row(PRESENCE_METRIC, { ...web, pod: 'web-2' }),
    row(PRESENCE_METRIC, { namespace: 'a', pod: 'bare' }),
    row('bytes_total', { ...web, pod: 'web-1', peer: 'x' }),
    row('bytes_total', { ...web, pod: 'web-1', peer: 'y' }),
    row('wait_bucket', { ...web, pod: 'web-1', le: '0.1' }),
    row('rss_bytes', { ...web, pod: 'web-1' }, 'gauge'),
    row('execs_total', { ...web, pod: 'web-1' }),
  ];
  const deltas = [1, 2, 4, 10, 20, 3, null, 0];
  const b: BatchRows = {
    report: { node: 'n1', instance: 'i', seq: 1, version: 'v', started: 0, received: 0, cgroupSubtree: '/', status: '{}' },
    series,
    samples: series.map((s, i) => ({ series: s.id, ts: 1000, value: 5, delta: deltas[i]! })),
    events: [],
  };
  const show = (r: ReturnType<typeof batchSums>) => ({
    sums: r.sums.map((x) => `${x.ts} ${r.keys.find((k) => k.key === x.key)!.metric}: ${x.delta}`).sort(),
    keys: r.keys.map((k) => `${k.metric} ${k.namespace}/${k.workload_kind}/${k.workload} le=${k.le}`).sort(),
    presence: r.presence.map((p) => series.findIndex((s) => s.id === p.series)),
  });
  const want = {
    sums: ['1000 bytes_total: 30', `1000 ${PRESENCE_METRIC}: 3`, '1000 wait_bucket: 3'],
    keys: ['bytes_total a/Deployment/web le=', `${PRESENCE_METRIC} a/Deployment/web le=`, 'wait_bucket a/Deployment/web le=0.1'],
    presence: [0, 1],
  };
  const got = batchSums(b);
  assert.deepEqual(show(got), want);
  assert.equal(got.keys.find((k) => k.le === '0.1')!.key, workloadKey('wait_bucket', 'a', 'Deployment', 'web', '0.1'));
  // series listed once each, in another order than the samples: looked up by id
  assert.deepEqual(show(batchSums({ ...b, series: [...series].reverse() })), want);
  // a minute already rolled up: the rows go to the rollups too, at their minute
  const late = batchSums({ ...b, samples: b.samples.map((s) => ({ ...s, ts: 61_000 })) });
  // presence rows: keyed by the series, no delta
  const rows = workloadTableRows(late.sums, late.presence);
  assert.deepEqual(rows.filter((r) => r.delta === null).map((r) => r.key), [series[0]!.id, series[1]!.id]);
  assert.deepEqual(lateWorkloadRows(rows, 120_000).map((r) => `${r.minute} ${r.delta_sum}`).sort(), ['60000 3', '60000 3', '60000 30', '60000 null', '60000 null']);
  assert.deepEqual(lateWorkloadRows(rows, 60_000), []);
});

test('plan reads rollups for whole minutes below the watermark: long ranges by default, any range with a span of 0', () => {
  const M = 60_000;
  const now = 100 * M;
  assert.deepEqual(plan(10 * M + 5, 20 * M, now, 95 * M, 90 * M), { raw: [[10 * M + 5, 20 * M]] });
  assert.deepEqual(plan(10 * M + 5, 20 * M, now, 95 * M, 90 * M, 0), { rollup: [11 * M, 20 * M], raw: [[10 * M + 5, 11 * M]] });
  assert.deepEqual(plan(10 * M, 95 * M + 7, now, 95 * M, 90 * M), { rollup: [10 * M, 90 * M], raw: [[90 * M, 95 * M + 7]] });
});
