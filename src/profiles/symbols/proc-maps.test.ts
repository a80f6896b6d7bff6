/** /proc/PID/maps and status text as the kernel writes it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { findMapping, isFileMapping, nsPidOf, parseMaps } from './proc-maps.js';

const MAPS = `55d0c5a00000-55d0c5a01000 r--p 00000000 fe:01 1234                       /usr/bin/prog
55d0c5a01000-55d0c5a02000 r-xp 00001000 fe:01 1234                       /usr/bin/prog (deleted)
7f1200000000-7f1200010000 rwxp 00000000 00:00 0 
7f1200010000-7f1200020000 r-xp 00002000 fe:01 99                         /opt/my app/lib x.so
7ffd967d6000-7ffd967f7000 rw-p 00000000 00:00 0                          [stack]
7fbcd16b5000-7fbcd16b7000 r-xp 00000000 00:00 0                          [vdso]
`;

test('keeps executable mappings, sorted, with deleted files marked and paths with spaces whole', () => {
  const maps = parseMaps(MAPS);
  assert.deepEqual(
    maps.map((m) => [m.path, m.deleted, m.offset, isFileMapping(m)]),
    [
      ['/usr/bin/prog', true, 0x1000, true],
      ['', false, 0, false],
      ['/opt/my app/lib x.so', false, 0x2000, true],
      ['[vdso]', false, 0, false],
    ],
  );
  assert.equal(maps[0]!.range, '55d0c5a01000-55d0c5a02000');
  assert.equal(parseMaps(MAPS, true).length, 6);
});

test('finds the mapping holding an address, and none in a gap', () => {
  const maps = parseMaps(MAPS);
  assert.equal(findMapping(maps, 0x55d0c5a01000), 0);
  assert.equal(findMapping(maps, 0x7f120001ffff), 2);
  assert.equal(findMapping(maps, 0x7f1200020000), -1);
  assert.equal(findMapping(maps, 0x55d0c5a00fff), -1);
});

test('takes the pid inside the innermost pid namespace from NSpid', () => {
  assert.equal(nsPidOf('Name:\tx\nNSpid:\t4242\t17\t1\n', 4242), 1);
  assert.equal(nsPidOf('Name:\tx\nNSpid:\t4242\n', 4242), 4242);
  assert.equal(nsPidOf('Name:\tx\n', 4242), 4242);
  assert.equal(nsPidOf(readFileSync('/proc/self/status', 'utf8'), process.pid), process.pid);
});
