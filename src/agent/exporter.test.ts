import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Exporter, onBounds, type MetricSource } from './exporter.js';
import { cgroupSubject, type MetricDef, type Readings, type Sample } from '../collectors/contract.js';

const COUNTER: MetricDef = { type: 'counter', name: 'periscope_things_total', subject: 'cgroup', help: 'Things.' };
const GAUGE: MetricDef = { type: 'gauge', name: 'periscope_open_things', subject: 'cgroup', help: 'Open things.' };
const HIST: MetricDef = { type: 'histogram', name: 'periscope_wait_seconds', subject: 'cgroup', buckets: [1, 2, 4], help: 'Waits.' };

/** cgroup id → workload, as the enrichment stage would name it at the workload level */
function setup(names: Map<number, string>, opts: { maxSeries?: number } = {}): { exporter: Exporter; clock: { now: number } } {
  const clock = { now: 1_000 };
  const exporter = new Exporter({
    subjectLabels: (s) => ({ workload: names.get(s.id) ?? '' }),
    subjectLabelNames: ['workload'],
    graceMs: 10_000,
    now: () => clock.now,
    ...opts,
  });
  exporter.declare([COUNTER, GAUGE, HIST]);
  return { exporter, clock };
}

const source = (rows: Record<string, Sample[]>): MetricSource => ({
  name: 'test',
  metrics: [COUNTER, GAUGE, HIST],
  read: (): Readings => new Map(Object.entries(rows)),
});

/** The value of a series line in the text, by its exact label text. */
function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const row = (id: number, v: number): Sample => ({ subject: cgroupSubject(id), value: v });

test('a counter summed over cgroups never goes down when one of them expires, and goes after the grace period with the last', () => {
  const names = new Map([
    [1, 'cart'],
    [2, 'cart'],
  ]);
  const { exporter, clock } = setup(names);
  const cart = 'periscope_things_total{workload="cart"}';
  exporter.collect([source({ periscope_things_total: [row(1, 10), row(2, 5)] })]);
  assert.equal(value(exporter.text(), cart), 15);
  // a rollout: cgroup 1 is gone (its kernel entries were dropped), cgroup 2 goes on
  clock.now += 1_000;
  exporter.collect([source({ periscope_things_total: [row(2, 7)] })]);
  assert.equal(value(exporter.text(), cart), 17, 'what cgroup 1 counted stays in the sum');
  // every member gone: the last value stays for the grace period, then the series goes
  clock.now += 1_000;
  exporter.collect([source({ periscope_things_total: [] })]);
  assert.equal(value(exporter.text(), cart), 17);
  clock.now += 10_000;
  exporter.collect([source({ periscope_things_total: [] })]);
  assert.equal(value(exporter.text(), cart), undefined);
});

test('a cgroup whose labels change leaves its count in its old series and brings it to the new one', () => {
  const names = new Map([[1, '']]);
  const { exporter, clock } = setup(names);
  exporter.collect([source({ periscope_things_total: [row(1, 4)] })]);
  names.set(1, 'cart'); // the pod became known to the API
  clock.now += 1_000;
  exporter.collect([source({ periscope_things_total: [row(1, 6)] })]);
  const text = exporter.text();
  assert.equal(value(text, 'periscope_things_total{workload=""}'), 4, 'the old series does not drop to zero');
  assert.equal(value(text, 'periscope_things_total{workload="cart"}'), 6);
});

test('the counter of one cgroup never goes down, even if a read says less', () => {
  const { exporter } = setup(new Map([[1, 'a']]));
  exporter.collect([source({ periscope_things_total: [row(1, 10)] })]);
  exporter.collect([source({ periscope_things_total: [row(1, 9.5)] })]);
  assert.equal(value(exporter.text(), 'periscope_things_total{workload="a"}'), 10);
});

test('a gauge is a sum of what is live now, and its series goes with its last member', () => {
  const { exporter } = setup(new Map([[1, 'a'], [2, 'a']]));
  exporter.collect([source({ periscope_open_things: [row(1, 3), row(2, 4)] })]);
  assert.equal(value(exporter.text(), 'periscope_open_things{workload="a"}'), 7);
  exporter.collect([source({ periscope_open_things: [row(2, 1)] })]);
  assert.equal(value(exporter.text(), 'periscope_open_things{workload="a"}'), 1);
  exporter.collect([source({ periscope_open_things: [] })]);
  assert.equal(value(exporter.text(), 'periscope_open_things{workload="a"}'), undefined);
});

test('histograms add up by bucket bound, not by position', () => {
  const { exporter } = setup(new Map([[1, 'a'], [2, 'a']]));
  exporter.collect([
    source({
      periscope_wait_seconds: [
        { subject: cgroupSubject(1), value: { bounds: [1, 2, 4], cumulative: [1, 2, 3], count: 4, sum: 10 } },
        // counted with fewer bounds: its first bucket is the metric's second
        { subject: cgroupSubject(2), value: { bounds: [2, 4], cumulative: [5, 6], count: 6, sum: 7 } },
      ],
    }),
  ]);
  const text = exporter.text();
  assert.equal(value(text, 'periscope_wait_seconds_bucket{workload="a",le="1"}'), 1);
  assert.equal(value(text, 'periscope_wait_seconds_bucket{workload="a",le="2"}'), 2 + 5);
  assert.equal(value(text, 'periscope_wait_seconds_bucket{workload="a",le="4"}'), 3 + 6);
  assert.equal(value(text, 'periscope_wait_seconds_bucket{workload="a",le="+Inf"}'), 10);
  assert.equal(value(text, 'periscope_wait_seconds_count{workload="a"}'), 10);
  assert.equal(value(text, 'periscope_wait_seconds_sum{workload="a"}'), 17);
  assert.deepEqual(onBounds({ bounds: [0.5, 3], cumulative: [1, 2], count: 3, sum: 1 }, [1, 2, 4]).cumulative, [1, 1, 2]);
});

test('series beyond --max-series are not exported, and counted', () => {
  const names = new Map([[1, 'a'], [2, 'b'], [3, 'c']]);
  const { exporter } = setup(names, { maxSeries: 2 });
  exporter.collect([source({ periscope_things_total: [row(1, 1), row(2, 1), row(3, 1)] })]);
  const text = exporter.text();
  assert.equal(value(text, 'periscope_things_total{workload="a"}'), 1);
  assert.equal(value(text, 'periscope_things_total{workload="b"}'), 1);
  assert.equal(value(text, 'periscope_things_total{workload="c"}'), undefined);
  assert.deepEqual([...exporter.refused()], [['periscope_things_total', 1]]);
});

test('a source whose read fails keeps its last values', () => {
  const { exporter } = setup(new Map([[1, 'a']]));
  exporter.collect([source({ periscope_things_total: [row(1, 3)] })]);
  const failing: MetricSource = { name: 'broken', metrics: [COUNTER], read: () => { throw new Error('map gone'); } };
  exporter.collect([failing]);
  assert.equal(value(exporter.text(), 'periscope_things_total{workload="a"}'), 3);
});

test('the text format escapes help and label values, and promtool accepts it', () => {
  const odd: MetricDef = { type: 'counter', name: 'periscope_odd_total', labels: ['path'], help: 'Back\\slash and\nnewline.' };
  const exporter = new Exporter({ subjectLabels: () => ({}), subjectLabelNames: [] });
  exporter.declare([odd, HIST]);
  exporter.collect([
    {
      name: 'odd',
      metrics: [odd],
      read: () => new Map([['periscope_odd_total', [{ labels: { path: 'a "quoted"\\ \nline' }, value: 1.5e-7 }]]]),
    },
  ]);
  const text = exporter.text();
  assert.match(text, /^# HELP periscope_odd_total Back\\\\slash and\\nnewline\.$/m);
  assert.match(text, /^periscope_odd_total\{path="a \\"quoted\\"\\\\ \\nline"\} 1\.5e-7$/m);
  const file = join(mkdtempSync(join(tmpdir(), 'periscope-expo-')), 'metrics.txt');
  writeFileSync(file, text);
  execFileSync('sh', ['-c', `promtool check metrics < ${file}`]);
});

test('peers: each source names at most --max-peers of them, the rest fold into peer="other" and are counted; a folded counter still adds up', () => {
  const BYTES: MetricDef = { type: 'counter', name: 'periscope_bytes_total', subject: 'cgroup', peer: true, help: 'Bytes.' };
  const exporter = new Exporter({
    subjectLabels: (s) => ({ workload: s.id === 1 ? 'web' : 'api' }),
    subjectLabelNames: ['workload'],
    maxPeers: 2,
    peerLabels: (p) => ({ peer_kind: 'external', peer_namespace: '', peer_workload: '', peer: p.addr, peer_port: String(p.port ?? '') }),
  });
  exporter.declare([BYTES]);
  const rows = (n: number): Sample[] => [
    ...[1, 2, 3, 4].map((i) => ({ subject: cgroupSubject(1), peer: { addr: `10.0.0.${i}`, port: 443 }, value: n * i })),
    { subject: cgroupSubject(2), peer: { addr: '10.0.0.9', port: 443 }, value: n },
  ];
  const src = (n: number): MetricSource => ({ name: 'net', metrics: [BYTES], read: () => new Map([['periscope_bytes_total', rows(n)]]) });
  exporter.collect([src(1)]);
  const text = exporter.text();
  const series = (w: string, peer: string): number | undefined =>
    value(text, `periscope_bytes_total{workload="${w}",peer_kind="${peer === 'other' ? 'other' : 'external'}",peer_namespace="",peer_workload="",peer="${peer}",peer_port="${peer === 'other' ? '' : '443'}"}`);
  assert.equal(series('web', '10.0.0.1'), 1);
  assert.equal(series('web', '10.0.0.2'), 2);
  assert.equal(series('web', '10.0.0.3'), undefined, 'the third peer of web is not named');
  assert.equal(series('web', 'other'), 3 + 4, 'the third and fourth add up in "other"');
  assert.equal(series('api', '10.0.0.9'), 1, 'another source has its own share');
  assert.deepEqual([...exporter.folded()], [['periscope_bytes_total', 2]]);
  exporter.collect([src(2)]);
  assert.equal(value(exporter.text(), 'periscope_bytes_total{workload="web",peer_kind="other",peer_namespace="",peer_workload="",peer="other",peer_port=""}'), 14, 'the same peers stay named; other grows');
});

test('snapshot() holds the series text() exposes, label values in the family\'s label order', () => {
  const names = new Map([
    [1, 'cart'],
    [2, 'cart'],
    [3, 'web'],
  ]);
  const { exporter, clock } = setup(names);
  const h = (count: number): Sample => ({ subject: cgroupSubject(3), value: { bounds: [1, 2, 4], cumulative: [count, count, count], count, sum: count * 0.5 } });
  exporter.collect([source({ periscope_things_total: [row(1, 10), row(2, 5), row(3, 1)], periscope_open_things: [row(3, 7)], periscope_wait_seconds: [h(2)] })]);
  clock.now += 1_000;
  // cgroup 1 leaves: what it counted stays in cart's series, in the snapshot as in the text
  exporter.collect([source({ periscope_things_total: [row(2, 6), row(3, 1)], periscope_open_things: [row(3, 8)], periscope_wait_seconds: [h(3)] })]);
  const snap = new Map(exporter.snapshot().map((f) => [f.def.name, f]));
  const things = snap.get('periscope_things_total')!;
  assert.deepEqual(things.labelNames, ['workload']);
  assert.deepEqual(things.series, [
    { labels: ['cart'], value: 16 },
    { labels: ['web'], value: 1 },
  ]);
  assert.deepEqual(snap.get('periscope_open_things')!.series, [{ labels: ['web'], value: 8 }]);
  assert.deepEqual(snap.get('periscope_wait_seconds')!.series, [{ labels: ['web'], value: { cumulative: [3, 3, 3], count: 3, sum: 1.5 } }]);
  // every number of the snapshot is a line of the text
  const text = exporter.text();
  for (const f of snap.values()) {
    for (const s of f.series) {
      const labels = `{${f.labelNames.map((n, i) => `${n}="${s.labels[i]}"`).join(',')}}`;
      if (typeof s.value === 'number') assert.equal(value(text, `${f.def.name}${labels}`), s.value);
      else assert.equal(value(text, `${f.def.name}_count${labels}`), s.value.count);
    }
  }
});
