import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MEMORY_SPEC, MemoryCollector, type OomKillEvent } from './index.js';
import { alternativesHere, TestCgroup, needsKernel } from '../../../test/kernel.js';
import { testContext } from '../../../test/context.js';


for (const alt of alternativesHere(MEMORY_SPEC)) {
  test(`an OOM kill in a memory-limited cgroup is counted for the victim's cgroup and reported as an event (${alt})`, async (t) => {
    if (!needsKernel(t)) return;
    const ctx = testContext();
    const collector = new MemoryCollector(ctx, { alternative: alt });
    const cg = new TestCgroup('oom', { memoryLimitBytes: 48 << 20 });
    t.after(() => {
      collector.close();
      cg.remove();
    });
    // writes 256 MiB into a 48 MiB cgroup: the kernel's OOM killer must step in
    const r = await cg.run(`exec /usr/bin/python3 -c 'b = bytearray(256 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1'`, 120_000);
    assert.equal(r.signal ?? (r.code === 137 ? 'SIGKILL' : r.code), 'SIGKILL', `the hog was killed (code ${r.code}, ${r.stderr})`);
    collector.poll();
    const events = ctx.events.filter((e): e is OomKillEvent => e.type === 'oom_kill');
    assert.deepEqual(
      events.map((e) => [e.cgroup, e.victim_found]),
      [[cg.path, true]],
      'one kill, named with the victim and its cgroup: never pid 0 or cgroup 0',
    );
    assert.equal(collector.oomKills().get(cg.id), 1, 'one OOM kill counted for the victim cgroup');
    assert.equal(collector.oomKills().get(0), undefined, 'nothing counted for an unknown victim');
    const e = events[0]!;
    assert.equal(e.comm, 'python3');
    assert.ok(e.pid > 1);
    assert.ok(e.total_vm_bytes > 48 << 20, `victim size ${e.total_vm_bytes}`);
  });
}
