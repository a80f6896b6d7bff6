/** The constant-time log2 of bpf/include/bits.bpf.h, compiled by the host C compiler and held to a
 * plain reference over every power of two and its neighbours. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const INCLUDE = fileURLToPath(new URL('../../../bpf/include/', import.meta.url));

test('log2 slots are floor(log2(v)), capped, for values around every power of two', () => {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-bits-'));
  try {
    const values: bigint[] = [0n, 1n, 2n, 3n];
    for (let i = 2n; i < 64n; i++) values.push((1n << i) - 1n, 1n << i, (1n << i) + 1n);
    values.push(2n ** 64n - 1n);
    const c = [
      '#include <linux/types.h>',
      '#include <stdio.h>',
      '#define __always_inline inline __attribute__((always_inline))',
      '#include "bits.bpf.h"',
      'int main(void) {',
      `  unsigned long long v[] = { ${values.map((v) => `${v}ULL`).join(', ')} };`,
      '  for (unsigned i = 0; i < sizeof(v) / sizeof(v[0]); i++) printf("%u %u\\n", log2_u64(v[i]), log2_slot(v[i], 26));',
      '  return 0;',
      '}',
    ].join('\n');
    writeFileSync(join(dir, 'bits.c'), c);
    execFileSync('cc', ['-O2', '-I', INCLUDE, '-o', join(dir, 'bits'), join(dir, 'bits.c')]);
    const lines = execFileSync(join(dir, 'bits'), { encoding: 'utf8' }).trim().split('\n');
    values.forEach((v, i) => {
      const want = v === 0n ? 0 : v.toString(2).length - 1;
      assert.equal(lines[i], `${want} ${Math.min(want, 26)}`, `log2(${v})`);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
