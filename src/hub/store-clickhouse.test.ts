import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClickHouseStore } from './store-clickhouse.js';
import { SUITE_OPTIONS, batch, storeSuite } from './store.suite.js';
import { ClickHouseServer } from '../../test/clickhouse.js';

// Under CI a server that cannot start is a failure; elsewhere the tests skip and say why.
let server: ClickHouseServer | undefined;
let why = '';
try {
  server = await ClickHouseServer.start();
} catch (err) {
  why = err instanceof Error ? err.message : String(err);
}
after(() => server?.stop());

const make = (database: string) => async (): Promise<ClickHouseStore> => {
  const s = new ClickHouseStore({ url: server!.url, username: 'default', password: '', database }, SUITE_OPTIONS);
  await s.open();
  return s;
};

if (!server) {
  if (process.env.CI === 'true') test('clickhouse-server starts for the store tests', () => assert.fail(why));
  else test('clickhouse store', { skip: `no clickhouse-server: ${why}` }, () => undefined);
} else {
  storeSuite('clickhouse', make('periscope_suite'));

  test('clickhouse: what the store holds survives a restart of the server', async () => {
    const t = Math.floor(Date.now() / 60_000) * 60_000 - 10 * 60_000;
    const labels = { namespace: 'r', pod: 'p-1' };
    let s = await make('periscope_restart')();
    assert.ok(await s.apply(batch('n-restart', 'restart-inst', 3, t, [{ metric: 'restart_total', labels, value: 8 }])));
    await s.close();
    await server.restart();
    s = await make('periscope_restart')();
    try {
      assert.equal(await s.lastSeq('restart-inst'), 3);
      const rows = await s.aggregate({ from: t, to: t + 60_000, metrics: ['restart_total'], groupBy: ['pod'] });
      assert.deepEqual(rows.map((r) => [r.group.pod, r.delta]), [['p-1', 8]]);
    } finally {
      await s.close();
    }
  });
}
