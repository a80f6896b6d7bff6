import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestCgroup, eventually, needsKernel, run, scaled, sleep } from '../../test/kernel.js';
import { sample, startAgent } from '../../test/agent-process.js';

async function metrics(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
}

/** Ids of every BPF program loaded in the kernel now. */
async function progIds(): Promise<Set<number>> {
  const r = await run('bpftool', ['-j', 'prog', 'show']);
  return new Set((JSON.parse(r.stdout) as { id: number }[]).map((p) => p.id));
}

test('the agent serves per-cgroup metrics that promtool accepts, and detaches everything on SIGTERM', async (t) => {
  if (!needsKernel(t)) return;
  const before = await progIds();
  const agent = await startAgent(['--grace', '2']);
  const cg = new TestCgroup('agent');
  t.after(async () => {
    await agent.stop();
    cg.remove();
  });
  const during = await progIds();
  const ours = [...during].filter((id) => !before.has(id));
  assert.ok(ours.length >= 7, `the agent attached its programs (${ours.length} new)`);

  // a new cgroup is named within two seconds of its first activity
  const started = Date.now();
  await cg.run('for i in 1 2 3 4 5; do /bin/true; done');
  const text = await eventually(async () => {
    const m = await metrics(agent.url);
    return sample(m, 'periscope_process_execs_total', { cgroup: cg.path }) === 5 ? m : undefined;
  }, 2_000, `execs of ${cg.path} under its name`);
  t.diagnostic(`named after ${Date.now() - started} ms`);
  assert.ok((sample(text, 'periscope_cpu_seconds_total', { cgroup: cg.path }) ?? 0) > 0);
  assert.equal(sample(text, 'periscope_process_exits_total', { cgroup: cg.path }), 6);
  assert.equal(sample(text, 'periscope_collector_up', { collector: 'cpu', alternative: 'tp_btf' }), 1);
  assert.ok(sample(text, 'periscope_build_info', {}) === 1);
  assert.ok(sample(text, 'periscope_runqueue_latency_seconds_count', { cgroup: '/' }) !== undefined);
  for (const name of ['periscope_oom_kills_total', 'periscope_events_lost_total', 'periscope_context_switches_total']) {
    assert.match(text, new RegExp(`^# TYPE ${name} counter$`, 'm'));
  }
  assert.match(text, /^# TYPE periscope_runqueue_latency_seconds histogram$/m);

  // Prometheus' own linter finds nothing
  const file = join(tmpdir(), `periscope-metrics-${process.pid}.txt`);
  writeFileSync(file, text);
  const lint = await run('sh', ['-c', `promtool check metrics < ${file}`]);
  assert.equal(lint.code, 0, `promtool: ${lint.stdout}${lint.stderr}`);

  // a cgroup that is gone keeps its series for the grace period, then they are dropped
  cg.remove();
  await eventually(async () => (sample(await metrics(agent.url), 'periscope_process_execs_total', { cgroup: cg.path }) === undefined ? true : undefined), 15_000, 'series of the removed cgroup to go');

  assert.equal(await agent.stop(), 0, agent.log());
  assert.match(agent.log(), /SIGTERM, detaching/);
  // the kernel frees programs after an RCU grace period: give it a moment, not forever
  await eventually(async () => {
    const after = await progIds();
    return ours.every((id) => !after.has(id)) ? true : undefined;
  }, 5_000, 'every program of the agent to be unloaded after it exits');
});

test('the events API lists recent exec and exit events and streams new ones live', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await startAgent();
  const cg = new TestCgroup('events');
  t.after(async () => {
    await agent.stop();
    cg.remove();
  });

  // live: subscribe first, then cause an exec
  const ac = new AbortController();
  const res = await fetch(`${agent.url}/api/v1/events/stream?type=exec&cgroup=${encodeURIComponent(cg.path)}`, { signal: ac.signal });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const reader = res.body!.getReader();
  await cg.run('/bin/echo live-event >/dev/null');
  let buf = '';
  const live = await eventually(async () => {
    const { value } = (await reader.read()) as { value?: Uint8Array };
    buf += new TextDecoder().decode(value);
    const m = /^data: (.*)$/m.exec(buf);
    return m ? (JSON.parse(m[1]!) as { type: string; args: string[]; cgroup: string }) : undefined;
  }, 5_000, 'a live exec event');
  ac.abort();
  assert.equal(live.type, 'exec');
  assert.deepEqual(live.args, ['/bin/echo', 'live-event']);
  assert.equal(live.cgroup, cg.path);

  // recent: filters by type and cgroup
  await cg.run("sh -c 'exit 7'");
  await sleep(200);
  const body = (await (await fetch(`${agent.url}/api/v1/events?type=exit&cgroup=${encodeURIComponent(cg.path)}`)).json()) as {
    events: { type: string; exit_code: number; node: string; seq: number }[];
    last: number;
  };
  assert.ok(body.events.length >= 2, 'exits of echo, sh and the shell');
  assert.ok(body.events.every((e) => e.type === 'exit'));
  assert.ok(body.events.some((e) => e.exit_code === 7));
  assert.ok(body.last >= body.events[body.events.length - 1]!.seq);

  const bad = await fetch(`${agent.url}/api/v1/events?type=nonsense`);
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /unknown event type "nonsense"/);
});

test('cgroup churn: 100 cgroups come and go, their series are dropped after the grace period', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await startAgent(['--grace', '1']);
  const groups = Array.from({ length: 100 }, (_x, i) => new TestCgroup(`churn${i}`));
  t.after(async () => {
    await agent.stop();
    for (const g of groups) g.remove();
  });
  const baseline = sample(await metrics(agent.url), 'periscope_cgroups', {}) ?? 0;
  await Promise.all(groups.map((g) => g.run('/bin/true')));
  const busy = await metrics(agent.url);
  const seen = groups.filter((g) => sample(busy, 'periscope_process_execs_total', { cgroup: g.path }) === 1).length;
  assert.equal(seen, 100, 'every churned cgroup reported its exec under its name');
  for (const g of groups) g.remove();
  const after = await eventually(async () => {
    const m = await metrics(agent.url);
    return groups.every((g) => !m.includes(`cgroup="${g.path}"`)) ? m : undefined;
  }, 15_000, 'every series of the removed cgroups to go');
  assert.ok((sample(after, 'periscope_cgroups_expired_total', {}) ?? 0) >= 100);
  assert.ok((sample(after, 'periscope_cgroups', {}) ?? Infinity) <= baseline + 5, 'the cgroup table shrank back');
  assert.doesNotMatch(after, /cgroup="unresolved:/);
});

test('an agent in its own cgroup namespace still charges a running task to its cgroup', async (t) => {
  if (!needsKernel(t)) return;
  // as in a pod: the agent's cgroup namespace is rooted at its own cgroup, so /proc/PID/cgroup of
  // every other task reads "0::/../..." to it, and only the kernel's ids name them right
  const home = new TestCgroup('agent-cgroupns');
  const cg = new TestCgroup('burner');
  const agent = await startAgent(['--grace', '30'], { wrap: ['sh', '-c', `echo $$ > ${home.dir}/cgroup.procs && exec unshare --cgroup "$@"`, 'sh'] });
  t.after(async () => {
    await agent.stop();
    cg.remove();
    home.remove();
  });
  const inside = (await run('cat', [`/proc/${agent.child.pid}/cgroup`])).stdout;
  const burning = cg.run(`timeout ${scaled(2, 1)} sh -c 'while :; do :; done'`);
  await sleep(scaled(1500, 700));
  const midway = sample(await metrics(agent.url), 'periscope_cpu_seconds_total', { cgroup: cg.path }) ?? 0;
  await burning;
  t.diagnostic(`agent's view of itself: ${inside.trim()}; CPU seconds counted midway: ${midway}`);
  assert.ok(midway > scaled(1500, 700) / 1000 / 2, `a burner running for ${scaled(1500, 700)} ms shows ${midway} s while it still runs`);
});

test('a --max-cgroups the agent\'s memory limit cannot hold is refused in one line, before anything is loaded', async (t) => {
  if (!needsKernel(t)) return;
  const home = new TestCgroup('agent-limited', { memoryLimitBytes: 200 << 20 });
  t.after(() => home.remove());
  const bin = fileURLToPath(new URL('../../../bin/periscope', import.meta.url));
  const r = await run('sh', ['-c', `${home.enter} && exec ${bin} agent --listen 127.0.0.1:0 --max-cgroups 1048576`]);
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 2, r.stderr);
  assert.match(lines[0]!, /^periscope: --max-cgroups 1048576 needs \d+ MiB of kernel maps on \d+ CPUs .* does not fit its memory limit of 200 MiB/);
  assert.match(lines[1]!, /^ {2}fix: use --max-cgroups \d+ or less, or raise the memory limit/);
  // the number it offers does fit
  const offered = /use --max-cgroups (\d+)/.exec(lines[1]!)![1]!;
  const ok = await run('sh', ['-c', `${home.enter} && exec ${bin} agent --listen 127.0.0.1:0 --max-cgroups ${offered} & pid=$!; sleep 4; kill $pid; wait $pid`]);
  assert.match(ok.stderr, /collectors running/, ok.stderr);
});
