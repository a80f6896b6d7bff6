import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryCollector } from './index.js';
import { TestCgroup, needsKernel } from '../../../test/kernel.js';
import { testContext } from '../../../test/context.js';
import { type OomKillEvent } from './index.js';

test('an OOM kill in a memory-limited cgroup is counted and reported as an event', async (t) => {
  if (!needsKernel(t)) return;
  const ctx = testContext();
  const collector = new MemoryCollector(ctx);
  const cg = new TestCgroup('oom', { memoryLimitBytes: 48 << 20 });
  t.after(() => {
    collector.close();
    cg.remove();
  });
  // writes 256 MiB into a 48 MiB cgroup: the kernel's OOM killer must step in
  const r = await cg.run(`exec python3 -c 'b = bytearray(256 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1'`);
  assert.equal(r.signal ?? (r.code === 137 ? 'SIGKILL' : r.code), 'SIGKILL', `the hog was killed (code ${r.code}, ${r.stderr})`);
  collector.poll();
  assert.equal(collector.oomKills().get(cg.id), 1, 'one OOM kill counted for the victim cgroup');
  const events = ctx.events.filter((e): e is OomKillEvent => e.type === 'oom_kill' && e.cgroup_id === cg.id);
  assert.equal(events.length, 1);
  const e = events[0]!;
  assert.equal(e.comm, 'python3');
  assert.equal(e.cgroup, cg.path);
  assert.ok(e.pid > 1);
  assert.ok(e.total_vm_bytes > 48 << 20, `victim size ${e.total_vm_bytes}`);
});
