import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROCESS_SPEC, ProcessCollector, splitArgs, type ExecEvent, type ExitEvent } from './index.js';
import { alternativesHere, TestCgroup, eventually, helper, needsKernel, scaled, sleep } from '../../../test/kernel.js';
import { testContext } from '../../../test/context.js';

test('splits the kernel argument area into arguments', () => {
  assert.deepEqual(splitArgs('ls\0-l\0/tmp\0'), ['ls', '-l', '/tmp']);
  assert.deepEqual(splitArgs('a\0\0b\0'), ['a', '', 'b']);
  assert.deepEqual(splitArgs(''), []);
});


function setup(name: string, alternative?: string, opts: { eventRingBytes?: number } = {}) {
  const ctx = testContext();
  const collector = new ProcessCollector(ctx, { ...opts, ...(alternative ? { alternative } : {}) });
  const cg = new TestCgroup(name);
  return {
    ctx,
    collector,
    cg,
    done: (): void => {
      collector.close();
      cg.remove();
    },
  };
}

for (const alt of alternativesHere(PROCESS_SPEC)) {
  test(`counts every exec in a cgroup exactly (${alt})`, async (t) => {
    if (!needsKernel(t)) return;
    const { ctx, collector, cg, done } = setup('execs', alt);
    t.after(done);
    const n = scaled(1000, 50);
    const r = await cg.run(`i=0; while [ $i -lt ${n} ]; do /bin/true; i=$((i+1)); done`, 300_000);
    assert.equal(r.code, 0, r.stderr);
    collector.poll();
    const counts = collector.counts().get(cg.id);
    assert.ok(counts, 'the cgroup has process counters');
    assert.equal(counts.execs, n);
    assert.equal(counts.forks, n, 'one new process per /bin/true');
    assert.equal(counts.exits, n + 1, 'every /bin/true and the shell');
    const execs = ctx.events.filter((e): e is ExecEvent => e.type === 'exec' && e.cgroup_id === cg.id);
    assert.equal(execs.length + collector.drops().events, n, 'every exec is an event or a counted drop');
    assert.equal(execs[0]?.filename, '/bin/true');
    assert.equal(execs[0]?.cgroup, cg.path);
    assert.equal(collector.drops().aggregates, 0);
  });

  test(`a child cloned into another cgroup is charged there, not to its parent's (${alt})`, async (t) => {
    if (!needsKernel(t)) return;
    const { ctx, collector, cg: parent, done } = setup('clone-parent', alt);
    const target = new TestCgroup('clone-target');
    t.after(() => {
      done();
      target.remove();
    });
    // the shell (in parent) forks the helper (in parent), which clone3s /bin/true straight into target
    const r = await parent.run(`${helper('clone-into-cgroup')} ${target.dir} /bin/true; true`);
    assert.equal(r.code, 0, r.stderr);
    collector.poll();
    const counts = collector.counts();
    assert.deepEqual(counts.get(target.id), { execs: 1, forks: 1, exits: 1 }, 'the child is born, execs and exits in target');
    assert.deepEqual(counts.get(parent.id), { execs: 1, forks: 1, exits: 2 }, 'the parent side: the helper, and the shell');
    const exec = ctx.events.find((e): e is ExecEvent => e.type === 'exec' && e.filename === '/bin/true');
    assert.equal(exec?.cgroup, target.path);
  });

  test(`a process has exited when its last thread has, not its leader (${alt})`, async (t) => {
    if (!needsKernel(t)) return;
    const { ctx, collector, cg, done } = setup('leader-first', alt);
    t.after(done);
    const lifeMs = scaled(1500, 400);
    const running = cg.run(`exec ${helper('leader-exits-first')} ${lifeMs} 7`);
    // the leader has gone at once; the process lives on in its second thread
    const exec = await eventually(() => {
      collector.poll();
      return ctx.events.find((e): e is ExecEvent => e.type === 'exec' && e.cgroup_id === cg.id);
    }, 10_000, 'the exec of the helper');
    await sleep(lifeMs / 3);
    collector.poll();
    assert.equal(ctx.events.filter((e) => e.type === 'exit' && e.pid === exec.pid).length, 0, 'no exit while a thread still runs');
    assert.equal(collector.counts().get(cg.id)?.exits ?? 0, 0);
    const r = await running;
    assert.equal(r.code, 7, r.stderr);
    collector.poll();
    const exits = ctx.events.filter((e): e is ExitEvent => e.type === 'exit' && e.pid === exec.pid);
    assert.equal(exits.length, 1, 'one exit, when the last thread ended');
    assert.equal(exits[0]!.exit_code, 7);
    assert.equal(exits[0]!.comm, 'leader-exits-fi', 'the process name, not a thread name');
    assert.ok(exits[0]!.lifetime_seconds >= (lifeMs / 1000) * 0.9, `the process lived ${exits[0]!.lifetime_seconds} s`);
    assert.equal(collector.counts().get(cg.id)?.exits, 1);
  });
}

test('many threads ending together count one process exit', async (t) => {
  if (!needsKernel(t)) return;
  const { ctx, collector, cg, done } = setup('threads');
  t.after(done);
  const procs = scaled(20, 3);
  // each python process starts 8 threads that all return at the same moment, then the process ends
  const script = 'import threading\nb = threading.Barrier(9)\nts = [threading.Thread(target=b.wait) for _ in range(8)]\n[x.start() for x in ts]\nb.wait()\n';
  const r = await cg.run(`i=0; while [ $i -lt ${procs} ]; do /usr/bin/python3 -c '${script}'; i=$((i+1)); done`, 300_000);
  assert.equal(r.code, 0, r.stderr);
  collector.poll();
  assert.equal(collector.counts().get(cg.id)?.exits, procs + 1, 'every python and the shell, once each');
  assert.equal(ctx.events.filter((e) => e.type === 'exit' && e.cgroup_id === cg.id).length + collector.drops().events, procs + 1);
});

test('reports exit codes, signals, arguments and lifetimes', async (t) => {
  if (!needsKernel(t)) return;
  const { ctx, collector, cg, done } = setup('exits');
  t.after(done);
  const r = await cg.run(
    [
      "sh -c 'exit 3'",
      "sh -c 'kill -KILL $$'",
      "sh -c 'kill -TERM $$'",
      "sh -c 'sleep 0.2; exit 0'",
      '/bin/echo periscope "two words" >/dev/null',
      'true',
    ].join('; '),
  );
  assert.equal(r.code, 0, r.stderr);
  collector.poll();
  const exits = ctx.events.filter((e): e is ExitEvent => e.type === 'exit' && e.cgroup_id === cg.id);
  const byComm = (pred: (e: ExitEvent) => boolean): ExitEvent | undefined => exits.find(pred);
  assert.ok(byComm((e) => e.exit_code === 3 && e.signal === 0), 'exit 3 is reported as exit code 3');
  const killed = byComm((e) => e.signal === 9);
  assert.equal(killed?.signal_name, 'SIGKILL');
  assert.equal(killed?.exit_code, 0);
  assert.equal(byComm((e) => e.signal === 15)?.signal_name, 'SIGTERM');
  const sleeper = byComm((e) => e.exit_code === 0 && e.signal === 0 && e.lifetime_seconds >= 0.2);
  assert.ok(sleeper, 'a process that lived 0.2 s reports a lifetime of at least that');
  assert.ok(sleeper.lifetime_seconds < 30);

  const echo = ctx.events.find((e): e is ExecEvent => e.type === 'exec' && e.filename === '/bin/echo' && e.cgroup_id === cg.id);
  assert.ok(echo, 'exec of /bin/echo seen');
  assert.deepEqual(echo.args, ['/bin/echo', 'periscope', 'two words']);
  assert.equal(echo.args_truncated, false);
  assert.equal(echo.uid, 0);
  assert.ok(echo.ppid > 1);
  assert.equal(echo.comm, 'echo');
});

test('cuts long argument lists and says so', async (t) => {
  if (!needsKernel(t)) return;
  const { ctx, collector, cg, done } = setup('longargs');
  t.after(done);
  const long = 'x'.repeat(200);
  await cg.run(`/bin/echo ${long} ${long} >/dev/null`);
  collector.poll();
  const echo = ctx.events.find((e): e is ExecEvent => e.type === 'exec' && e.filename === '/bin/echo' && e.cgroup_id === cg.id);
  assert.ok(echo);
  assert.equal(echo.args_truncated, true);
  assert.equal(echo.args[0], '/bin/echo');
  assert.equal(echo.args[1], long);
});

test('when the event ring overflows, counters stay exact and every lost event is counted', async (t) => {
  if (!needsKernel(t)) return;
  // one page of ring: room for a handful of exec records, and nobody drains it during the storm
  const { ctx, collector, cg, done } = setup('overflow', undefined, { eventRingBytes: 4096 });
  t.after(done);
  const n = scaled(200, 40);
  const r = await cg.run(`i=0; while [ $i -lt ${n} ]; do /bin/true; i=$((i+1)); done`, 300_000);
  assert.equal(r.code, 0, r.stderr);
  collector.poll();
  assert.equal(collector.counts().get(cg.id)?.execs, n, 'the in-kernel counter missed nothing');
  const execs = ctx.events.filter((e) => e.type === 'exec' && e.cgroup_id === cg.id).length;
  const exits = ctx.events.filter((e) => e.type === 'exit' && e.cgroup_id === cg.id).length;
  const lost = collector.drops().events;
  assert.ok(lost > 0, 'the ring overflowed');
  assert.ok(execs < n);
  // the other cgroups of the machine share the ring, so only a bound can be asserted for ours
  assert.ok(execs + exits + lost >= 2 * n + 1, `events ${execs + exits} + lost ${lost} cover all ${2 * n + 1} of this cgroup`);
});

test('reports the pid a process has in its own pid namespace beside its host pid', async (t) => {
  if (!needsKernel(t)) return;
  const { ctx, collector, cg, done } = setup('pidns');
  t.after(done);
  // unshare forks a child into a new pid namespace, where it is pid 1, and it execs echo
  const r = await cg.run('unshare --pid --fork /bin/echo in-a-pid-namespace >/dev/null; /bin/echo on-the-host >/dev/null');
  assert.equal(r.code, 0, r.stderr);
  collector.poll();
  const execs = ctx.events.filter((e): e is ExecEvent => e.type === 'exec' && e.cgroup_id === cg.id && e.filename === '/bin/echo');
  const inside = execs.find((e) => e.args[1] === 'in-a-pid-namespace');
  const outside = execs.find((e) => e.args[1] === 'on-the-host');
  assert.ok(inside && outside);
  assert.equal(inside.ns_pid, 1);
  assert.notEqual(inside.pid, 1);
  assert.equal(outside.ns_pid, outside.pid, 'in the initial namespace both are the same');
  const exit = ctx.events.find((e): e is ExitEvent => e.type === 'exit' && e.pid === inside.pid);
  assert.equal(exit?.ns_pid, 1);
});
