/** Perf maps read from files as JITs write them: appended, half-written, replaced, overlapping, huge. */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerfMap } from './perf-map.js';

const dir = mkdtempSync(join(tmpdir(), 'periscope-perfmap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('names addresses inside entries and nothing between them', () => {
  const path = join(dir, 'a.map');
  writeFileSync(path, '7f0000001000 100 LazyCompile:*foo /app/a.js:1\n7f0000002000 0x20 Builtin:ArgumentsAdaptor\nnot a line\n');
  const m = new PerfMap(path);
  assert.equal(m.lookup(0x7f0000001000), 'LazyCompile:*foo /app/a.js:1');
  assert.equal(m.lookup(0x7f00000010ff), 'LazyCompile:*foo /app/a.js:1');
  assert.equal(m.lookup(0x7f0000001100), undefined);
  assert.equal(m.lookup(0x7f000000201f), 'Builtin:ArgumentsAdaptor');
  assert.equal(m.lookup(0x7f0000000fff), undefined);
  assert.equal(m.entries, 2);
});

test('lets a later entry win where code was regenerated at the same place', () => {
  const path = join(dir, 'b.map');
  writeFileSync(path, '1000 100 old\n2000 1000 outer\n');
  let now = 0;
  const m = new PerfMap(path, 1_000_000, () => now);
  assert.equal(m.lookup(0x1010), 'old');
  appendFileSync(path, '1000 80 new\n2400 10 inner\n');
  now += 1000;
  assert.equal(m.lookup(0x1010), 'new');
  assert.equal(m.lookup(0x2404), 'inner');
  assert.equal(m.lookup(0x2500), 'outer');
  assert.equal(m.entries, 3);
});

test('starts over when the file is replaced by a shorter one, and empties when it goes', () => {
  const path = join(dir, 'c.map');
  writeFileSync(path, '1000 10 a\n2000 10 b\n3000 10 c\n');
  let now = 0;
  const m = new PerfMap(path, 1_000_000, () => now);
  assert.equal(m.lookup(0x3004), 'c');
  rmSync(path);
  writeFileSync(path, '5000 10 d\n');
  now += 1000;
  assert.equal(m.lookup(0x3004), undefined);
  assert.equal(m.lookup(0x5004), 'd');
  rmSync(path);
  now += 1000;
  assert.equal(m.lookup(0x5004), undefined);
  assert.equal(m.present, false);
});

test('keeps only the newest maxEntries entries', () => {
  const path = join(dir, 'd.map');
  let text = '';
  for (let i = 0; i < 5000; i++) text += `${(0x100000 + i * 0x10).toString(16)} 10 f${i}\n`;
  writeFileSync(path, text);
  let now = 0;
  const m = new PerfMap(path, 1000, () => now);
  assert.equal(m.lookup(0x100000), undefined);
  assert.equal(m.lookup(0x100000 + 4999 * 0x10), 'f4999');
  assert.equal(m.lookup(0x100000 + 4000 * 0x10), 'f4000');
  assert.equal(m.lookup(0x100000 + 3999 * 0x10), undefined);
  assert.equal(m.entries, 1000);
  appendFileSync(path, '50 10 newest\n');
  now += 1000;
  assert.equal(m.lookup(0x54), 'newest');
  assert.equal(m.lookup(0x100000 + 4000 * 0x10), undefined);
  assert.equal(m.entries, 1000);
});
