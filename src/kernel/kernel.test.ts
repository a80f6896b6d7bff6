import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BpfObject, chooseAlternative, cpuSlots, highestInCpuList, supportedAlternatives, type ObjectSpec } from './bpf-object.js';
import { native } from './native.js';
import { probe, probeAll, FEATURES, type Feature } from './features.js';
import { PeriscopeError, isNativeError } from './errors.js';
import * as memoryGen from '../collectors/memory/memory.gen.js';
import * as cpuGen from '../collectors/cpu/cpu.gen.js';
import { kernelAtLeast, needsKernel, run } from '../../test/kernel.js';
import { MEMORY_SPEC } from '../collectors/memory/index.js';
import { release, tmpdir } from 'node:os';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MEMORY: ObjectSpec<memoryGen.ProgramName> = {
  file: memoryGen.OBJECT_FILE,
  programs: memoryGen.programs,
  maps: memoryGen.maps,
  alternatives: [{ name: 'tp_btf', requires: ['btf', 'tp_btf'], programs: ['oom_victim_btf'] }],
};


test('feature probes answer supported for what every 5.8+ kernel with BTF has', (t) => {
  if (!needsKernel(t)) return;
  assert.ok(kernelAtLeast(5, 8), 'this suite targets Linux 5.8+');
  for (const f of ['btf', 'raw_tp', 'tp_btf', 'perf_event', 'uprobe', 'cgroup_skb', 'sock_ops', 'ringbuf', 'batch_map_ops'] as const) {
    assert.deepEqual(probe(f), { status: 'supported' }, f);
  }
  // task local storage for tracing programs came with Linux 5.11
  assert.equal(probe('task_storage').status, kernelAtLeast(5, 11) ? 'supported' : 'unsupported');
  const all = probeAll();
  assert.deepEqual(Object.keys(all), [...FEATURES]);
  for (const [f, p] of Object.entries(all)) {
    // a kernel may lack kprobes, fentry or tracefs, but it must say why, and never as a probe error
    assert.notEqual(p.status, 'error', `${f}: ${JSON.stringify(p)}`);
    if (p.status === 'unsupported') assert.ok(p.reason.length > 10, `${f} says why`);
  }
});

test('a collector takes the first alternative the kernel supports and reports why it passed over the others', (t) => {
  if (!needsKernel(t)) return;
  const supportedHere = supportedAlternatives(MEMORY_SPEC);
  assert.ok(supportedHere.length > 0, 'some alternative works here');
  const choice = chooseAlternative(MEMORY_SPEC);
  assert.equal(choice.chosen, supportedHere[0]);
  const before = MEMORY_SPEC.alternatives.map((a) => a.name).slice(0, MEMORY_SPEC.alternatives.findIndex((a) => a.name === choice.chosen));
  assert.deepEqual(choice.passedOver.map((p) => p.name), before);
  for (const p of choice.passedOver) assert.match(p.reason, /kernel lacks/, `${p.name} says why`);
  const obj = BpfObject.load(MEMORY_SPEC);
  try {
    assert.equal(obj.choice.chosen, choice.chosen);
    obj.attach();
    assert.ok(obj.attachedPrograms >= 1);
  } finally {
    obj.close();
  }
  assert.equal(obj.attachedPrograms, 0);
});

test('the kernel layout probes agree with the kernel\'s own BTF', async (t) => {
  if (!needsKernel(t)) return;
  const dump = await run('sh', ['-c', 'bpftool btf dump file /sys/kernel/btf/vmlinux format c | grep -E "^typedef void \\(\\*btf_trace_(mark_victim|sched_switch|sched_process_exit)\\)"']);
  assert.equal(dump.code, 0, dump.stderr);
  const proto = (tp: string): string => {
    const line = dump.stdout.split('\n').find((l) => l.includes(`btf_trace_${tp})`));
    assert.ok(line, `the kernel BTF has the ${tp} tracepoint`);
    return line;
  };
  const expected = {
    mark_victim_task: proto('mark_victim').includes('struct task_struct *'),
    switch_prev_state: proto('sched_switch').includes('struct task_struct *, unsigned int)'),
    exit_group_dead: proto('sched_process_exit').includes('struct task_struct *, bool)'),
  };
  t.diagnostic(`${release()}: ${JSON.stringify(expected)}`);
  for (const [feature, has] of Object.entries(expected)) {
    assert.equal(probe(feature as Feature).status, has ? 'supported' : 'unsupported', feature);
  }
  // what the kernel versions say, where they are certain
  if (kernelAtLeast(5, 18)) assert.equal(expected.switch_prev_state, true);
  else assert.equal(expected.switch_prev_state, false);
});

test('with no workable alternative, loading fails with every reason and the fix', (t) => {
  if (!needsKernel(t)) return;
  const spec: ObjectSpec<memoryGen.ProgramName> = {
    ...MEMORY,
    alternatives: [{ name: 'tp_btf', requires: ['tp_btf'], programs: ['oom_victim_btf'] }],
  };
  assert.throws(
    () => BpfObject.load(spec, { maxEntries: { oom_stats: 0 } }), // the kernel refuses an empty hash map
    (e: unknown) => e instanceof PeriscopeError && e.code === 'NO_ALTERNATIVE' && /tp_btf: load failed/.test(e.message) && /doctor/.test(e.hint),
  );
});

test('native errors carry errno, its name and libbpf\'s log', (t) => {
  if (!needsKernel(t)) return;
  try {
    native().open('/nonexistent.bpf.o');
    assert.fail('open of a missing file must throw');
  } catch (e) {
    assert.ok(isNativeError(e));
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.errno, 2);
    assert.match(e.libbpfLog, /nonexistent/);
  }
});

test('typed maps update, look up, iterate (batched or key by key) and drain', (t) => {
  if (!needsKernel(t)) return;
  const obj = BpfObject.load(MEMORY);
  t.after(() => obj.close());
  const batched = obj.map(memoryGen.maps.oom_stats, true);
  const onebyone = obj.map(memoryGen.maps.oom_stats, false);
  for (let id = 1; id <= 300; id++) batched.update(id, { kills: id * 2 });
  assert.deepEqual(batched.lookup(7), { kills: 14 });
  assert.equal(batched.lookup(100_000), undefined);
  const a = batched.entries();
  const b = onebyone.entries();
  assert.equal(a.size, 300);
  assert.deepEqual([...a].sort((x, y) => x[0] - y[0]), [...b].sort((x, y) => x[0] - y[0]));
  assert.equal(batched.delete(7), true);
  assert.equal(batched.delete(7), false);
  const drained = batched.entries(true);
  assert.equal(drained.size, 299);
  assert.equal(batched.entries().size, 0, 'lookup-and-delete emptied the map');
});

test('per-CPU maps sum their CPUs', (t) => {
  if (!needsKernel(t)) return;
  const cpu = BpfObject.load({
    file: cpuGen.OBJECT_FILE,
    programs: cpuGen.programs,
    maps: cpuGen.maps,
    alternatives: [{ name: 'raw_tp', requires: ['raw_tp'], programs: ['cpu_switch_raw', 'cpu_wakeup_raw', 'cpu_wakeup_new_raw'], skipMaps: ['queued_since'] }],
  });
  t.after(() => cpu.close());
  cpu.attach();
  const stats = cpu.map(cpuGen.maps.cgroup_cpu);
  assert.equal(stats.perCpu, true);
  const deadline = Date.now() + 200;
  while (Date.now() < deadline); // burn a little so our cgroup switches
  const total = [...stats.entries().values()].reduce((s, v) => s + v.voluntary_switches + v.involuntary_switches, 0);
  assert.ok(total > 0, 'switches were counted');
});

test('a CPU-indexed array has a slot for the highest possible CPU, holes in the mask included', () => {
  assert.equal(highestInCpuList('0\n'), 0);
  assert.equal(highestInCpuList('0-1\n'), 1);
  assert.equal(highestInCpuList('0-3,8-11\n'), 11);
  assert.equal(highestInCpuList('0,2,5-6'), 6);
  for (const bad of ['', 'x', '0-', '1,,2', '-1']) assert.throws(() => highestInCpuList(bad), /not a CPU list/, bad);
  const dir = mkdtempSync(join(tmpdir(), 'periscope-cpus-'));
  writeFileSync(join(dir, 'possible'), '0-3,8-11\n');
  assert.equal(cpuSlots(join(dir, 'possible')), 12);
  rmSync(dir, { recursive: true });
  assert.equal(cpuSlots(), highestInCpuList(readFileSync('/sys/devices/system/cpu/possible', 'utf8')) + 1);
});
