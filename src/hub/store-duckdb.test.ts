import { after } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDbStore } from './store-duckdb.js';
import { SUITE_OPTIONS, storeSuite } from './store.suite.js';

const dir = mkdtempSync(join(tmpdir(), 'periscope-duckdb-'));
after(() => rmSync(dir, { recursive: true, force: true }));

storeSuite('duckdb', async () => {
  const s = new DuckDbStore(join(dir, 'hub.duckdb'), SUITE_OPTIONS);
  await s.open();
  return s;
});
