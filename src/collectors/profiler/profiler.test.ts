/**
 * The profiler collector against the running kernel (and each kernel of the QEMU matrix), every
 * alternative the kernel supports: samples land in the functions a workload burns, no sample is lost
 * between the kernel's count and the drains, off-CPU time sits at the stack that slept, the
 * minimum wait is applied in the kernel, and recycled stack maps name no stack wrongly.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProfileCollector, PROFILE_SPEC } from './index.js';
import { TestCgroup, alternativesHere, eventually, helper, needsKernel, sleep } from '../../../test/kernel.js';
import { type ProfileDrain } from '../contract.js';
import { type Stack } from '../../profiles/model.js';
import { Symbolizer } from '../../profiles/symbols/index.js';

const WORKLOAD = (): string => helper('profile-workload');
/** One symbolizer for every collector of this file: reading kallsyms and libc's symbols once, not per
 * test, is most of the time under an emulated CPU. */
const symbolizer = new Symbolizer();

/** The stacks of one cgroup and type in a drain. */
function stacksOf(d: ProfileDrain, cgroupId: number, type: string): Stack[] {
  return d.profiles.filter((p) => p.subject.id === cgroupId && p.type === type).flatMap((p) => p.stacks);
}
const total = (stacks: readonly Stack[], has?: string): number => stacks.reduce((n, s) => n + (has === undefined || s.frames.includes(has) ? s.value : 0), 0);
/** Kills what runs in a test cgroup (its workload outlives a slow drain on an emulated CPU otherwise). */
function killAll(cg: TestCgroup): void {
  let pids: string[] = [];
  try {
    pids = readFileSync(join(cg.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone already
    }
  }
}
const eventCount = (c: ProfileCollector, event: string): number => (c.read().get('periscope_profile_events_total') ?? []).find((r) => r.labels?.event === event)?.value as number;

for (const alternative of alternativesHere(PROFILE_SPEC)) {
  test(`${alternative}: on-CPU samples name burn_a and burn_b about 3:1, and every sample the kernel took is drained once`, async (t) => {
    if (!needsKernel(t)) return;
    // large stack maps: this is about where samples land; the recycling test below is about pressure
    const c = new ProfileCollector({ maxCgroups: 1024 }, { symbolizer, alternative, hz: 499, stackEntries: 32_768 });
    const cg = new TestCgroup('profile-cpu');
    t.after(() => {
      c.close();
      cg.remove();
    });
    assert.equal(c.status().alternative, alternative);
    c.profiles();
    const countedBefore = eventCount(c, 'samples_counted_at_drain');
    const running = cg.run(`exec timeout 60 ${WORKLOAD()} cpu`);
    t.after(() => killAll(cg));
    // drain while it runs (its maps are read while the process lives), three times
    const drains: ProfileDrain[] = [];
    for (let i = 0; i < 3; i++) {
      await sleep(1_000);
      drains.push(c.profiles());
    }
    killAll(cg);
    await running;
    drains.push(c.profiles());
    const counted = eventCount(c, 'samples_counted_at_drain') - countedBefore;
    const drained = drains.reduce((n, d) => n + d.profiles.filter((p) => p.type === 'cpu').reduce((m, p) => m + total(p.stacks), 0), 0);
    assert.equal(c.drops().aggregates, 0, 'no counts map was full');
    // the programs count each sample into the counts map they add it to; once switched away from, a
    // map is read whole: what was counted into the maps drained is what the drains hold, exactly
    assert.equal(drained, counted, 'every sample counted in the kernel came out of exactly one drain');
    assert.ok(counted > 0);
    const mine = drains.flatMap((d) => stacksOf(d, cg.id, 'cpu'));
    const all = total(mine);
    const a = total(mine, 'burn_a');
    const b = total(mine, 'burn_b');
    assert.ok(all > 300, `${all} samples of the workload at 499 Hz in ~3 s`);
    const why = ['stacks_full', 'stack_error', 'stack_map_recycled', 'stack_lookup_lost', 'drains'].map((e) => `${e} ${eventCount(c, e)}`).join(', ');
    assert.ok((a + b) / all >= 0.9, `${a + b} of ${all} samples in burn_a or burn_b (${why}):\n${mine.slice(0, 5).map((s) => s.frames.join(';')).join('\n')}`);
    // a few hundred samples: binomial noise alone is ~10%; the end-to-end test holds 3:1 to 10% with thousands
    assert.ok(a / b > 2.2 && a / b < 4, `burn_a / burn_b = ${(a / b).toFixed(2)}`);
    const stack = mine.find((s) => s.frames.includes('burn_a'))!;
    assert.equal(stack.frames[0], 'profile-workloa', 'the root frame is the process (its 15-character comm)');
    assert.deepEqual(stack.frames.slice(stack.frames.indexOf('main')), ['main', 'burn_a', 'spin'], 'root first: main → burn_a → spin');
    for (const d of drains) assert.ok(d.to >= d.from && Math.abs(d.period.cpu! - 1e9 / 499) < 1e-6, 'windows in order, period 1/499 s');
  });

  test(`${alternative}: off-CPU time is counted at the stack that slept, apart from the run-queue wait, and short waits not at all`, async (t) => {
    if (!needsKernel(t)) return;
    const dir = mkdtempSync(join(tmpdir(), 'periscope-offcpu-'));
    const c = new ProfileCollector({ maxCgroups: 1024 }, { symbolizer, alternative, hz: 19 });
    const cg = new TestCgroup('profile-sleep');
    t.after(() => {
      c.close();
      cg.remove();
      rmSync(dir, { recursive: true, force: true });
    });
    const file = join(dir, 'slept');
    const running = cg.run(`exec timeout 60 ${WORKLOAD()} sleep ${file}`);
    t.after(() => killAll(cg));
    await eventually(() => (existsSync(file) && readFileSync(file, 'utf8').trim() ? true : undefined), 20_000, 'the sleeper running');
    await sleep(500);
    const read = (): number => Number(readFileSync(file, 'utf8').split(' ')[0]);
    // a drain switches counts maps first thing and then reads (symbolizing can take seconds on an
    // emulated CPU): the file is read just before each switch
    const before = read();
    c.profiles();
    await sleep(2_000);
    const slept = read() - before;
    const d = c.profiles();
    killAll(cg);
    await running;
    const blocked = total(stacksOf(d, cg.id, 'offcpu'), 'sleep_here');
    const queued = total(stacksOf(d, cg.id, 'runq'), 'sleep_here');
    // the file is written after each sleep: the drain may hold one 20 ms sleep more or less than it
    assert.ok(Math.abs(blocked + queued - slept) <= 0.1 * slept + 25e6, `blocked ${(blocked / 1e6).toFixed(1)} ms + queued ${(queued / 1e6).toFixed(1)} ms in sleep_here, the program slept ${(slept / 1e6).toFixed(1)} ms`);
    const s = stacksOf(d, cg.id, 'offcpu').find((x) => x.frames.includes('sleep_here'))!;
    assert.ok(s.frames.some((f) => f.endsWith('_[k]')), `the kernel half of the stack is there: ${s.frames.join(';')}`);
    assert.ok(eventCount(c, 'switches') > 0 && eventCount(c, 'wait_short') >= 0);
  });

  test(`${alternative}: the minimum wait is applied in the kernel, and off-CPU can be turned off`, async (t) => {
    if (!needsKernel(t)) return;
    const dir = mkdtempSync(join(tmpdir(), 'periscope-offcpu-'));
    const long = new ProfileCollector({ maxCgroups: 1024 }, { symbolizer, alternative, hz: 19, minBlockUs: 50_000 });
    const cg = new TestCgroup('profile-min');
    t.after(() => {
      long.close();
      cg.remove();
      rmSync(dir, { recursive: true, force: true });
    });
    long.profiles();
    const shortBefore = eventCount(long, 'wait_short');
    const running = cg.run(`exec timeout 60 ${WORKLOAD()} sleep ${join(dir, 'slept')}`);
    t.after(() => killAll(cg));
    await sleep(1_000);
    // drained while the sleeper lives: its frames are named, so a counted sleep would show
    const d = long.profiles();
    killAll(cg);
    await running;
    assert.equal(total(stacksOf(d, cg.id, 'offcpu'), 'sleep_here'), 0, '20 ms sleeps are below a 50 ms minimum');
    assert.ok(eventCount(long, 'wait_short') - shortBefore >= 30, 'and were counted as too short');
    long.close();

    const off = new ProfileCollector({ maxCgroups: 1024 }, { symbolizer, alternative, hz: 19, offcpu: false });
    t.after(() => off.close());
    off.profiles();
    const again = cg.run(`exec timeout 60 ${WORKLOAD()} sleep ${join(dir, 'slept')}`);
    await sleep(1_000);
    const d2 = off.profiles();
    killAll(cg);
    await again;
    assert.equal(d2.profiles.filter((p) => p.type !== 'cpu').length, 0, 'no off-CPU or run-queue stacks');
    assert.equal(eventCount(off, 'switches'), 0, 'no stacks taken at switches');
  });

  test(`${alternative}: a storm of short waits has its stacks taken at 1 switch in 16, and at every switch when sampling is off`, async (t) => {
    if (!needsKernel(t)) return;
    const cg = new TestCgroup('profile-storm');
    t.after(() => {
      killAll(cg);
      cg.remove();
    });
    const share = async (offcpuSample: number): Promise<number> => {
      const c = new ProfileCollector({ maxCgroups: 1024 }, { symbolizer, alternative, hz: 19, offcpuSample });
      try {
        const running = cg.run(`exec timeout 60 ${WORKLOAD()} pingpong`);
        await sleep(300);
        const [s0, t0] = [eventCount(c, 'switches'), eventCount(c, 'switch_stacks_taken')];
        await sleep(1_000);
        const [s1, t1] = [eventCount(c, 'switches'), eventCount(c, 'switch_stacks_taken')];
        killAll(cg);
        await running;
        assert.ok(s1 - s0 > 5_000, `a storm: ${s1 - s0} switches in a second`);
        return (t1 - t0) / (s1 - s0);
      } finally {
        c.close();
      }
    };
    const sampled = await share(16);
    // the storm's threads wait ~10 us: 1 in 16 of their switches; the node's other threads all
    assert.ok(sampled > 0.03 && sampled < 0.2, `stacks taken at ${(sampled * 100).toFixed(1)}% of switches`);
    // the two counters are read one after the other while the storm goes on
    const every = await share(1);
    assert.ok(Math.abs(every - 1) < 0.01, `every switch without sampling: ${every}`);
  });

  test(`${alternative}: small stack maps (64 stacks) are recycled as they fill, and stacks stay right across it`, async (t) => {
    if (!needsKernel(t)) return;
    const c = new ProfileCollector({ maxCgroups: 1024 }, { symbolizer, alternative, hz: 499, stackEntries: 64, offcpuSample: 1 });
    const cg = new TestCgroup('profile-recycle');
    t.after(() => {
      c.close();
      cg.remove();
    });
    const running = cg.run(`exec timeout 60 ${WORKLOAD()} cpu`);
    t.after(() => killAll(cg));
    const drains: ProfileDrain[] = [];
    for (let i = 0; i < 14; i++) {
      await sleep(500);
      drains.push(c.profiles());
    }
    killAll(cg);
    await running;
    assert.ok(eventCount(c, 'stack_map_recycled') >= 1, `the 64-entry maps were recycled (stacks lost to a full map: ${eventCount(c, 'stacks_full')})`);
    const mine = drains.flatMap((d) => stacksOf(d, cg.id, 'cpu'));
    // every stack of the workload with its user half is one of its own: a recycled id never names
    // another process' stack
    // another process' stack: the test runner (node: V8 and libuv) is the other one running here
    for (const s of mine) {
      assert.ok(!s.frames.some((f) => /^(_ZN2v8|_ZN4node|uv_|Builtins_|JS:)/.test(f)), `a stack of the workload names only its own code: ${s.frames.join(';')}`);
    }
    const a = total(mine, 'burn_a');
    assert.ok(a > 0, 'burn_a is still named after recycling');
  });
}
