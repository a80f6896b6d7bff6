/**
 * Several agents on one machine: each restricted to its cgroup subtree (--cgroup-subtree) exports and
 * logs only what happens below it, so two agents report as two nodes and nothing is counted twice.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, inSubtree } from './agent.js';
import { Shipper, agentShipInput } from './shipper.js';
import { checkBatch } from '../wire/ingest.js';
import { findCgroup2Mount } from '../inventory/cgroups.js';
import { eventually, needsKernel, run, sleep } from '../../test/kernel.js';

test('inSubtree: the subtree itself and paths below it, not a sibling that shares a prefix', () => {
  assert.ok(inSubtree('/a/b', '/a/b'));
  assert.ok(inSubtree('/a/b/c', '/a/b'));
  assert.ok(!inSubtree('/a/bc', '/a/b'));
  assert.ok(!inSubtree('/', '/a'));
  assert.ok(inSubtree('/anything', '/'));
});

test('two agents with two cgroup subtrees each see only their own workload', async (t) => {
  if (!needsKernel(t)) return;
  const root = findCgroup2Mount();
  const base = `/periscope-test-${process.pid}-subtree`;
  const dirs = [base, `${base}/node-a`, `${base}/node-b`, `${base}/node-a/work`, `${base}/node-b/work`];
  for (const d of dirs) mkdirSync(join(root, d));
  const agents = ['a', 'b'].map((n) => new Agent({ collectors: ['process'], node: `node-${n}`, cgroupSubtree: `${base}/node-${n}`, log: () => undefined }));
  t.after(async () => {
    for (const a of agents) a.stop();
    for (const d of [...dirs].reverse()) {
      for (let i = 0; i < 50 && existsSync(join(root, d)); i++) {
        try {
          rmdirSync(join(root, d));
        } catch {
          await sleep(20);
        }
      }
    }
  });
  for (const a of agents) a.start();
  // node-a's workload execs 2 programs, node-b's 3
  const work = (n: string, execs: number): Promise<{ code: number | null; stderr: string }> =>
    run('sh', ['-c', `echo $$ > ${join(root, base, `node-${n}`, 'work', 'cgroup.procs')} || exit 97\n${'/bin/true\n'.repeat(execs)}`]);
  for (const r of await Promise.all([work('a', 2), work('b', 3)])) assert.equal(r.code, 0, r.stderr);

  for (const [agent, own, execs] of [
    [agents[0]!, 'a', 2],
    [agents[1]!, 'b', 3],
  ] as const) {
    const subtree = `${base}/node-${own}`;
    const snapshot = await eventually(() => {
      agent.collect();
      const snap = agent.exporter.snapshot();
      const fam = snap.find((f) => f.def.name === 'periscope_process_execs_total')!;
      const i = fam.labelNames.indexOf('cgroup');
      return fam.series.find((s) => s.labels[i] === `${subtree}/work`)?.value === execs ? snap : undefined;
    }, 5_000, `node-${own} to count the execs of its workload`);
    // every series named by a cgroup is inside the subtree; rows of the agent itself stay
    for (const f of snapshot) {
      const i = f.labelNames.indexOf('cgroup');
      if (i < 0) continue;
      for (const s of f.series) assert.ok(inSubtree(s.labels[i]!, subtree), `${agent.node}: ${f.def.name} has a series of ${s.labels[i]}`);
    }
    assert.ok(snapshot.some((f) => f.def.name === 'periscope_collector_up' && f.series.length > 0));
    const events = agent.events.newest(10_000);
    assert.ok(events.some((e) => e.type === 'exec' && e.cgroup === `${subtree}/work`), `${agent.node} logged its workload's execs`);
    for (const e of events) assert.ok(inSubtree(e.cgroup, subtree), `${agent.node} logged an event of ${e.cgroup}`);

    // its batches say which subtree they cover
    const shipper = new Shipper({ hub: 'http://127.0.0.1:1', node: agent.node, cgroupSubtree: agent.cgroupSubtree, collect: agentShipInput(agent), log: () => undefined });
    const batch = shipper.build(agentShipInput(agent)());
    assert.equal(batch.agent.cgroup_subtree, subtree);
    assert.equal(batch.agent.node, `node-${own}`);
    assert.ok(checkBatch(batch).ok);
  }
});
