/** Kernel symbols from the live /proc/kallsyms, and from kallsyms text with modules. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelSymbols, parseKallsyms } from './kallsyms.js';

const K = 0xffff_0000_0000_0000n;

test('names the address of schedule, and 4 bytes into it, from the live /proc/kallsyms', () => {
  const line = readFileSync('/proc/kallsyms', 'utf8').split('\n').find((l) => / [Tt] schedule$/.test(l))!;
  const at = BigInt(`0x${line.split(' ')[0]}`);
  assert.ok(at > K, 'kallsyms shows real addresses to root');
  const k = new KernelSymbols();
  assert.equal(k.lookup(at), 'schedule');
  assert.equal(k.lookup(at + 4n), 'schedule');
  assert.equal(k.lookup(0x1000n), undefined);
  assert.ok(k.size > 10_000);
});

test('keeps text symbols only, drops the [module] tag, and caps the last symbol before a module boundary', () => {
  const t = parseKallsyms(
    [
      'ffffffff81000000 T _text',
      'ffffffff81000100 t helper',
      'ffffffff81000200 D some_data',
      'ffffffff81000300 W weak_fn',
      'ffffffff81100000 T _etext',
      'ffffffffc0000000 t mod_fn\t[mymod]',
      'ffffffffc0000100 t mod_last\t[mymod]',
      'ffffffffc0200000 t bpf_prog_0123456789abcdef_handler\t[bpf]',
      '0000000000000000 A fixed_percpu_data',
    ].join('\n'),
  );
  const at = (a: bigint): string | undefined => t.lookup(Number(a - K));
  assert.equal(at(0xffffffff81000250n), 'helper');
  assert.equal(at(0xffffffff81000310n), 'weak_fn');
  assert.equal(at(0xffffffffc0000080n), 'mod_fn');
  assert.equal(at(0xffffffffc0000180n), 'mod_last');
  // past the module's last symbol by more than 64 KiB: not that symbol's
  assert.equal(at(0xffffffffc0100000n), undefined);
  assert.equal(at(0xffffffffc0200010n), 'bpf_prog_0123456789abcdef_handler');
  assert.equal(t.size, 7);
});

test('rereads kallsyms when a lookup misses, at most once in 10 seconds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-kallsyms-'));
  try {
    const path = join(dir, 'kallsyms');
    writeFileSync(path, 'ffffffff81000000 T first\n');
    let now = 0;
    const k = new KernelSymbols(path, () => now);
    assert.equal(k.lookup(0xffffffff81000000n), 'first');
    writeFileSync(path, 'ffffffff81000000 T first\nffffffffc0000000 t loaded_later\t[mod]\n');
    now += 5_000;
    assert.equal(k.lookup(0xffffffffc0000004n), undefined);
    now += 5_000;
    assert.equal(k.lookup(0xffffffffc0000004n), 'loaded_later');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
