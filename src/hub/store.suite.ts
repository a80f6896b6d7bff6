/**
 * The one test suite every Store passes (store-duckdb.test.ts, store-clickhouse.test.ts). `make`
 * returns an open store on the suite's own location; each call makes a new Store object on the same
 * location (the file, the database), so a store closed and made again must find what the first held.
 * Tests share the location and keep apart by node names and time ranges of their own.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PRESENCE_METRIC, WORKLOAD_SUM_COLUMNS, seriesId, type AggregateRow, type BatchRows, type EventRow, type ProfileRow, type SeriesType, type Store, type StoreOptions } from './store.js';
import { type ProfileType } from '../profiles/model.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;

/** The options every store under the suite is made with. */
export const SUITE_OPTIONS: StoreOptions = { rawRetentionMs: 6 * HOUR, rollupRetentionMs: 30 * DAY };

interface Point {
  metric: string;
  type?: SeriesType;
  labels: Record<string, string>;
  value: number;
  delta?: number;
}

/** One batch of a node's agent: every point at time `ts`. */
export function batch(node: string, instance: string, seq: number, ts: number, points: Point[], events: EventRow[] = [], profiles: ProfileRow[] = []): BatchRows {
  const series = points.map((p) => ({ id: seriesId(node, p.metric, p.labels), node, metric: p.metric, type: p.type ?? 'counter', labels: p.labels }));
  return {
    report: { node, instance, seq, version: '0.1.0', started: ts - 1000, received: ts, cgroupSubtree: '/', status: JSON.stringify({ seq }) },
    series,
    samples: points.map((p, i) => ({ series: series[i]!.id, ts, value: p.value, delta: (p.type ?? 'counter') === 'counter' ? (p.delta ?? p.value) : null })),
    events,
    profiles,
  };
}

/** The indexed labels of the stores' first schema (before the l7 collector's): what a migration starts from. */
export const FIRST_SCHEMA_LABELS = ['cgroup', 'namespace', 'pod', 'container', 'workload_kind', 'workload', 'peer_kind', 'peer_namespace', 'peer_workload', 'peer', 'peer_port', 'direction', 'result', 'le'];

/** A pod's labels, as the agent names a container cgroup. */
function pod(ns: string, workload: string, name: string, extra: Record<string, string> = {}): Record<string, string> {
  return { cgroup: `/kubepods/${ns}/${name}/app`, namespace: ns, pod: name, container: 'app', workload_kind: 'Deployment', workload, ...extra };
}

function event(node: string, ts: number, type: string, ns: string, p: string): EventRow {
  return { ts, node, type, namespace: ns, pod: p, container: 'app', workload_kind: 'Deployment', workload: p.replace(/-\d+$/, ''), cgroup: `/kubepods/${ns}/${p}/app`, body: JSON.stringify({ type, pod: p, ts }) };
}

/** A stack of a pod's profile whose window ended at `ts`, as the hub's ingest makes it (cpu at 99 Hz unless given). */
function stack(node: string, ts: number, type: ProfileType, ns: string, p: string, frames: string, value: number, period = type === 'cpu' ? 1e9 / 99 : 1): ProfileRow {
  // the labels of pod() (its workload is its name without the ordinal)
  return { ts, node, type, namespace: ns, pod: p, container: 'app', workload_kind: 'Deployment', workload: p.replace(/-\d+$/, ''), cgroup: `/kubepods/${ns}/${p}/app`, stack: frames, value, period };
}

/** A minute, 30 minutes ago: inside raw retention, aligned so minute buckets are exact. */
const recent = (): number => Math.floor(Date.now() / MIN) * MIN - 30 * MIN;

const byKey = (rows: readonly Pick<AggregateRow, 'metric' | 'group' | 'delta'>[]): Record<string, number> =>
  Object.fromEntries(rows.map((r) => [[r.metric, ...Object.values(r.group)].join('|'), r.delta]));

export function storeSuite(name: string, make: () => Promise<Store>): void {
  /** Runs f on a store made for it, and closes the store. */
  async function withStore<T>(f: (s: Store) => Promise<T>): Promise<T> {
    const s = await make();
    try {
      return await f(s);
    } finally {
      await s.close();
    }
  }

  test(`${name}: a batch applied raises the instance's last seq`, () =>
    withStore(async (s) => {
      const t = recent();
      assert.equal(await s.lastSeq('seq-test-1'), 0);
      assert.equal(await s.apply(batch('n-seq', 'seq-test-1', 1, t, [{ metric: 'm_total', labels: pod('a', 'w', 'w-1'), value: 1 }])), true);
      assert.equal(await s.lastSeq('seq-test-1'), 1);
      assert.equal(await s.apply(batch('n-seq', 'seq-test-1', 2, t + 10_000, [{ metric: 'm_total', labels: pod('a', 'w', 'w-1'), value: 3, delta: 2 }])), true);
      assert.equal(await s.lastSeq('seq-test-1'), 2);
      assert.equal(await s.lastSeq('another-instance'), 0);
    }));

  test(`${name}: a duplicate or older seq is acknowledged but not applied`, () =>
    withStore(async (s) => {
      const t = recent();
      const q = { from: t, to: t + 10 * MIN, metrics: ['dup_total'], groupBy: ['node'] as const };
      const p = (v: number) => [{ metric: 'dup_total', labels: pod('a', 'w', 'w-1'), value: v }];
      assert.equal(await s.apply(batch('n-dup', 'dup-inst-1', 5, t, p(10))), true);
      assert.equal(await s.apply(batch('n-dup', 'dup-inst-1', 5, t + MIN, p(100))), false, 'the same seq again');
      assert.equal(await s.apply(batch('n-dup', 'dup-inst-1', 3, t + MIN, p(1000))), false, 'an older seq');
      assert.equal(await s.lastSeq('dup-inst-1'), 5);
      const rows = await s.aggregate(q);
      assert.deepEqual(byKey(rows), { 'dup_total|n-dup': 10 });
      assert.equal((await s.nodes()).find((n) => n.node === 'n-dup')?.seq, 5, 'no report of the refused batches');
    }));

  /** Two nodes, namespaces a and b: counters over 3 batches. */
  async function loadCounters(s: Store, t: number, tag: string): Promise<void> {
    const points = (k: number) => [
      { metric: `${tag}_cpu_total`, labels: pod('a', 'web', 'web-1'), value: 10 * k, delta: 10 },
      { metric: `${tag}_cpu_total`, labels: pod('a', 'web', 'web-2'), value: 20 * k, delta: 20 },
      { metric: `${tag}_cpu_total`, labels: pod('b', 'db', 'db-1'), value: 5 * k, delta: 5 },
      { metric: `${tag}_execs_total`, labels: pod('a', 'web', 'web-1'), value: k, delta: 1 },
    ];
    for (let k = 1; k <= 3; k++) {
      assert.ok(await s.apply(batch('n-agg-1', `${tag}-inst-1`, k, t + (k - 1) * MIN, points(k))));
      assert.ok(await s.apply(batch('n-agg-2', `${tag}-inst-2`, k, t + (k - 1) * MIN, [{ metric: `${tag}_cpu_total`, labels: pod('b', 'db', 'db-2'), value: 7 * k, delta: 7 }])));
    }
  }

  test(`${name}: aggregate sums counter deltas over the range, by group, with filters`, () =>
    withStore(async (s) => {
      const t = recent();
      await loadCounters(s, t, 'agg');
      const range = { from: t, to: t + 10 * MIN };
      const all = await s.aggregate({ ...range, metrics: ['agg_cpu_total', 'agg_execs_total'], groupBy: ['namespace'] });
      assert.deepEqual(byKey(all), { 'agg_cpu_total|a': 90, 'agg_cpu_total|b': 36, 'agg_execs_total|a': 3 });
      assert.equal(all.find((r) => r.metric === 'agg_cpu_total' && r.group.namespace === 'a')?.series, 2);
      // part of the range: the first two batches
      assert.deepEqual(byKey(await s.aggregate({ from: t, to: t + 2 * MIN, metrics: ['agg_cpu_total'], groupBy: [] })), { agg_cpu_total: 84 });
      // a filter with one value, with a list, a cgroup prefix, and grouping by two columns
      assert.deepEqual(byKey(await s.aggregate({ ...range, metrics: ['agg_cpu_total'], filters: { node: 'n-agg-2' }, groupBy: ['pod'] })), { 'agg_cpu_total|db-2': 21 });
      assert.deepEqual(byKey(await s.aggregate({ ...range, metrics: ['agg_cpu_total'], filters: { pod: ['web-1', 'db-1'] }, groupBy: ['pod'] })), {
        'agg_cpu_total|db-1': 15,
        'agg_cpu_total|web-1': 30,
      });
      assert.deepEqual(byKey(await s.aggregate({ ...range, metrics: ['agg_cpu_total'], filters: { cgroupPrefix: '/kubepods/a/web-2' }, groupBy: [] })), { agg_cpu_total: 60 });
      assert.deepEqual(byKey(await s.aggregate({ ...range, metrics: ['agg_cpu_total'], filters: { namespace: 'b' }, groupBy: ['node', 'workload'] })), {
        'agg_cpu_total|n-agg-1|db': 15,
        'agg_cpu_total|n-agg-2|db': 21,
      });
      // a prefix is not a pattern: _ and % match themselves only
      assert.deepEqual(await s.aggregate({ ...range, metrics: ['agg_cpu_total'], filters: { cgroupPrefix: '/kubepods/_/' }, groupBy: [] }), []);
      assert.deepEqual(await s.aggregate({ ...range, metrics: ['agg_cpu_total'], filters: { namespace: [] }, groupBy: [] }), []);
    }));

  test(`${name}: gauges aggregate as the mean and the last value, summed over series`, () =>
    withStore(async (s) => {
      const t = recent();
      const g = (a: number, b: number) => [
        { metric: 'agg_rss_bytes', type: 'gauge' as const, labels: pod('g', 'web', 'web-1'), value: a },
        { metric: 'agg_rss_bytes', type: 'gauge' as const, labels: pod('g', 'web', 'web-2'), value: b },
      ];
      await s.apply(batch('n-gauge', 'gauge-inst', 1, t, g(100, 10)));
      await s.apply(batch('n-gauge', 'gauge-inst', 2, t + MIN, g(200, 30)));
      await s.apply(batch('n-gauge', 'gauge-inst', 3, t + 2 * MIN, g(600, 20)));
      const [row, ...rest] = await s.aggregate({ from: t, to: t + 10 * MIN, metrics: ['agg_rss_bytes'], groupBy: ['workload'] });
      assert.equal(rest.length, 0);
      assert.equal(row!.avg, 300 + 20);
      assert.equal(row!.last, 600 + 20);
      assert.equal(row!.delta, 0);
      assert.equal(row!.series, 2);
    }));

  test(`${name}: series() buckets by step, per group or summed, the largest lines within the limit`, () =>
    withStore(async (s) => {
      const t = recent();
      await loadCounters(s, t, 'ser');
      const q = { from: t, to: t + 3 * MIN, metric: 'ser_cpu_total', stepMs: MIN };
      const one = await s.series(q);
      assert.equal(one.length, 1);
      assert.deepEqual(one[0]!.points, [
        [t, 42],
        [t + MIN, 42],
        [t + 2 * MIN, 42],
      ]);
      const two = await s.series({ ...q, stepMs: 2 * MIN });
      assert.deepEqual(two[0]!.points, [
        [t, 84],
        [t + 2 * MIN, 42],
      ]);
      const byPod = await s.series({ ...q, groupBy: ['pod'] });
      assert.deepEqual(Object.fromEntries(byPod.map((l) => [l.group.pod, l.points.map((p) => p[1])])), { 'web-1': [10, 10, 10], 'web-2': [20, 20, 20], 'db-1': [5, 5, 5], 'db-2': [7, 7, 7] });
      const top = await s.series({ ...q, groupBy: ['pod'], limit: 2 });
      assert.deepEqual(
        top.map((l) => l.group.pod),
        ['web-2', 'web-1'],
        'the largest lines, largest first',
      );
      const filtered = await s.series({ ...q, filters: { namespace: 'a' }, groupBy: ['namespace'] });
      assert.deepEqual(filtered, [{ group: { namespace: 'a' }, points: [[t, 30], [t + MIN, 30], [t + 2 * MIN, 30]] }]);
    }));

  test(`${name}: distinct() lists the values of a column among series with samples in the range`, () =>
    withStore(async (s) => {
      const t = recent() - 60 * MIN; // a range of its own
      await s.apply(batch('n-dist', 'dist-inst', 1, t, [
        { metric: 'd_total', labels: pod('ns-x', 'w', 'w-1'), value: 1 },
        { metric: 'd_total', labels: pod('ns-y', 'w', 'w-1'), value: 1 },
      ]));
      await s.apply(batch('n-dist', 'dist-inst', 2, t + 5 * MIN, [{ metric: 'd_total', labels: pod('ns-z', 'w', 'w-1'), value: 1 }]));
      assert.deepEqual(await s.distinct('namespace', { from: t, to: t + 10 * MIN }, { node: 'n-dist' }), ['ns-x', 'ns-y', 'ns-z']);
      assert.deepEqual(await s.distinct('namespace', { from: t + 5 * MIN, to: t + 10 * MIN }, { node: 'n-dist' }), ['ns-z']);
      assert.deepEqual(await s.distinct('node', { from: t, to: t + 10 * MIN }, { namespace: 'ns-y' }), ['n-dist']);
    }));

  test(`${name}: events() filters by type and columns, newest first, within the limit`, () =>
    withStore(async (s) => {
      const t = recent();
      const evs = [
        event('n-ev', t + 1000, 'exec', 'ev', 'api-1'),
        event('n-ev', t + 2000, 'exit', 'ev', 'api-1'),
        event('n-ev', t + 3000, 'exec', 'ev', 'api-2'),
        event('n-ev', t + 4000, 'oom', 'other', 'x-1'),
      ];
      await s.apply(batch('n-ev', 'ev-inst', 1, t + 5000, [], evs));
      const range = { from: t, to: t + MIN };
      const all = await s.events({ ...range, filters: { node: 'n-ev' }, limit: 10 });
      assert.deepEqual(all.map((e) => e.ts), [t + 4000, t + 3000, t + 2000, t + 1000]);
      assert.deepEqual(all[0], evs[3]);
      assert.deepEqual((await s.events({ ...range, filters: { node: 'n-ev' }, types: ['exec'], limit: 10 })).map((e) => e.pod), ['api-2', 'api-1']);
      assert.deepEqual((await s.events({ ...range, filters: { namespace: 'ev', pod: ['api-1'] }, limit: 10 })).map((e) => e.type), ['exit', 'exec']);
      assert.deepEqual((await s.events({ ...range, filters: { cgroupPrefix: '/kubepods/ev/api-2' }, limit: 10 })).map((e) => e.type), ['exec']);
      assert.deepEqual((await s.events({ ...range, filters: { node: 'n-ev' }, limit: 2 })).map((e) => e.ts), [t + 4000, t + 3000]);
      // no type asked for is every type, as the hub asks when its query names none
      assert.deepEqual((await s.events({ ...range, filters: { node: 'n-ev' }, types: [], limit: 2 })).map((e) => e.ts), [t + 4000, t + 3000]);
      assert.deepEqual(await s.events({ ...range, filters: { peer: 'x' }, limit: 10 }), [], 'events have no peer');
    }));

  test(`${name}: nodes() gives the newest report of each node`, () =>
    withStore(async (s) => {
      const t = recent();
      await s.apply(batch('n-rep-1', 'rep-inst-1', 1, t, []));
      await s.apply(batch('n-rep-1', 'rep-inst-1', 2, t + 10_000, []));
      await s.apply(batch('n-rep-2', 'rep-inst-2', 1, t + 5_000, []));
      const nodes = (await s.nodes()).filter((n) => n.node.startsWith('n-rep-'));
      assert.deepEqual(
        nodes.map((n) => [n.node, n.seq, n.received]),
        [
          ['n-rep-1', 2, t + 10_000],
          ['n-rep-2', 1, t + 5_000],
        ],
      );
      assert.deepEqual(nodes[0], { node: 'n-rep-1', instance: 'rep-inst-1', seq: 2, version: '0.1.0', started: t + 9_000, received: t + 10_000, cgroupSubtree: '/', status: '{"seq":2}' });
      assert.deepEqual((await s.nodes(t + 6_000)).filter((n) => n.node.startsWith('n-rep-')).map((n) => n.node), ['n-rep-1']);
    }));

  test(`${name}: histogram buckets aggregate per le`, () =>
    withStore(async (s) => {
      const t = recent();
      const h = (k: number) => [
        ...['0.001', '0.01', '+Inf'].map((le, i) => ({ metric: 'h_wait_seconds_bucket', labels: pod('h', 'w', 'w-1', { le }), value: k * (i + 1), delta: i + 1 })),
        { metric: 'h_wait_seconds_count', labels: pod('h', 'w', 'w-1'), value: 3 * k, delta: 3 },
      ];
      await s.apply(batch('n-hist', 'hist-inst', 1, t, h(1)));
      await s.apply(batch('n-hist', 'hist-inst', 2, t + MIN, h(2)));
      const rows = await s.aggregate({ from: t, to: t + 5 * MIN, metrics: ['h_wait_seconds_bucket', 'h_wait_seconds_count'], filters: { namespace: 'h' }, groupBy: ['workload', 'le'] });
      assert.deepEqual(byKey(rows), {
        'h_wait_seconds_bucket|w|0.001': 2,
        'h_wait_seconds_bucket|w|0.01': 4,
        'h_wait_seconds_bucket|w|+Inf': 6,
        'h_wait_seconds_count|w|': 6,
      });
    }));

  test(`${name}: maintain() rolls up closed minutes, drops raw data past retention, and old ranges read the rollups`, () =>
    withStore(async (s) => {
      const now = Date.now();
      const t = Math.floor((now - 8 * HOUR) / HOUR) * HOUR; // past raw retention (6 h), inside rollup retention
      const ancient = Math.floor((now - 40 * DAY) / HOUR) * HOUR; // past rollup retention too
      for (let k = 0; k < 6; k++) {
        const ts = t + k * 20_000; // 3 samples a minute, over 2 minutes
        await s.apply(batch('n-old', 'old-inst', k + 1, ts, [
          { metric: 'old_cpu_total', labels: pod('old', 'web', 'web-1'), value: 3 * (k + 1), delta: 3 },
          { metric: 'old_cpu_total', labels: pod('old', 'db', 'db-1'), value: k + 1, delta: 1 },
          { metric: 'old_rss_bytes', type: 'gauge', labels: pod('old', 'web', 'web-1'), value: 100 * (k + 1) },
        ], [event('n-old', ts, 'exec', 'old', 'web-1')]));
      }
      await s.apply(batch('n-ancient', 'ancient-inst', 1, ancient, [{ metric: 'old_cpu_total', labels: pod('old', 'x', 'x-1'), value: 50 }]));
      const range = { from: t, to: t + HOUR };
      const q = { ...range, metrics: ['old_cpu_total', 'old_rss_bytes'], groupBy: ['workload'] as const };
      const sq = { ...range, metric: 'old_cpu_total', stepMs: MIN, groupBy: ['workload'] as const };
      const before = await s.aggregate(q);
      const beforeLines = await s.series(sq);
      assert.deepEqual(byKey(before), { 'old_cpu_total|db': 6, 'old_cpu_total|web': 18, 'old_rss_bytes|web': 0 });
      const ancientBefore = await s.aggregate({ from: ancient, to: ancient + HOUR, metrics: ['old_cpu_total'], groupBy: [] });
      assert.equal(ancientBefore[0]?.delta, 50, 'not maintained yet: the raw samples are there');

      const r = await s.maintain(now);
      assert.ok(r.minutesRolledUp >= 3, `rolled up ${r.minutesRolledUp} minutes`);
      assert.ok(r.droppedParts > 0);
      // the raw rows are gone: the events show it, the same totals show the rollups were read
      assert.deepEqual(await s.events({ ...range, filters: { node: 'n-old' }, limit: 10 }), []);
      const after = await s.aggregate(q);
      assert.deepEqual(byKey(after), byKey(before));
      const rss = after.find((x) => x.metric === 'old_rss_bytes')!;
      assert.equal(rss.avg, 350, 'the mean of 100..600');
      assert.equal(rss.last, 600);
      assert.deepEqual(await s.series(sq), beforeLines);
      assert.deepEqual(beforeLines.find((l) => l.group.workload === 'web')?.points, [
        [t, 9],
        [t + MIN, 9],
      ]);
      // past rollup retention: nothing
      assert.deepEqual(await s.aggregate({ from: ancient, to: ancient + HOUR, metrics: ['old_cpu_total'], groupBy: [] }), []);
      // idempotent: nothing more to roll up, the totals stay
      await s.maintain(now);
      assert.deepEqual(byKey(await s.aggregate(q)), byKey(before));
      // recent data is untouched
      const recentRows = await s.aggregate({ from: recent(), to: recent() + 10 * MIN, metrics: ['agg_cpu_total'], groupBy: [] });
      assert.ok((recentRows[0]?.delta ?? 0) > 0);
    }));

  test(`${name}: a long range inside raw retention gives the same answers before and after its minutes are rolled up`, () =>
    withStore(async (s) => {
      const t = Math.floor(Date.now() / MIN) * MIN - 100 * MIN; // 20 minutes of its own, well closed
      for (let k = 0; k < 40; k++)
        await s.apply(batch('n-long', 'long-inst', k + 1, t + k * 30_000 + 5_000, [
          { metric: 'long_cpu_total', labels: pod('long', 'web', 'web-1'), value: k + 1, delta: 1 },
          { metric: 'long_cpu_total', labels: pod('long', 'db', 'db-1'), value: 2 * (k + 1), delta: 2 },
          { metric: 'long_rss_bytes', type: 'gauge', labels: pod('long', 'web', 'web-1'), value: 10 * (k % 4) },
        ]));
      // from in the middle of a minute: its first samples come from raw rows, the whole minutes from rollups
      const ranges = [
        { from: t, to: t + 20 * MIN },
        { from: t + 20_000, to: t + 20 * MIN },
        { from: t + 3 * MIN + 1, to: t + 17 * MIN + 30_001 },
      ];
      const ask = async () =>
        Promise.all(
          ranges.map(async (r) => [
            // aggregate rows come in no particular order
            (await s.aggregate({ ...r, metrics: ['long_cpu_total', 'long_rss_bytes'], groupBy: ['workload'] })).sort((a, b) => (`${a.metric}|${a.group.workload}` < `${b.metric}|${b.group.workload}` ? -1 : 1)),
            await s.series({ ...r, metric: 'long_cpu_total', stepMs: 5 * MIN }),
          ]),
        );
      const before = await ask();
      assert.deepEqual(byKey(before[0]![0] as AggregateRow[]), { 'long_cpu_total|db': 80, 'long_cpu_total|web': 40, 'long_rss_bytes|web': 0 });
      assert.deepEqual(byKey(before[1]![0] as AggregateRow[]), { 'long_cpu_total|db': 78, 'long_cpu_total|web': 39, 'long_rss_bytes|web': 0 });
      await s.maintain(Date.now());
      assert.deepEqual(await ask(), before);
    }));

  test(`${name}: workloadSums() gives aggregate()'s totals per workload and bucket, placement() where workloads ran, from raw rows, rollups and a late batch`, () =>
    withStore(async (s) => {
      const t = Math.floor(Date.now() / MIN) * MIN - 50 * MIN; // 5 minutes of its own, well closed
      const cpu = PRESENCE_METRIC;
      const metrics = [cpu, 'ws_tcp_bytes_total', 'ws_wait_seconds_bucket'];
      const points = (node: number, k: number) => [
        // two pods of web on each node, one of db on the second, a bare pod (no workload) on the first
        { metric: cpu, labels: pod('ws', 'web', `web-${node}a`), value: k, delta: 1 },
        { metric: cpu, labels: pod('ws', 'web', `web-${node}b`), value: 2 * k, delta: 2 },
        ...(node === 2 ? [{ metric: cpu, labels: pod('ws', 'db', 'db-1'), value: 5 * k, delta: 5 }] : []),
        ...(node === 1 ? [{ metric: cpu, labels: pod('ws', '', 'bare', { workload_kind: '' }), value: 7 * k, delta: 7 }] : []),
        // a pod of web gone after the first batch
        ...(node === 1 && k === 1 ? [{ metric: cpu, labels: pod('ws', 'web', 'web-old'), value: 0, delta: 0 }] : []),
        // two peers of one pod: summed
        { metric: 'ws_tcp_bytes_total', labels: pod('ws', 'web', `web-${node}a`, { peer: '10.0.0.1' }), value: 100 * k, delta: 100 },
        { metric: 'ws_tcp_bytes_total', labels: pod('ws', 'web', `web-${node}a`, { peer: '10.0.0.2' }), value: 10 * k, delta: 10 },
        ...['0.001', '+Inf'].map((le, i) => ({ metric: 'ws_wait_seconds_bucket', labels: pod('ws', 'web', `web-${node}a`, { le }), value: (i + 1) * k, delta: i + 1 })),
        // a gauge is no counter: not summed
        { metric: 'ws_rss_bytes', type: 'gauge' as const, labels: pod('ws', 'web', `web-${node}a`), value: 1e6 },
      ];
      for (let k = 1; k <= 10; k++)
        for (const node of [1, 2]) assert.ok(await s.apply(batch(`n-ws-${node}`, `ws-inst-${node}`, k, t + (k - 1) * 30_000 + 5_000, points(node, k))));
      const ranges = [
        { from: t, to: t + 5 * MIN },
        { from: t + 20_000, to: t + 4 * MIN + 10_000 },
      ];
      const ask = () =>
        Promise.all(
          ranges.flatMap((r) => [
            s.workloadSums({ ...r, metrics: [...metrics, 'ws_rss_bytes'] }).then(byKey),
            s.aggregate({ ...r, metrics, filters: { nonEmpty: ['workload'] }, groupBy: WORKLOAD_SUM_COLUMNS }).then(byKey),
            s.workloadSums({ ...r, metrics, filters: { namespace: 'ws', workload: ['db', 'none'] } }).then(byKey),
            s.placement({ ...r, filters: { namespace: 'ws' } }).then((rows) => Object.fromEntries(rows.map((p) => [`${p.node} ${p.pod}`, `${p.workload_kind}/${p.workload} ${p.cgroup} ${p.container}`]))),
          ]),
        );
      const before = await ask();
      assert.deepEqual(before[0], {
        [`${cpu}|ws|Deployment|web|`]: 60,
        [`${cpu}|ws|Deployment|db|`]: 50,
        'ws_tcp_bytes_total|ws|Deployment|web|': 2200,
        'ws_wait_seconds_bucket|ws|Deployment|web|0.001': 20,
        'ws_wait_seconds_bucket|ws|Deployment|web|+Inf': 40,
      });
      assert.deepEqual(before[1], before[0], 'the same totals as aggregate() over every series');
      assert.deepEqual(before[2], { [`${cpu}|ws|Deployment|db|`]: 50 });
      const pods = ['n-ws-1 web-1a', 'n-ws-1 web-1b', 'n-ws-2 web-2a', 'n-ws-2 web-2b', 'n-ws-2 db-1'];
      assert.deepEqual(Object.keys(before[3]!).sort(), [...pods, 'n-ws-1 web-old'].sort(), 'every pod of a known workload that ran, not the bare one');
      assert.equal(before[3]!['n-ws-2 db-1'], 'Deployment/db /kubepods/ws/db-1/app app');
      assert.deepEqual(Object.keys(before[7]!).sort(), pods.sort(), 'web-old did not run in the second range');
      assert.deepEqual(before[5], before[4]);
      assert.equal(before[4]![`${cpu}|ws|Deployment|web|`], 48, 'batches 2 to 9 of both nodes');
      // rolled up: whole minutes come from the rollups, the same totals
      await s.maintain(Date.now());
      assert.deepEqual(await ask(), before);
      // a batch late for a minute already rolled up counts in both
      assert.ok(await s.apply(batch('n-ws-2', 'ws-inst-late', 1, t + 2 * MIN + 1_000, [{ metric: cpu, labels: pod('ws', 'db', 'db-1'), value: 1000, delta: 1000 }])));
      const late = await ask();
      assert.equal(late[0]![`${cpu}|ws|Deployment|db|`], 1050);
      assert.deepEqual(late[1], late[0]);
      assert.equal(late[4]![`${cpu}|ws|Deployment|db|`], 1040);
      assert.deepEqual(late[5], late[4]);
    }));

  test(`${name}: what a store holds survives closing it and opening a new one on the same location`, async () => {
    const t = recent() + 5 * MIN;
    const q = { from: t, to: t + MIN, metrics: ['reopen_total'], groupBy: ['pod'] as const };
    await withStore(async (s) => {
      assert.ok(await s.apply(batch('n-reopen', 'reopen-inst', 7, t, [{ metric: 'reopen_total', labels: pod('r', 'w', 'w-1'), value: 11 }], [event('n-reopen', t, 'exec', 'r', 'w-1')])));
    });
    await withStore(async (s) => {
      assert.equal(await s.lastSeq('reopen-inst'), 7);
      assert.equal(await s.apply(batch('n-reopen', 'reopen-inst', 7, t, [{ metric: 'reopen_total', labels: pod('r', 'w', 'w-1'), value: 99 }])), false);
      assert.deepEqual(byKey(await s.aggregate(q)), { 'reopen_total|w-1': 11 });
      assert.equal((await s.events({ from: t, to: t + MIN, filters: { node: 'n-reopen' }, limit: 5 })).length, 1);
      assert.equal((await s.nodes()).find((n) => n.node === 'n-reopen')?.seq, 7);
      assert.ok(await s.apply(batch('n-reopen', 'reopen-inst', 8, t + 1000, [{ metric: 'reopen_total', labels: pod('r', 'w', 'w-1'), value: 12, delta: 1 }])));
      assert.deepEqual(byKey(await s.aggregate(q)), { 'reopen_total|w-1': 12 });
    });
  });

  test(`${name}: the l7 collector's labels are columns: filtered and grouped by, values with quotes and SQL bound as values`, () =>
    withStore(async (s) => {
      const t = recent() + 7 * MIN;
      const l7 = (extra: Record<string, string>): Record<string, string> => pod('l7', 'web', 'web-1', { peer_kind: 'pod', peer_namespace: 'l7', peer_workload: 'api', peer: 'api-1', peer_port: '8080', side: 'client', ...extra });
      assert.ok(
        await s.apply(
          batch('n-l7', 'l7-inst', 1, t, [
            { metric: 'l7_http_total', labels: l7({ method: 'GET', route: '/users/{id}', status_class: '2xx' }), value: 90 },
            { metric: 'l7_http_total', labels: l7({ method: 'GET', route: '/users/{id}', status_class: '5xx' }), value: 10 },
            { metric: 'l7_http_total', labels: l7({ method: 'POST', route: "/it's'; DROP TABLE series; --", status_class: '2xx', side: 'server' }), value: 3 },
            { metric: 'l7_grpc_total', labels: l7({ grpc_service: 'shop.Cart', grpc_method: 'Add', grpc_status: 'NOT_FOUND' }), value: 4 },
            { metric: 'l7_sql_total', labels: l7({ operation: 'SELECT', shape: 'SELECT * FROM t WHERE id = ?', error: '23505' }), value: 5 },
            { metric: 'l7_redis_total', labels: l7({ command: 'GET', error: 'WRONGTYPE' }), value: 6 },
          ]),
        ),
      );
      const range = { from: t, to: t + MIN };
      assert.deepEqual(byKey(await s.aggregate({ ...range, metrics: ['l7_http_total'], filters: { side: 'client' }, groupBy: ['method', 'route', 'status_class'] })), {
        'l7_http_total|GET|/users/{id}|2xx': 90,
        'l7_http_total|GET|/users/{id}|5xx': 10,
      });
      assert.deepEqual(byKey(await s.aggregate({ ...range, metrics: ['l7_http_total'], filters: { route: "/it's'; DROP TABLE series; --" }, groupBy: ['side'] })), { 'l7_http_total|server': 3 });
      const g = await s.aggregate({ ...range, metrics: ['l7_grpc_total', 'l7_sql_total', 'l7_redis_total'], groupBy: ['grpc_service', 'grpc_method', 'grpc_status', 'operation', 'shape', 'error', 'command'] });
      assert.deepEqual(byKey(g), {
        'l7_grpc_total|shop.Cart|Add|NOT_FOUND||||': 4,
        'l7_sql_total||||SELECT|SELECT * FROM t WHERE id = ?|23505|': 5,
        'l7_redis_total||||||WRONGTYPE|GET': 6,
      });
      const lines = await s.series({ ...range, metric: 'l7_http_total', stepMs: MIN, filters: { status_class: ['5xx', '4xx'] }, groupBy: ['route'] });
      assert.deepEqual(lines.map((l) => [l.group.route, l.points.map((p) => p[1])]), [['/users/{id}', [10]]]);
    }));

  test(`${name}: profile() sums stacks over nodes and windows in the range, largest first, with filters and the limit's cut summed`, async () => {
    const t = recent() + 9 * MIN; // a minute of its own
    const web1 = (ts: number, type: ProfileType, frames: string, v: number) => stack('n-prof-1', ts, type, 'prof', 'web-1', frames, v);
    const b1 = batch('n-prof-1', 'prof-inst-1', 1, t + 20_000, [], [], [
      web1(t + 10_000, 'cpu', 'web;main;a', 10),
      web1(t + 10_000, 'cpu', 'web;main;b', 5),
      // a second window of the same cgroup
      web1(t + 20_000, 'cpu', 'web;main;a', 3),
      web1(t + 20_000, 'offcpu', 'web;main;read_[k]', 2e6),
      web1(t + 20_000, 'runq', 'web;main;a', 4e5),
      // quotes and backslashes are values, never SQL
      web1(t + 20_000, 'cpu', "web;o'brien\\x;--", 2),
    ]);
    const b2 = batch('n-prof-2', 'prof-inst-2', 1, t + 15_000, [], [], [
      // the same stack on another node: merged; this agent samples at 100 Hz
      stack('n-prof-2', t + 15_000, 'cpu', 'prof', 'web-2', 'web;main;a', 7, 1e7),
      stack('n-prof-2', t + 15_000, 'cpu', 'prof', 'web-2', 'web;main;c', 1, 1e7),
      stack('n-prof-2', t + 15_000, 'cpu', 'prof', 'db-1', 'db;loop', 100, 1e7),
      // another namespace, in the range
      stack('n-prof-2', t + 15_000, 'cpu', 'other', 'x-1', 'x;spin', 1000, 1e7),
    ]);
    await withStore(async (s) => {
      assert.equal(await s.apply(b1), true);
      assert.equal(await s.apply(b2), true);
      // a batch replayed: not applied, its stacks not counted twice
      assert.equal(await s.apply(b1), false);
    });
    // a store made again on the same location holds them (and the queries below read them there)
    await withStore(async (s) => {
      const range = { from: t, to: t + MIN };
      const q = (filters: Record<string, unknown>, more: { type?: ProfileType; limit?: number; range?: { from: number; to: number } } = {}) =>
        s.profile({ type: more.type ?? 'cpu', range: more.range ?? range, filters: { namespace: 'prof', ...filters }, limit: more.limit ?? 100 });
      const flat = (r: Awaited<ReturnType<typeof q>>) => r.stacks.map((x) => `${x.stack} ${x.value}`);
      const all = await q({});
      assert.deepEqual(flat(all), ['db;loop 100', 'web;main;a 20', 'web;main;b 5', "web;o'brien\\x;-- 2", 'web;main;c 1']);
      assert.equal(all.total, 128);
      assert.deepEqual([all.droppedStacks, all.droppedValue], [0, 0]);
      assert.equal(all.period, 1e9 / 99, 'the largest period of the rows');
      assert.deepEqual(flat(await q({ workload: 'web' })), ['web;main;a 20', 'web;main;b 5', "web;o'brien\\x;-- 2", 'web;main;c 1']);
      assert.deepEqual(flat(await q({ node: 'n-prof-2' })), ['db;loop 100', 'web;main;a 7', 'web;main;c 1']);
      assert.deepEqual(flat(await q({ node: ['n-prof-1', 'n-prof-3'], pod: 'web-1' })), ['web;main;a 13', 'web;main;b 5', "web;o'brien\\x;-- 2"]);
      assert.deepEqual(flat(await q({ cgroupPrefix: '/kubepods/prof/web-2' })), ['web;main;a 7', 'web;main;c 1']);
      assert.deepEqual(flat(await q({ workload_kind: 'Deployment', container: 'app', workload: ['db', 'nope'] })), ['db;loop 100']);
      assert.deepEqual(flat(await q({ namespace: ['prof', 'other'], pod: ['x-1', 'db-1'] })), ['x;spin 1000', 'db;loop 100']);
      // the other types apart, each with its own period
      const off = await q({}, { type: 'offcpu' });
      assert.deepEqual([flat(off), off.total, off.period], [['web;main;read_[k] 2000000'], 2e6, 1]);
      assert.deepEqual(flat(await q({}, { type: 'runq' })), ['web;main;a 400000']);
      // the range is [from, to) over the window's end
      assert.deepEqual(flat(await q({ workload: 'web' }, { range: { from: t + 10_000, to: t + 20_000 } })), ['web;main;a 17', 'web;main;b 5', 'web;main;c 1']);
      assert.deepEqual(flat(await q({ workload: 'web' }, { range: { from: t + 10_001, to: t + 20_001 } })), ['web;main;a 10', "web;o'brien\\x;-- 2", 'web;main;c 1']);
      // the limit keeps the largest; what it cut is counted and summed
      const top = await q({}, { limit: 2 });
      assert.deepEqual(flat(top), ['db;loop 100', 'web;main;a 20']);
      assert.deepEqual([top.total, top.droppedStacks, top.droppedValue], [128, 3, 8]);
      const none = await q({}, { limit: 0 });
      assert.deepEqual([none.stacks, none.total, none.droppedStacks, none.droppedValue], [[], 128, 5, 128]);
      // nothing matches: an empty profile, not an error
      assert.deepEqual(await q({ peer: 'x' }), { stacks: [], total: 0, droppedStacks: 0, droppedValue: 0, period: 0 }, 'profiles have no peer');
      assert.deepEqual(await q({}, { range: { from: t + MIN, to: t + 2 * MIN } }), { stacks: [], total: 0, droppedStacks: 0, droppedValue: 0, period: 0 });
    });
  });

  test(`${name}: a batch of 30,000 profile stacks goes in whole, and a small limit sums the rest`, () =>
    withStore(async (s) => {
      const t = recent() + 13 * MIN;
      const rows = Array.from({ length: 30_000 }, (_, i) => stack('n-prof-big', t, 'cpu', 'big', 'app-1', `app;main;f${i}`, i + 1));
      assert.ok(await s.apply(batch('n-prof-big', 'prof-big-inst', 1, t, [], [], rows)));
      const r = await s.profile({ type: 'cpu', range: { from: t, to: t + 1 }, filters: { node: 'n-prof-big' }, limit: 3 });
      assert.deepEqual(r.stacks, [
        { stack: 'app;main;f29999', value: 30_000 },
        { stack: 'app;main;f29998', value: 29_999 },
        { stack: 'app;main;f29997', value: 29_998 },
      ]);
      assert.equal(r.total, (30_000 * 30_001) / 2);
      assert.equal(r.droppedStacks, 29_997);
      assert.equal(r.droppedValue, r.total - 30_000 - 29_999 - 29_998);
    }));

  test(`${name}: maintain() drops profile stacks past raw retention, as it drops raw samples`, () =>
    withStore(async (s) => {
      const now = Date.now();
      const old = Math.floor((now - 8 * HOUR) / HOUR) * HOUR + 17 * MIN; // past raw retention (6 h)
      const fresh = recent() + 15 * MIN;
      assert.ok(
        await s.apply(
          batch('n-prof-ret', 'prof-ret-inst', 1, fresh, [], [], [stack('n-prof-ret', old, 'cpu', 'ret', 'app-1', 'app;old', 5), stack('n-prof-ret', fresh, 'cpu', 'ret', 'app-1', 'app;new', 6)]),
        ),
      );
      const ask = async (ts: number) => (await s.profile({ type: 'cpu', range: { from: ts, to: ts + MIN }, filters: { node: 'n-prof-ret' }, limit: 10 })).stacks;
      assert.deepEqual(await ask(old), [{ stack: 'app;old', value: 5 }], 'not maintained yet');
      await s.maintain(now);
      assert.deepEqual(await ask(old), [], 'no rollup keeps them');
      assert.deepEqual(await ask(fresh), [{ stack: 'app;new', value: 6 }]);
    }));

  test(`${name}: size() counts the bytes the store takes`, () =>
    withStore(async (s) => {
      assert.ok((await s.size()) > 0);
      assert.ok(s.location.length > 0);
    }));
}
