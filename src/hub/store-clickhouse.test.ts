import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ClickHouseStore } from './store-clickhouse.js';
import { FIRST_SCHEMA_LABELS, SUITE_OPTIONS, batch, storeSuite } from './store.suite.js';
import { seriesId } from './store.js';
import { createClient } from '@clickhouse/client';
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

  test('clickhouse: a store of the first schema gets the l7 label columns when it opens, read from the labels it holds', async () => {
    const t = Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000;
    const old = { namespace: 'm', workload: 'web', peer_port: '80', side: 'client', method: 'GET', route: "/o'ld", status_class: '5xx' };
    const oldId = seriesId('n-mig', 'mig_http_total', old);
    const boot = createClient({ url: server.url, username: 'default', password: '' });
    try {
      await boot.command({ query: 'DROP DATABASE IF EXISTS periscope_first' });
      await boot.command({ query: 'CREATE DATABASE periscope_first' });
      await boot.command({ query: `CREATE TABLE periscope_first.series (id Int64, node String, metric String, type String, labels String, ${FIRST_SCHEMA_LABELS.map((l) => `${l} String`).join(', ')}, first_seen Int64) ENGINE = ReplacingMergeTree ORDER BY id` });
      await boot.insert({ table: 'periscope_first.series', format: 'JSONEachRow', values: [{ id: oldId.toString(), node: 'n-mig', metric: 'mig_http_total', type: 'counter', labels: JSON.stringify(old), ...Object.fromEntries(FIRST_SCHEMA_LABELS.map((l) => [l, (old as Record<string, string>)[l] ?? ''])), first_seen: t }] });
      await boot.command({ query: 'CREATE TABLE periscope_first.samples (ts Int64, series Int64, value Float64, delta Nullable(Float64)) ENGINE = MergeTree PARTITION BY intDiv(ts, 3600000) ORDER BY (series, ts)' });
      await boot.insert({ table: 'periscope_first.samples', format: 'JSONEachRow', values: [{ ts: t, series: oldId.toString(), value: 7, delta: 7 }] });
    } finally {
      await boot.close();
    }
    const s = await make('periscope_first')();
    try {
      assert.ok(await s.apply(batch('n-mig', 'mig-inst', 1, t + 1000, [{ metric: 'mig_http_total', labels: { ...old, route: '/new', status_class: '2xx' }, value: 3 }])));
      const rows = await s.aggregate({ from: t, to: t + 60_000, metrics: ['mig_http_total'], filters: { side: 'client', method: 'GET' }, groupBy: ['route', 'status_class', 'namespace'] });
      assert.deepEqual(Object.fromEntries(rows.map((r) => [`${r.group.route} ${r.group.status_class} ${r.group.namespace}`, r.delta])), { "/o'ld 5xx m": 7, '/new 2xx m': 3 });
    } finally {
      await s.close();
    }
  });
}
