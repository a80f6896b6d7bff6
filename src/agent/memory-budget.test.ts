import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { checkBudget, defaultMaxCgroups, kernelMemory, memoryLimit, MiB, USER_RESERVE_BYTES } from './memory-budget.js';
import { COLLECTORS } from '../collectors/registry.js';
import { TestCgroup, needsKernel, sleep } from '../../test/kernel.js';

test('the memory limit of a process is found in its cgroup or an ancestor, v2 or v1', async (t) => {
  if (!needsKernel(t)) return;
  const parent = new TestCgroup('limit-parent', { memoryLimitBytes: 300 * MiB });
  const child = spawn('sh', ['-c', `${parent.enter} && exec sleep 30`], { stdio: 'ignore' });
  t.after(() => {
    child.kill('SIGKILL');
    parent.remove();
  });
  await sleep(300);
  const limit = memoryLimit(child.pid ?? 0);
  t.diagnostic(JSON.stringify(limit));
  assert.equal(limit?.bytes, 300 * MiB);
  assert.match(limit.source, parent.memoryV1Dir ? /memory\.limit_in_bytes$/ : /memory\.max$/);
  assert.equal(memoryLimit(process.pid)?.bytes === 300 * MiB, false, 'the test process itself is not limited so');
});

test('the default --max-cgroups fits the kernel budget at every CPU count, and a limit that cannot hold it says what would', () => {
  for (const cpus of [2, 16, 64, 128, 1024]) {
    const n = defaultMaxCgroups(COLLECTORS, cpus);
    const m = kernelMemory(COLLECTORS, n, cpus);
    assert.ok(n >= 256 && n <= 16_384, `${cpus} CPUs: ${n}`);
    assert.ok(m.perCgroup * n <= 64 * MiB || n === 256, `${cpus} CPUs: ${m.perCgroup} B x ${n}`);
  }
  const limit = { bytes: 512 * MiB, source: '/sys/fs/cgroup/x/memory.max' };
  const err = checkBudget(COLLECTORS, 100_000, 64, limit, USER_RESERVE_BYTES.kubernetes);
  assert.ok(err);
  assert.match(err.message, /^--max-cgroups 100000 needs \d+ MiB of kernel maps on 64 CPUs \(\d+ bytes a cgroup\).*memory limit of 512 MiB \(\/sys\/fs\/cgroup\/x\/memory\.max\)$/);
  const fits = Number(/use --max-cgroups (\d+)/.exec(err.hint)?.[1]);
  assert.ok(fits > 0, err.hint);
  assert.equal(checkBudget(COLLECTORS, fits, 64, limit, USER_RESERVE_BYTES.kubernetes), undefined, 'the number offered fits');
  assert.ok(checkBudget(COLLECTORS, fits + 1, 64, limit, USER_RESERVE_BYTES.kubernetes), 'and it is the most that does');
});
