import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run, needsKernel } from '../../test/kernel.js';
import { BIN } from '../../test/agent-process.js';

test('doctor prints the capability table and the alternative of every collector', async (t) => {
  if (!needsKernel(t)) return;
  const json = await run(BIN, ['doctor', '--output', 'json']);
  assert.equal(json.code, 0, json.stderr);
  const report = JSON.parse(json.stdout) as { ok: boolean; features: Record<string, { status: string }>; collectors: { name: string; alternative: string }[] };
  assert.equal(report.ok, true);
  assert.equal(report.features.tp_btf?.status, 'supported');
  assert.deepEqual(report.collectors.map((c) => [c.name, c.alternative]), [['process', 'tp_btf'], ['cpu', 'tp_btf'], ['memory', 'tp_btf']]);

  const table = await run(BIN, ['doctor']);
  assert.equal(table.code, 0);
  assert.match(table.stdout, /^FEATURE\s+STATUS\s+DETAIL$/m);
  assert.match(table.stdout, /^ringbuf\s+supported/m);
  assert.match(table.stdout, /^cpu\s+tp_btf/m);
});

test('doctor without privileges exits non-zero with one line saying what is missing and one with the fix', async (t) => {
  if (!needsKernel(t)) return;
  const r = await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', BIN, 'doctor']);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 2, r.stderr);
  assert.match(lines[0]!, /^periscope: missing capability: BPF needs CAP_BPF and CAP_PERFMON/);
  assert.match(lines[1]!, /^ {2}fix: run as root/);
});

test('bad flags get a clear error', async () => {
  const r = await run(BIN, ['agent', '--listen', 'nonsense']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--listen wants HOST:PORT, not "nonsense"/);
  const u = await run(BIN, ['frobnicate']);
  assert.equal(u.code, 1);
  assert.match(u.stderr, /unknown command "frobnicate"/);
  const h = await run(BIN, ['--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /^usage: periscope/);
});
