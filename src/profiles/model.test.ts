/**
 * The shared profile model: ProfileBuilder sums stacks, stays bounded and says what it dropped or cut;
 * folded text round-trips; cleanFrame keeps frame names safe for folded text; profileJson names units.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROFILE_UNITS, ProfileBuilder, cleanFrame, isProfileType, parseFolded, profileJson, toFolded } from './model.js';

test('the builder sums equal stacks and orders them largest first with the total', () => {
  const b = new ProfileBuilder();
  b.add(['app', 'main', 'a'], 3);
  b.add(['app', 'main', 'b'], 5);
  b.add(['app', 'main', 'a'], 4);
  assert.equal(b.size, 2);
  const p = b.build('cpu', 1000, 2000, 1e7);
  assert.deepEqual(
    p.stacks.map((s) => [s.frames.join(';'), s.value]),
    [
      ['app;main;a', 7],
      ['app;main;b', 5],
    ],
  );
  assert.equal(p.total, 12);
  assert.equal(p.dropped, undefined);
  assert.deepEqual([p.type, p.from, p.to, p.period], ['cpu', 1000, 2000, 1e7]);
});

test('the builder ignores values that are not positive', () => {
  const b = new ProfileBuilder();
  b.add(['app'], 0);
  b.add(['app'], -3);
  b.add(['app'], Number.NaN);
  assert.equal(b.size, 0);
  assert.equal(b.build('offcpu', 0, 1, 1).total, 0);
});

test('past maxStacks the builder counts new stacks as dropped but still sums the ones it holds', () => {
  const b = new ProfileBuilder(2);
  b.add(['app', 'a'], 1);
  b.add(['app', 'b'], 2);
  b.add(['app', 'c'], 10);
  b.add(['app', 'd'], 20);
  b.add(['app', 'a'], 5);
  assert.equal(b.size, 2);
  const p = b.build('cpu', 0, 1, 1);
  assert.deepEqual(
    p.stacks.map((s) => [s.frames.join(';'), s.value]),
    [
      ['app;a', 6],
      ['app;b', 2],
    ],
  );
  assert.deepEqual(p.dropped, { stacks: 2, value: 30 });
  assert.equal(p.total, 38, 'the total counts what was dropped too');
});

test('build with a limit keeps the largest stacks and sums the rest in dropped', () => {
  const b = new ProfileBuilder();
  for (let i = 1; i <= 5; i++) b.add(['app', `f${i}`], i * 10);
  const p = b.build('runq', 0, 1, 1, 2);
  assert.deepEqual(
    p.stacks.map((s) => s.value),
    [50, 40],
  );
  assert.deepEqual(p.dropped, { stacks: 3, value: 60 });
  assert.equal(p.total, 150);
});

test('stacks of equal value are ordered by their frames, so a build is deterministic', () => {
  const b = new ProfileBuilder();
  b.add(['app', 'z'], 1);
  b.add(['app', 'a'], 1);
  b.add(['app', 'm'], 1);
  assert.deepEqual(
    b.build('cpu', 0, 1, 1).stacks.map((s) => s.frames.at(-1)),
    ['a', 'm', 'z'],
  );
});

test('folded text round-trips, stack for stack', () => {
  const b = new ProfileBuilder();
  b.add(['app', 'main', 'entry_SYSCALL_64_[k]', 'vfs_read_[k]'], 7);
  b.add(['app', 'main', 'libc.so.6+0x1a2b3'], 3);
  b.add(['kworker/0:1'], 1);
  const p = b.build('cpu', 0, 1, 1);
  const text = toFolded(p);
  assert.equal(text, 'app;main;entry_SYSCALL_64_[k];vfs_read_[k] 7\napp;main;libc.so.6+0x1a2b3 3\nkworker/0:1 1\n');
  assert.deepEqual(parseFolded(text), p.stacks);
});

test('a frame name with spaces survives folded text: the value is after the last space', () => {
  const stacks = parseFolded('my app;operator new(unsigned long) 12\n\n');
  assert.deepEqual(stacks, [{ frames: ['my app', 'operator new(unsigned long)'], value: 12 }]);
});

test('parseFolded names the line that is not a stack and a value', () => {
  assert.throws(() => parseFolded('app;main 1\napp;main\n'), /folded line 2 is not/);
});

test('cleanFrame replaces separators and line breaks, bounds the length and names the empty frame', () => {
  assert.equal(cleanFrame('a;b\nc\rd'), 'a_b_c_d');
  assert.equal(cleanFrame('  main  '), 'main');
  assert.equal(cleanFrame(''), '[unknown]');
  assert.equal(cleanFrame('   '), '[unknown]');
  assert.equal(cleanFrame('x'.repeat(600)).length, 512);
  const b = new ProfileBuilder();
  b.add(['app', cleanFrame('std::map<a;b>::find'), cleanFrame('line\nbreak')], 1);
  assert.deepEqual(parseFolded(toFolded(b.build('cpu', 0, 1, 1)))[0]!.frames, ['app', 'std::map<a_b>::find', 'line_break']);
});

test('profileJson adds the unit and sample type of the profile type', () => {
  const p = new ProfileBuilder().build('offcpu', 0, 1, 1);
  const j = profileJson(p);
  assert.equal(j.unit, 'nanoseconds');
  assert.equal(j.sample_type, 'offcpu');
  assert.equal(profileJson(new ProfileBuilder().build('cpu', 0, 1, 1)).unit, PROFILE_UNITS.cpu.unit);
  assert.ok(isProfileType('runq'));
  assert.ok(!isProfileType('memory'));
});
