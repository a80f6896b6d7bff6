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
