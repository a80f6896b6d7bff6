import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync, readdirSync } from 'node:fs';
import * as processGen from '../collectors/process/process.gen.js';
import * as cpuGen from '../collectors/cpu/cpu.gen.js';
import { decode, encode, type Codec } from './codec.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const INCLUDE = join(REPO, 'bpf', 'include');
const COLLECTORS_SRC = join(REPO, 'src', 'collectors');

/**
 * Asks the host C compiler where each field of each struct lives (offsetof, sizeof), compiling the
 * very headers the BPF objects were built from: an independent check of the BTF-generated layouts.
 */
function cLayout(header: string, structs: Record<string, readonly string[]>): Record<string, Record<string, number>> {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-layout-'));
  try {
    const lines = [
      '#include <linux/types.h>',
      '#include <stddef.h>',
      '#include <stdio.h>',
      `#include "${header}"`,
      'int main(void) {',
      '  printf("{");',
    ];
    const entries: string[] = [];
    for (const [s, fields] of Object.entries(structs)) {
      entries.push(`printf("\\"${s}.sizeof\\": %zu", sizeof(struct ${s}));`);
      for (const f of fields) entries.push(`printf("\\"${s}.${f}\\": %zu", offsetof(struct ${s}, ${f}));`);
    }
    lines.push(entries.join('\n  printf(",");\n  '), '  printf("}");', '  return 0;', '}');
    writeFileSync(join(dir, 'layout.c'), lines.join('\n'));
    execFileSync('cc', ['-I', INCLUDE, '-o', join(dir, 'layout'), join(dir, 'layout.c')]);
    const flat = JSON.parse(execFileSync(join(dir, 'layout'), { encoding: 'utf8' })) as Record<string, number>;
    const out: Record<string, Record<string, number>> = {};
    for (const [k, v] of Object.entries(flat)) {
      const [s, f] = k.split('.') as [string, string];
      (out[s] ??= {})[f] = v;
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function check(header: string, codecs: Record<string, { size: number }>, offsets: Record<string, Record<string, number>>): void {
  const structs = Object.fromEntries(Object.entries(offsets).map(([s, o]) => [s, Object.keys(o)]));
  const c = cLayout(header, structs);
  for (const [s, fields] of Object.entries(offsets)) {
    assert.equal(codecs[s]!.size, c[s]!.sizeof, `sizeof(struct ${s})`);
    for (const [f, off] of Object.entries(fields)) assert.equal(off, c[s]![f], `offsetof(struct ${s}, ${f})`);
  }
}

test('generated layouts match what the C compiler makes of the same headers, for every collector', async () => {
  const checked: string[] = [];
  for (const name of readdirSync(COLLECTORS_SRC)) {
    const header = join(COLLECTORS_SRC, name, `${name}.h`);
    if (!existsSync(header)) continue;
    const gen = (await import(`../collectors/${name}/${name}.gen.js`)) as Record<string, unknown>;
    const codecs: Record<string, { size: number }> = {};
    const offsets: Record<string, Record<string, number>> = {};
    for (const [k, v] of Object.entries(gen)) {
      if (!k.endsWith('Offsets')) continue;
      const codec = gen[`${k.slice(0, -'Offsets'.length)}Codec`] as Codec<unknown>;
      codecs[codec.name] = codec;
      offsets[codec.name] = v as Record<string, number>;
    }
    assert.ok(Object.keys(offsets).length > 0, `${name}.gen.ts has structs`);
    check(header, codecs, offsets);
    checked.push(`${name}: ${Object.keys(offsets).join(', ')}`);
  }
  assert.ok(checked.length >= 3, checked.join('; '));
});

test('codecs round-trip, with strings cut at their C size', () => {
  const e: processGen.ExitEvent = {
    kind: processGen.enums.process_event_kind.PROCESS_EXIT,
    pid: 4242,
    ppid: 1,
    uid: 1000,
    ns_pid: 1,
    pad0: 0,
    time_ns: 2 ** 52 + 3,
    cgroup_id: 123456789,
    comm: 'a-very-long-command-name',
    exit_code: 3,
    signal: 0,
    core_dumped: 0,
    pad: 0,
    lifetime_ns: 1.5e9,
  };
  const back = decode(processGen.ExitEventCodec, encode(processGen.ExitEventCodec, e));
  assert.deepEqual(back, { ...e, comm: 'a-very-long-com' });
});

test('the generated module lists maps with their kernel types, enums and programs', () => {
  assert.equal(processGen.maps.process_stats.maxEntries, 16384);
  assert.equal(processGen.maps.process_stats.key.size, 8);
  assert.equal(processGen.maps.process_events.value, undefined, 'a ring buffer has no value type');
  assert.deepEqual(processGen.enums.periscope_drop, { DROP_RINGBUF_FULL: 0, DROP_MAP_FULL: 1, DROP_MAP_UPDATE: 2, DROP_KINDS: 3 });
  assert.ok(processGen.programs.includes('process_exec_btf'));
  assert.ok(Object.keys(processGen.records).includes('exec_event'));
  const slots = decode(cpuGen.CgroupCpuCodec, Buffer.alloc(cpuGen.CgroupCpuCodec.size)).runq_slots;
  assert.equal(slots.length, 27);
  assert.deepEqual(cpuGen.config.use_task_storage.offset, 0);
  assert.equal(cpuGen.config.use_task_storage.codec.size, 1);
});
