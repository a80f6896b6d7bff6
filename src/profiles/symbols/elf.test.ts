/** The ELF reader held to binutils: build-ids, function symbols (a program's .symtab, libc's
 * .dynsym) and offsets to vaddrs as readelf shows them. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SymbolTable, fileOffsetToVaddr, readElfInfo, readElfSymbols, symbolKind, type ElfInfo } from './elf.js';

const FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/profile/', import.meta.url));
const LIBC = '/lib/x86_64-linux-gnu/libc.so.6';
let dir = '';
let nopie = '';

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'periscope-elf-'));
  nopie = join(dir, 'burn');
  execFileSync('cc', ['-O0', '-fno-omit-frame-pointer', '-Wl,--build-id', '-no-pie', '-o', nopie, join(FIXTURES, 'burn.c')]);
});

after(() => rmSync(dir, { recursive: true, force: true }));

function withFile<T>(path: string, f: (fd: number, info: ElfInfo) => T): T {
  const fd = openSync(path, 'r');
  try {
    return f(fd, readElfInfo(fd)!);
  } finally {
    closeSync(fd);
  }
}

/** readelf's function symbols of one table (FUNC and IFUNC, defined, nonzero): value → every name at it */
function readelfFunctions(file: string, table: '.symtab' | '.dynsym'): Map<number, Set<string>> {
  const out = new Map<number, Set<string>>();
  let inTable = false;
  for (const l of execFileSync('readelf', ['-sW', file], { encoding: 'utf8', maxBuffer: 1 << 28 }).split('\n')) {
    if (l.startsWith('Symbol table ')) inTable = l.includes(`'${table}'`);
    // "   12: 0000000000401136    57 FUNC    GLOBAL DEFAULT   14 burn_a"
    const m = /^\s*\d+: ([0-9a-f]+)\s+\S+ (FUNC|IFUNC)\s+\S+\s+\S+\s+(\S+) (\S+)/.exec(l);
    if (!inTable || !m || m[3] === 'UND') continue;
    const value = parseInt(m[1]!, 16);
    if (!value) continue;
    if (!out.has(value)) out.set(value, new Set());
    out.get(value)!.add(m[4]!.replace(/@.*/, ''));
  }
  return out;
}

test('reads the GNU build-id readelf prints, for a program and for libc', () => {
  for (const file of [nopie, LIBC]) {
    const want = /Build ID: ([0-9a-f]+)/.exec(execFileSync('readelf', ['-n', file], { encoding: 'utf8' }))![1];
    assert.equal(withFile(file, (_, info) => info.buildId), want);
  }
});

test('finds every function readelf lists, at its address, in a .symtab and in a .dynsym', () => {
  // node's own binary: 100,000 functions, a 12 MB string table read through a 1 MB window
  for (const [file, dynamic] of [
    [nopie, false],
    [LIBC, true],
    [process.execPath, false],
  ] as const) {
    const want = readelfFunctions(file, dynamic ? '.dynsym' : '.symtab');
    const table = withFile(file, (fd, info) => {
      assert.equal(symbolKind(info), dynamic ? 'dynsym' : 'symtab');
      return readElfSymbols(fd, info)!;
    });
    assert.ok(want.size > 5);
    for (const [value, names] of want) {
      const got = table.lookup(value);
      assert.ok(got !== undefined && names.has(got.replace(/@.*/, '')), `${file} 0x${value.toString(16)}: ${got} not in ${[...names].join(',')}`);
    }
    // one entry per distinct address, no more
    assert.equal(table.size, want.size);
  }
});

test('turns a file offset into the vaddr of the PT_LOAD segment holding it, as readelf shows them', () => {
  const loads = withFile(nopie, (_, info) => info.loads);
  const text = execFileSync('readelf', ['-lW', nopie], { encoding: 'utf8' });
  const rows = [...text.matchAll(/^\s*LOAD\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x[0-9a-f]+ 0x([0-9a-f]+)/gm)];
  assert.equal(loads.length, rows.length);
  for (const [, off, vaddr, filesz] of rows) {
    const o = parseInt(off!, 16);
    if (parseInt(filesz!, 16) > 0x10) assert.equal(fileOffsetToVaddr(loads, o + 0x10), parseInt(vaddr!, 16) + 0x10);
  }
  // the non-PIE program's code is linked at 0x400000 and up
  assert.ok(loads.some((l) => l.vaddr >= 0x400000 && l.offset > 0));
});

test('answers null for what is not a 64-bit little-endian ELF file', () => {
  const path = join(dir, 'text');
  writeFileSync(path, '#!/bin/sh\necho not elf\n');
  assert.equal(withFile(path, (_, info) => info), null);
});

test('stretches a symbol without a size to the next one or the end of its section, and prefers the public alias', () => {
  const t = SymbolTable.build(
    [0x1000, 0x1000, 0x1000, 0x1010, 0x2000, 0x3000],
    [0x8, 0x8, 0x8, 0, 0, 0x10],
    [Infinity, Infinity, Infinity, Infinity, 0x2100, Infinity],
    [1, 0, 2, 0, 0, 2],
    ['getpid', '__getpid', 'pid', 'nosize', 'last_in_section', 'local'],
  );
  assert.equal(t.lookup(0x1004), 'getpid');
  assert.equal(t.lookup(0x1009), undefined);
  assert.equal(t.lookup(0x1fff), 'nosize');
  assert.equal(t.lookup(0x20ff), 'last_in_section');
  assert.equal(t.lookup(0x2100), undefined);
  assert.equal(t.lookup(0x300f), 'local');
  assert.equal(t.lookup(0xfff), undefined);
  assert.equal(t.size, 4);
});
