import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessCollector, splitArgs } from './index.js';
import { TestCgroup, needsKernel } from '../../../test/kernel.js';
import { testContext } from '../../../test/context.js';
import { type ExecEvent, type ExitEvent } from './events.js';

test('splits the kernel argument area into arguments', () => {
  assert.deepEqual(splitArgs('ls\0-l\0/tmp\0'), ['ls', '-l', '/tmp']);
  assert.deepEqual(splitArgs('a\0\0b\0'), ['a', '', 'b']);
  assert.deepEqual(splitArgs(''), []);
});

test('counts every exec in a cgroup exactly, 1,000 of 1,000', async (t) => {
  if (!needsKernel(t)) return;
  const ctx = testContext();
  const collector = new ProcessCollector(ctx);
  const cg = new TestCgroup('execs');
  t.after(() => {
    collector.close();
    cg.remove();
  });
  const r = await cg.run('i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i+1)); done');
  assert.equal(r.code, 0, r.stderr);
  collector.poll();
  const counts = collector.counts().get(cg.id);
  assert.ok(counts, 'the cgroup has process counters');
  assert.equal(counts.execs, 1000);
  assert.equal(counts.forks, 1000, 'one new process per /bin/true');
  assert.equal(counts.exits, 1001, 'every /bin/true and the shell');
  const execs = ctx.events.filter((e): e is ExecEvent => e.type === 'exec' && e.cgroup_id === cg.id);
  assert.equal(execs.length + collector.drops().events, 1000, 'every exec is an event or a counted drop');
  assert.equal(execs[0]?.filename, '/bin/true');
  assert.equal(execs[0]?.cgroup, cg.path);
});

test('reports exit codes, signals, arguments and lifetimes', async (t) => {
  if (!needsKernel(t)) return;
  const ctx = testContext();
  const collector = new ProcessCollector(ctx);
  const cg = new TestCgroup('exits');
  t.after(() => {
    collector.close();
    cg.remove();
  });
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
  assert.ok(sleeper.lifetime_seconds < 5);

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
  const ctx = testContext();
  const collector = new ProcessCollector(ctx);
  const cg = new TestCgroup('longargs');
  t.after(() => {
    collector.close();
    cg.remove();
  });
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
  const ctx = testContext();
  // one page of ring: room for a handful of exec records, and nobody drains it during the storm
  const collector = new ProcessCollector(ctx, { eventRingBytes: 4096 });
  const cg = new TestCgroup('overflow');
  t.after(() => {
    collector.close();
    cg.remove();
  });
  const r = await cg.run('i=0; while [ $i -lt 200 ]; do /bin/true; i=$((i+1)); done');
  assert.equal(r.code, 0, r.stderr);
  collector.poll();
  assert.equal(collector.counts().get(cg.id)?.execs, 200, 'the in-kernel counter missed nothing');
  const execs = ctx.events.filter((e) => e.type === 'exec' && e.cgroup_id === cg.id).length;
  const exits = ctx.events.filter((e) => e.type === 'exit' && e.cgroup_id === cg.id).length;
  const lost = collector.drops().events;
  assert.ok(lost > 0, 'the ring overflowed');
  assert.ok(execs < 200);
  // the other cgroups of the machine share the ring, so only a bound can be asserted for ours
  assert.ok(execs + exits + lost >= 401, `events ${execs + exits} + lost ${lost} cover all 401 of this cgroup`);
});

test('reports the pid a process has in its own pid namespace beside its host pid', async (t) => {
  if (!needsKernel(t)) return;
  const ctx = testContext();
  const collector = new ProcessCollector(ctx);
  const cg = new TestCgroup('pidns');
  t.after(() => {
    collector.close();
    cg.remove();
  });
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
