/**
 * `periscope hub` and `periscope run` as a new user meets them: each mistake in one line with the fix,
 * before a store is opened or a port taken.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../test/kernel.js';
import { BIN } from '../../test/agent-process.js';

async function refused(args: string[]): Promise<[string, string]> {
  const r = await run(BIN, args);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, `two lines, not:\n${r.stderr}`);
  assert.match(lines[1]!, /^ {2}fix: /);
  return [lines[0]!.replace(/^periscope: /, ''), lines[1]!];
}

test('periscope hub refuses a bad store, retention, listen address or token in one line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-hub-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'short'), 'abc');
  const [store, fix] = await refused(['hub', '--store', 'postgres://x']);
  assert.match(store, /postgres:\/\/x/);
  assert.match(fix, /duckdb:PATH|clickhouse:/);
  const [secret] = await refused(['hub', '--store', 'clickhouse:http://u:hunter2@127.0.0.1:1/db', '--raw-retention', '1m']);
  assert.equal(secret, '--raw-retention must be between 10 minutes and 30 days, not 1m');
  assert.doesNotMatch((await run(BIN, ['hub', '--store', 'clickhouse:ftp://u:hunter2@x/db'])).stderr, /hunter2/, 'a password is never printed');
  assert.match((await refused(['hub', '--raw-retention', 'soon']))[0], /--raw-retention wants a duration such as 30m, 6h or 7d, not "soon"/);
  assert.match((await refused(['hub', '--raw-retention', '2d', '--rollup-retention', '1d']))[0], /--rollup-retention is shorter than --raw-retention/);
  assert.match((await refused(['hub', '--listen', '0.0.0.0:0']))[0], /^listening on 0\.0\.0\.0 without --token-file would let anyone who reaches it write into this cluster's data/);
  assert.match((await refused(['hub', '--token-file', join(dir, 'short')]))[0], /holds a token shorter than 16 characters/);
  assert.match((await refused(['hub', '--token-file', join(dir, 'missing')]))[0], /ENOENT/);
  assert.match((await refused(['hub', '--tls-cert', join(dir, 'short')]))[0], /--tls-cert and --tls-key go together/);
  assert.match((await refused(['hub', '--frobnicate']))[0], /unknown flag --frobnicate/);
  const help = await run(BIN, ['hub', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--store SPEC/);
});

test('periscope run refuses a bad data directory, interval or listen address in one line', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-run-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'file'), '');
  assert.match((await refused(['run', '--interval', '0']))[0], /--interval must be between 1 and 300 seconds/);
  const [open, fix] = await refused(['run', '--listen', '0.0.0.0:0']);
  assert.match(open, /^listening on 0\.0\.0\.0 without --token-file/);
  assert.equal(fix, '  fix: pass --token-file FILE, or listen on 127.0.0.1');
  assert.match((await refused(['run', '--data-dir', join(dir, 'file', 'data')]))[0], /--data-dir .*\/file\/data: ENOTDIR/);
  const help = await run(BIN, ['run', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--data-dir DIR/);
});
