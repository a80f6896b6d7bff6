import { test } from 'node:test';
import assert from 'node:assert/strict';
import { run, needsKernel } from '../../test/kernel.js';
import { BIN } from '../../test/agent-process.js';
import { FEATURES } from '../kernel/features.js';
import { chooseAlternative } from '../kernel/bpf-object.js';
import { COLLECTORS } from '../collectors/registry.js';

test('doctor prints the capability table and the alternative of every collector', async (t) => {
  if (!needsKernel(t)) return;
  const json = await run(BIN, ['doctor', '--output', 'json']);
  const report = JSON.parse(json.stdout) as {
    ok: boolean;
    features: Record<string, { status: string }>;
    collectors: { name: string; alternative: string | null; note: string | null }[];
    memory: { default_max_cgroups: number; kernel_bytes: number };
  };
  // ok, and exit code 0, where every collector can run here (on 5.10 the network collector cannot: no
  // socket storage in tracing programs, and doctor says so with exit code 1)
  const runnable = COLLECTORS.every((c) => chooseAlternative(c.spec).chosen !== '');
  assert.equal(report.ok, runnable);
  assert.equal(json.code, runnable ? 0 : 1, json.stderr);
  assert.deepEqual(Object.keys(report.features), [...FEATURES]);
  assert.equal(report.features.tp_btf?.status, 'supported');
  // every registered collector, with the alternative the loader takes here
  assert.deepEqual(
    report.collectors.map((c) => [c.name, c.alternative]),
    COLLECTORS.map((c) => [c.name, chooseAlternative(c.spec).chosen || null]),
  );
  assert.ok(report.memory.default_max_cgroups >= 256 && report.memory.kernel_bytes > 0);

  const table = await run(BIN, ['doctor']);
  assert.equal(table.code, runnable ? 0 : 1);
  assert.match(table.stdout, /^FEATURE\s+STATUS\s+DETAIL$/m);
  assert.match(table.stdout, /^ringbuf\s+supported/m);
  for (const c of report.collectors) assert.match(table.stdout, new RegExp(`^${c.name}\\s+${c.alternative ?? 'NONE'}`, 'm'));
  // an alternative that does less than the collector's first says what, under the table
  for (const c of report.collectors) {
    const alt = COLLECTORS.find((d) => d.name === c.name)!.spec.alternatives.find((a) => a.name === c.alternative);
    assert.equal(c.note, alt?.note ?? null, `${c.name}: the note of ${c.alternative}`);
    if (c.note) assert.ok(table.stdout.includes(`${c.name} on ${c.alternative}: ${c.note}\n`), `${c.name}: its note in the table`);
  }
  assert.match(table.stdout, /^kernel maps: [\d.]+ MiB for --max-cgroups \d+ \(the default\)/m);
  t.diagnostic(table.stdout);
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

