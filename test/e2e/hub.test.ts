/**
 * The hub end to end, as separate processes: `periscope hub` with its DuckDB file, two `periscope
 * agent`s on this machine reporting as two nodes (each restricted to its own cgroup subtree), and
 * real CPU work in each subtree. Also `periscope run`, the README's main job.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, freePort, startAgent, startPeriscope as startProc, sumOf, type RunningAgent } from '../agent-process.js';
import { eventually, needsKernel, sleep, TestCgroup } from '../kernel.js';
import { type NodesResponse, type WorkloadEntry, type WorkloadsResponse } from '../../src/wire/hub.js';

const TOKEN = 'e2e-hub-token-0123456789abcdef';

async function getJson<T>(url: string, token?: string): Promise<T> {
  const r = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  assert.equal(r.status, 200, `${url}: ${await r.clone().text()}`);
  return (await r.json()) as T;
}

const burn = (cg: TestCgroup, seconds: number): Promise<unknown> => cg.run(`timeout ${seconds} sh -c 'while :; do :; done'; true`, (seconds + 30) * 1000);

test('two agents and a hub: each node\'s workloads within 10 s, CPU within 2% of cpu.stat, and a 30 s outage loses and doubles nothing', async (t) => {
  if (!needsKernel(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'periscope-hub-e2e-'));
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, TOKEN);
  const port = await freePort();
  const hubArgs = ['hub', '--listen', `127.0.0.1:${port}`, '--store', `duckdb:${join(dir, 'hub.duckdb')}`, '--token-file', tokenFile];
  let hub = await startProc(hubArgs, 'workloads');
  const cgroups = [new TestCgroup('node-a'), new TestCgroup('node-b')];
  const agents: RunningAgent[] = [];
  t.after(async () => {
    for (const a of agents) await a.stop();
    await hub.stop();
    for (const c of cgroups) c.remove();
    rmSync(dir, { recursive: true, force: true });
  });
  const nodes = ['node-a', 'node-b'];
  for (const [i, cg] of cgroups.entries()) {
    agents.push(
      await startAgent([
        '--node', nodes[i]!, '--cgroup-subtree', cg.path, '--no-kubernetes', '--collectors', 'cpu,process',
        '--hub', `http://127.0.0.1:${port}`, '--token-file', tokenFile, '--hub-interval', '1',
      ]),
    );
  }
  const workloads = async (): Promise<WorkloadEntry[]> =>
    (await getJson<WorkloadsResponse>(`${hub.url}/api/v1/workloads?group=container&from=-1h&limit=1000`, TOKEN)).workloads;
  const entry = (list: WorkloadEntry[], cg: TestCgroup): WorkloadEntry | undefined => list.find((w) => w.cgroup === cg.path);

  // 1. workloads appear with the right node within 10 s of starting
  const started = Date.now();
  const burning = cgroups.map((cg) => burn(cg, 4));
  const seen = await eventually(
    async () => {
      const list = await workloads();
      return cgroups.every((cg) => (entry(list, cg)?.cpu_seconds ?? 0) > 0) ? list : undefined;
    },
    10_000,
    'both workloads in /api/v1/workloads',
  );
  const appearedMs = Date.now() - started;
  for (const [i, cg] of cgroups.entries()) {
    const e = entry(seen, cg)!;
    assert.deepEqual(e.nodes, [nodes[i]], `${cg.path} is reported by its own node only: no double counting`);
    assert.equal(typeof e.cpu_seconds, 'number');
  }
  t.diagnostic(`workloads appeared after ${appearedMs} ms`);
  await Promise.all(burning);

  // 2. CPU seconds within 2% of the cgroups' cpu.stat
  // after an outage an agent retries on its backoff, capped at 30 s: the wait covers one full step of it
  const agree = async (what: string, timeoutMs: number): Promise<void> => {
    await eventually(
      async () => {
        const list = await workloads();
        return cgroups.every((cg) => {
          const want = cg.cpuStatUsageSeconds();
          const got = entry(list, cg)?.cpu_seconds ?? 0;
          return Math.abs(got - want) <= 0.02 * want;
        })
          ? true
          : undefined;
      },
      timeoutMs,
      what,
    ).catch(async (err: Error) => {
      const list = await workloads();
      throw new Error(`${err.message}: ${cgroups.map((cg) => `${cg.path} hub ${entry(list, cg)?.cpu_seconds} cpu.stat ${cg.cpuStatUsageSeconds()}`).join('; ')}`);
    });
  };
  await agree('CPU seconds within 2% of cpu.stat', 15_000);

  // 3. the hub goes away for 30 s while the workloads run; the agents keep what they measure
  assert.equal(await hub.stop(), 0, 'the hub stops cleanly on SIGTERM');
  const outage = Date.now();
  await Promise.all(cgroups.map((cg) => burn(cg, 5)));
  await sleep(Math.max(0, 30_000 - (Date.now() - outage)));
  for (const a of agents) {
    const text = await (await fetch(`${a.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    assert.ok(sumOf(text, 'periscope_hub_send_errors_total', {}) > 0, `the agent saw the hub go: ${a.log().slice(-2000)}`);
  }
  hub = await startProc(hubArgs, 'workloads');
  await agree('CPU seconds across the outage within 2% of cpu.stat: nothing missing, nothing counted twice', 45_000);
  const after = await getJson<NodesResponse>(`${hub.url}/api/v1/nodes`, TOKEN);
  assert.deepEqual(after.nodes.map((n) => n.node).sort(), nodes);
  for (const n of after.nodes) {
    assert.equal(n.connected, true);
    assert.equal(n.dropped.batches, 0, `${n.node} dropped no batch`);
    assert.equal(n.cgroup_subtree, cgroups[nodes.indexOf(n.node)]!.path);
  }
  for (const a of agents) {
    const text = await (await fetch(`${a.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })).text();
    assert.equal(sumOf(text, 'periscope_hub_batches_dropped_total', {}), 0);
  }
});

test('`periscope run`: the hub lists this machine\'s workloads within 10 s, and started again it finds its data', async (t) => {
  if (!needsKernel(t)) return;
  const dir = mkdtempSync(join(tmpdir(), 'periscope-run-e2e-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const args = ['run', '--listen', '127.0.0.1:0', '--data-dir', dir, '--no-kubernetes', '--node', 'run-node'];
  const started = Date.now();
  let run = await startProc(args, 'workloads');
  t.after(() => run.stop());
  const list = await eventually(
    async () => {
      const w = await getJson<WorkloadsResponse>(`${run.url}/api/v1/workloads?group=container&from=-5m`);
      return w.workloads.length > 0 ? w.workloads : undefined;
    },
    10_000,
    'this machine\'s workloads in the hub',
  );
  t.diagnostic(`${list.length} workloads after ${Date.now() - started} ms`);
  assert.ok(list.every((w) => w.node === 'run-node'));
  // the README's sample output of `make run` is this banner (the node, the data directory and the ports aside)
  const readme = readFileSync(fileURLToPath(new URL('../../../README.md', import.meta.url)), 'utf8');
  const sample = /`make run` prints where to look:\n\n```\n([\s\S]*?)```/.exec(readme)?.[1];
  const banner = /^periscope \S+ on node [\s\S]*?\n {2}top: .*\n/m.exec(run.log())?.[0];
  const hubPort = new URL(run.url).port;
  const normal = (text: string): string =>
    text.replaceAll(`:${hubPort}`, ':9464').replaceAll(dir, '/var/lib/periscope').replace('on node run-node:', 'on node vm:').replace(/127\.0\.0\.1:\d+\/metrics \(this node/, '127.0.0.1:PORT/metrics (this node');
  assert.equal(banner && normal(banner), sample);
  // `periscope top` reads the same hub: one snapshot as JSON
  const top = spawnSync(BIN, ['top', '--hub', run.url, '--group', 'container', '--interval', '60', '--output', 'json'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(top.status, 0, top.stderr);
  const snapshot = JSON.parse(top.stdout) as WorkloadsResponse;
  assert.ok(snapshot.workloads.length > 0 && snapshot.workloads.every((w) => w.node === 'run-node'), top.stdout.slice(0, 500));
  const firstStop = new Date().toISOString();
  assert.equal(await run.stop(), 0);

  run = await startProc(args, 'workloads');
  // the first run's samples, from before it stopped, come back from the store on disk
  const range = `from=${new Date(started).toISOString()}&to=${firstStop}`;
  const w = await getJson<WorkloadsResponse>(`${run.url}/api/v1/workloads?group=container&${range}`);
  assert.ok(w.workloads.length > 0 && w.workloads.some((e) => e.cpu_seconds > 0), 'the first run\'s workloads are still there');
  const nodes = (await getJson<NodesResponse>(`${run.url}/api/v1/nodes`)).nodes;
  assert.deepEqual(nodes.map((n) => n.node), ['run-node']);
});
