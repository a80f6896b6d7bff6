import { test } from 'node:test';
import assert from 'node:assert/strict';
import { maskSpec, openStore } from './stores.js';
import { PeriscopeError } from '../kernel/errors.js';

const OPTS = { rawRetentionMs: 3_600_000, rollupRetentionMs: 86_400_000 };

test('duckdb:PATH opens a DuckDB store on the file', () => {
  const s = openStore('duckdb:/tmp/x.duckdb', OPTS);
  assert.equal(s.kind, 'duckdb');
  assert.equal(s.location, 'duckdb:/tmp/x.duckdb');
  assert.equal(openStore('duckdb::memory:', OPTS).location, 'duckdb (in memory)');
});

test('clickhouse:URL opens a ClickHouse store and never shows the password', () => {
  const s = openStore('clickhouse:http://hub:s3cr%2Ft@ch.example:8123/metrics', OPTS);
  assert.equal(s.kind, 'clickhouse');
  assert.equal(s.location, 'clickhouse:http://hub:***@ch.example:8123/metrics');
  assert.equal(openStore('clickhouse:https://ch:8443', OPTS).location, 'clickhouse:https://default@ch:8443/periscope');
  assert.equal(maskSpec('clickhouse:http://u:pw@h:1/d'), 'clickhouse:http://u:***@h:1/d');
});

test('a bad spec is a BAD_ARGUMENT naming the accepted forms, without the password', () => {
  for (const spec of ['sqlite:/tmp/x', 'duckdb:', 'clickhouse:ftp://u:pw@h/db', 'clickhouse:http://u:pw@h:1/bad-name', 'clickhouse:nonsense', '']) {
    assert.throws(
      () => openStore(spec, OPTS),
      (e: unknown) => e instanceof PeriscopeError && e.code === 'BAD_ARGUMENT' && /duckdb:PATH/.test(e.hint) && /clickhouse:http/.test(e.hint) && !e.message.includes(':pw@'),
      spec,
    );
  }
});
