import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseCgroupPath, parseContainerId, type CgroupOwner } from './containers.js';

const fixtures = JSON.parse(readFileSync(fileURLToPath(new URL('../../../test/fixtures/cgroup-paths.json', import.meta.url)), 'utf8')) as {
  cases: { path: string; expect: Partial<CgroupOwner> & { kind: string } }[];
};

test('parses containerd, CRI-O and Docker paths under both cgroup drivers, and host paths', () => {
  assert.ok(fixtures.cases.length >= 15);
  for (const c of fixtures.cases) {
    const got = parseCgroupPath(c.path) as Record<string, unknown>;
    const want = { runtime: undefined, unit: undefined, ...c.expect } as Record<string, unknown>;
    for (const [k, v] of Object.entries(want)) {
      if (k === 'runtime' && c.expect.kind !== 'container') continue;
      if (k === 'unit' && c.expect.kind !== 'host') continue;
      assert.deepEqual(got[k], v, `${c.path}: ${k}`);
    }
  }
});

test('splits runtime-prefixed container ids from the API', () => {
  assert.deepEqual(parseContainerId('containerd://4f2c1d9e'), { runtime: 'containerd', id: '4f2c1d9e' });
  assert.deepEqual(parseContainerId('cri-o://abc123'), { runtime: 'cri-o', id: 'abc123' });
  assert.equal(parseContainerId('nonsense'), undefined);
});
