import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CgroupTree, cgroupIdOf, findCgroup2Mount, parseCgroup2Mount } from './cgroups.js';
import { PeriscopeError } from '../kernel/errors.js';

const fixture = (name: string): string => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));

test('finds cgroup2 on a hybrid host beside the v1 controllers', () => {
  assert.equal(parseCgroup2Mount(readFileSync(fixture('mountinfo-hybrid.txt'), 'utf8')), '/sys/fs/cgroup/unified');
});

test('finds cgroup2 on a unified host', () => {
  assert.equal(parseCgroup2Mount(readFileSync(fixture('mountinfo-unified.txt'), 'utf8')), '/sys/fs/cgroup');
});

test('decodes octal escapes in mount points', () => {
  const line = '27 26 0:25 / /mnt/cg\\040two rw - cgroup2 cgroup2 rw';
  assert.equal(parseCgroup2Mount(line), '/mnt/cg two');
});

test('a host without cgroup2 gets an error that says how to mount it', () => {
  assert.equal(parseCgroup2Mount(readFileSync(fixture('mountinfo-v1-only.txt'), 'utf8')), undefined);
  assert.throws(
    () => findCgroup2Mount(fixture('mountinfo-v1-only.txt')),
    (e: unknown) => e instanceof PeriscopeError && e.code === 'NO_CGROUP2' && /mount -t cgroup2/.test(e.hint),
  );
});

test('names ids by walking the tree, and forgets vanished ones only after the grace period', () => {
  const root = mkdtempSync(join(tmpdir(), 'periscope-cgtree-'));
  let now = 1_000;
  try {
    mkdirSync(join(root, 'kubepods.slice/pod-a'), { recursive: true });
    const tree = new CgroupTree({ root, graceMs: 10_000, minWalkIntervalMs: 0, now: () => now });
    const pod = cgroupIdOf(join(root, 'kubepods.slice/pod-a'));
    assert.equal(tree.resolve(pod)?.path, '/kubepods.slice/pod-a');
    assert.equal(tree.resolve(cgroupIdOf(root))?.path, '/');

    // a new directory is found by the next resolve of its id
    mkdirSync(join(root, 'kubepods.slice/pod-b'));
    const podB = cgroupIdOf(join(root, 'kubepods.slice/pod-b'));
    assert.equal(tree.resolve(podB)?.path, '/kubepods.slice/pod-b');

    rmdirSync(join(root, 'kubepods.slice/pod-a'));
    tree.walk();
    assert.equal(tree.resolve(pod)?.path, '/kubepods.slice/pod-a', 'still named during the grace period');
    assert.ok(tree.resolve(pod)?.goneSince !== undefined);
    now += 9_999;
    assert.deepEqual(tree.expire(), []);
    now += 1;
    assert.deepEqual(tree.expire(), [pod]);
    assert.equal(tree.resolve(pod), undefined);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('rate-limits walks for unknown ids and uses the direct lookup when given one', () => {
  const root = mkdtempSync(join(tmpdir(), 'periscope-cgtree-'));
  let now = 0;
  try {
    const tree = new CgroupTree({ root, minWalkIntervalMs: 1_000, now: () => now });
    mkdirSync(join(root, 'late'));
    const late = cgroupIdOf(join(root, 'late'));
    assert.equal(tree.resolve(late), undefined, 'no second walk within the interval');
    now += 1_000;
    assert.equal(tree.resolve(late)?.path, '/late');
    assert.equal(tree.walks, 2);

    let lookups = 0;
    const direct = new CgroupTree({ root, minWalkIntervalMs: 1_000, now: () => now, lookup: (r, id) => (lookups++, id === 42 ? `${r}/x/y` : null) });
    assert.equal(direct.resolve(42)?.path, '/x/y');
    assert.equal(lookups, 1);
    assert.equal(direct.resolve(42)?.path, '/x/y', 'remembered');
    assert.equal(lookups, 1);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('remembers at most maxCgroups and counts the rest', () => {
  const root = mkdtempSync(join(tmpdir(), 'periscope-cgtree-'));
  try {
    for (let i = 0; i < 10; i++) mkdirSync(join(root, `c${i}`));
    const tree = new CgroupTree({ root, maxCgroups: 5 });
    assert.equal(tree.size, 5);
    assert.equal(tree.overflow, 6);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
