import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDbStore } from './store-duckdb.js';
import { SUITE_OPTIONS, batch, storeSuite } from './store.suite.js';

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
