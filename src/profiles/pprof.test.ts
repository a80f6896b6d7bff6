/**
 * toPprof and fromPprof: a profile survives the round trip stack for stack, cpu carries its count and
 * its time, the other types their nanoseconds, frames and locations are shared, kernel frames say so,
 * and bytes that are not pprof are refused with a message saying why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Profile as PprofProfile, Sample, StringTable, ValueType } from 'pprof-format';
import { ProfileBuilder, type Profile, type ProfileType } from './model.js';
import { fromPprof, toPprof } from './pprof.js';

const FROM = Date.parse('2025-03-01T12:00:00.123Z');
const TO = FROM + 10_000;

/** Stacks with shared prefixes, a kernel tail and a one-frame stack. */
const STACKS: [string[], number][] = [
  [['app', 'main', 'serve', 'handle', 'burn_a'], 40],
  [['app', 'main', 'serve', 'handle', 'burn_b'], 25],
  [['app', 'main', 'serve', 'read', 'entry_SYSCALL_64_[k]', 'do_syscall_64_[k]', 'vfs_read_[k]'], 7],
  [['app', 'main', 'libc.so.6+0x1a2b3'], 3],
  [['app', '[unknown]'], 2],
  [['kworker/0:1'], 1],
];

function profile(type: ProfileType, period: number): Profile {
  const b = new ProfileBuilder();
  for (const [frames, value] of STACKS) b.add(frames, type === 'cpu' ? value : value * 1_000_003);
  return b.build(type, FROM, TO, period);
}

const byKey = (stacks: { frames: readonly string[]; values: readonly number[] }[]): Map<string, readonly number[]> => new Map(stacks.map((s) => [s.frames.join(';'), s.values]));

/** The raw decoded protobuf, to look at what fromPprof does not return. */
const raw = (buf: Buffer): PprofProfile => PprofProfile.decode(gunzipSync(buf));

test('a cpu profile comes back with the same stacks, each with its count and count × period nanoseconds', () => {
  const p = profile('cpu', 10_101_010);
  const d = fromPprof(toPprof(p));
  assert.deepEqual(d.sampleTypes, [
    { type: 'samples', unit: 'count' },
    { type: 'cpu', unit: 'nanoseconds' },
  ]);
  assert.equal(d.period, 10_101_010);
  assert.equal(d.stacks.length, STACKS.length);
  const got = byKey(d.stacks);
  for (const [frames, value] of STACKS) assert.deepEqual(got.get(frames.join(';')), [value, value * 10_101_010], frames.join(';'));
  const total = d.stacks.reduce((sum, s) => sum + s.values[0]!, 0);
  assert.equal(total, p.total);
});

test('an offcpu profile has one value in nanoseconds and the runq profile its own sample type', () => {
  const off = fromPprof(toPprof(profile('offcpu', 1)));
  assert.deepEqual(off.sampleTypes, [{ type: 'offcpu', unit: 'nanoseconds' }]);
  const got = byKey(off.stacks);
  for (const [frames, value] of STACKS) assert.deepEqual(got.get(frames.join(';')), [value * 1_000_003]);
  assert.equal(off.stacks.reduce((sum, s) => sum + s.values[0]!, 0), profile('offcpu', 1).total);

  const rq = fromPprof(toPprof(profile('runq', 1)));
  assert.deepEqual(rq.sampleTypes, [{ type: 'runqueue', unit: 'nanoseconds' }]);
  assert.equal(raw(toPprof(profile('runq', 1))).periodType, undefined, 'only cpu has a period type');
});

test('the bytes are gzip, and the protobuf says when and how long and the period type of cpu', () => {
  const buf = toPprof(profile('cpu', 1e7));
  assert.deepEqual([...buf.subarray(0, 2)], [0x1f, 0x8b]);
  const r = raw(buf);
  assert.equal(BigInt(r.timeNanos), BigInt(FROM) * 1_000_000n);
  assert.equal(Number(r.durationNanos), 10_000 * 1e6);
  const s = r.stringTable.strings;
  assert.deepEqual([s[Number(r.periodType!.type)], s[Number(r.periodType!.unit)]], ['cpu', 'nanoseconds']);
  assert.equal(Number(r.period), 1e7);
});

test('each frame name is one function and one location, shared by every stack that has it', () => {
  const r = raw(toPprof(profile('cpu', 1e7)));
  const names = new Set(STACKS.flatMap(([frames]) => frames));
  assert.equal(r.function.length, names.size);
  assert.equal(r.location.length, names.size);
  const s = r.stringTable.strings;
  assert.deepEqual(new Set(r.function.map((f) => s[Number(f.name)])), names);
  for (const l of r.location) assert.equal(l.line.length, 1);
  // leaf first: the first location of the burn_a sample is burn_a, the last the process
  const fnName = new Map(r.function.map((f) => [Number(f.id), s[Number(f.name)]]));
  const locFn = new Map(r.location.map((l) => [Number(l.id), Number(l.line[0]!.functionId)]));
  const burnA = r.sample.find((x) => fnName.get(locFn.get(Number(x.locationId[0]))!) === 'burn_a');
  assert.ok(burnA, 'a sample whose leaf is burn_a');
  assert.equal(fnName.get(locFn.get(Number(burnA.locationId.at(-1)))!), 'app');
});

test('kernel frames keep their _[k] name and carry the bare symbol as system name and [kernel] as file', () => {
  const r = raw(toPprof(profile('cpu', 1e7)));
  const s = r.stringTable.strings;
  const vfs = r.function.find((f) => s[Number(f.name)] === 'vfs_read_[k]');
  assert.ok(vfs);
  assert.equal(s[Number(vfs.systemName)], 'vfs_read');
  assert.equal(s[Number(vfs.filename)], '[kernel]');
  const main = r.function.find((f) => s[Number(f.name)] === 'main');
  assert.ok(main);
  assert.equal(s[Number(main.filename)], '');
});

test('an empty profile is a valid pprof with no samples', () => {
  const d = fromPprof(toPprof(new ProfileBuilder().build('offcpu', FROM, TO, 1)));
  assert.deepEqual(d.stacks, []);
  assert.deepEqual(d.sampleTypes, [{ type: 'offcpu', unit: 'nanoseconds' }]);
});

test('fromPprof reads plain (not gzip\'d) protobuf too', () => {
  const d = fromPprof(gunzipSync(toPprof(profile('cpu', 1e7))));
  assert.equal(d.stacks.length, STACKS.length);
});

/** A profile whose one sample names location 9 of none. */
function missingLocation(): Uint8Array {
  const strings = new StringTable();
  return new PprofProfile({
    sampleType: [new ValueType({ type: strings.dedup('samples'), unit: strings.dedup('count') })],
    sample: [new Sample({ locationId: [9], value: [1] })],
    stringTable: strings,
  }).encode();
}

test('bytes that are not pprof are refused with a message saying why', () => {
  const good = gunzipSync(toPprof(profile('cpu', 1e7)));
  const cases: [string, Uint8Array, RegExp][] = [
    ['text', Buffer.from('app;main;burn 12\n'), /not a pprof profile/],
    ['a broken gzip stream', Buffer.from([0x1f, 0x8b, 8, 0, 1, 2, 3]), /not a pprof profile: the gzip stream is broken/],
    // cut inside a length-delimited message (the samples, locations and functions fill the first half)
    ['a truncated profile', good.subarray(0, Math.floor(good.length / 2)), /not a pprof profile: .*(claims \d+ bytes|truncated)/],
    ['a sample naming a location it does not have', missingLocation(), /sample 0 names location 9, which it does not have/],
    ['a gzip of nothing', gzipSync(Buffer.alloc(0)), /not a pprof profile: it has no sample type/],
    ['a field of the wrong wire type', Buffer.from([0x0d, 1, 2, 3, 4]), /wire type 5/],
  ];
  for (const [what, bytes, message] of cases) {
    assert.throws(() => fromPprof(bytes), (err: Error) => err.name === 'PprofError' && message.test(err.message), what);
  }
});
