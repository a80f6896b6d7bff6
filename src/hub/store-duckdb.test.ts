import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { DuckDbStore } from './store-duckdb.js';
import { FIRST_SCHEMA_LABELS, SUITE_OPTIONS, batch, storeSuite } from './store.suite.js';
import { seriesId } from './store.js';

const dir = mkdtempSync(join(tmpdir(), 'periscope-duckdb-'));
after(() => rmSync(dir, { recursive: true, force: true }));

storeSuite('duckdb', async () => {
  const s = new DuckDbStore(join(dir, 'hub.duckdb'), SUITE_OPTIONS);
  await s.open();
  return s;
});

test('duckdb: a batch that fails half-way leaves nothing behind (one transaction)', async () => {
  const s = new DuckDbStore(join(dir, 'atomic.duckdb'), SUITE_OPTIONS);
  await s.open();
  try {
    const t = Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000;
    const good = batch('n-atomic', 'atomic-inst', 1, t, [{ metric: 'atomic_total', labels: { pod: 'p' }, value: 5 }]);
    // its samples and series go in first; the event's time is not a number, so appending it throws
    const bad = { ...good, events: [{ ...good.samples[0], ts: Number.NaN, node: 'n-atomic', type: 'exec', namespace: '', pod: '', container: '', workload_kind: '', workload: '', cgroup: '', body: '{}' }] };
    await assert.rejects(s.apply(bad));
    assert.equal(await s.lastSeq('atomic-inst'), 0);
    const q = { from: t, to: t + 60_000, metrics: ['atomic_total'], groupBy: [] };
    assert.deepEqual(await s.aggregate(q), []);
    assert.deepEqual(await s.nodes(), []);
    assert.equal(await s.apply(good), true, 'the same seq applies once it is whole');
    assert.equal((await s.aggregate(q))[0]?.delta, 5);
  } finally {
    await s.close();
  }
});

test('duckdb: batches that arrive together are written together, and each gets its own answer', async () => {
  const s = new DuckDbStore(join(dir, 'group.duckdb'), SUITE_OPTIONS);
  await s.open();
  try {
    const t = Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000;
    const b = (inst: string, seq: number, v: number) => batch('n-group', inst, seq, t + seq * 1000, [{ metric: 'group_total', labels: { pod: inst }, value: v, delta: v }]);
    const settle = async (ps: Promise<boolean>[]) => (await Promise.allSettled(ps)).map((r) => (r.status === 'fulfilled' ? r.value : 'rejected'));
    // one group: a duplicate and an older seq of an instance inside it are refused, the rest applied
    assert.deepEqual(await settle([s.apply(b('g-a', 1, 1)), s.apply(b('g-a', 2, 2)), s.apply(b('g-a', 2, 100)), s.apply(b('g-b', 1, 5)), s.apply(b('g-a', 1, 1000))]), [true, true, false, true, false]);
    // a batch that cannot be written fails alone: the others of its group are applied
    const good = b('g-bad', 1, 7);
    const bad = { ...good, events: [{ ts: Number.NaN, node: 'n-group', type: 'exec', namespace: '', pod: '', container: '', workload_kind: '', workload: '', cgroup: '', body: '{}' }] };
    assert.deepEqual(await settle([s.apply(b('g-a', 3, 3)), s.apply(bad), s.apply(b('g-b', 2, 6))]), [true, 'rejected', true]);
    const q = { from: t, to: t + 60_000, metrics: ['group_total'], groupBy: ['pod'] as const };
    assert.deepEqual(Object.fromEntries((await s.aggregate(q)).map((r) => [r.group.pod, r.delta])), { 'g-a': 6, 'g-b': 11 });
    assert.deepEqual([await s.lastSeq('g-a'), await s.lastSeq('g-b'), await s.lastSeq('g-bad')], [3, 2, 0]);
    assert.equal(await s.apply(good), true, 'the failed seq applies once it is whole');
  } finally {
    await s.close();
  }
});

test('duckdb: a store of the first schema gets the l7 label columns when it opens, filled from the labels it holds', async () => {
  const path = join(dir, 'first-schema.duckdb');
  const t = Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000;
  const old = { namespace: 'm', workload: 'web', peer_port: '80', side: 'client', method: 'GET', route: "/o'ld", status_class: '5xx' };
  const oldId = seriesId('n-mig', 'mig_http_total', old);
  // the tables as the first release made them, with a series of l7 labels and a sample of it
  const db = await DuckDBInstance.create(path);
  const c = await db.connect();
  await c.run(`CREATE TABLE series (id BIGINT PRIMARY KEY, node VARCHAR NOT NULL, metric VARCHAR NOT NULL, type VARCHAR NOT NULL, labels VARCHAR NOT NULL, ${FIRST_SCHEMA_LABELS.map((l) => `${l} VARCHAR NOT NULL`).join(', ')}, first_seen BIGINT NOT NULL)`);
  await c.run('CREATE TABLE samples (ts BIGINT NOT NULL, series BIGINT NOT NULL, value DOUBLE NOT NULL, delta DOUBLE)');
  await c.run(`INSERT INTO series VALUES ($id, 'n-mig', 'mig_http_total', 'counter', $labels, ${FIRST_SCHEMA_LABELS.map((l) => `'${(old as Record<string, string>)[l] ?? ''}'`).join(', ')}, $t)`, { id: oldId, labels: JSON.stringify(old), t });
  await c.run('INSERT INTO samples VALUES ($t, $id, 7, 7)', { t, id: oldId });
  c.closeSync();
  db.closeSync();
  for (let round = 0; round < 2; round++) {
    const s = new DuckDbStore(path, SUITE_OPTIONS);
    await s.open();
    try {
      if (round === 0) assert.ok(await s.apply(batch('n-mig', 'mig-inst', 1, t + 1000, [{ metric: 'mig_http_total', labels: { ...old, route: '/new', status_class: '2xx' }, value: 3 }])), 'a new series goes in after the added columns');
      const rows = await s.aggregate({ from: t, to: t + 60_000, metrics: ['mig_http_total'], filters: { side: 'client', method: 'GET' }, groupBy: ['route', 'status_class', 'namespace'] });
      assert.deepEqual(Object.fromEntries(rows.map((r) => [`${r.group.route} ${r.group.status_class} ${r.group.namespace}`, r.delta])), { "/o'ld 5xx m": 7, '/new 2xx m': 3 }, `round ${round}`);
    } finally {
      await s.close();
    }
  }
});
