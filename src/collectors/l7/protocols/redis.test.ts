import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RedisParser } from './redis.js';
import { bytes, chunks, inn, out, rng, run, splitChunks, type Call } from './test-util.js';
import type { Chunk, ConnectionParser, ParserContext, RedisRecord } from './types.js';

const redis = (ctx: ParserContext): ConnectionParser => new RedisParser(ctx);

/** A command as clients send it: an array of bulk strings. */
const cmd = (...args: string[]): string => `*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
const bulk = (s: string): string => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const brief = (r: RedisRecord): string => `${r.command} ${r.status}`;

/** redis-benchmark -P 16: 16 SETs in one write, 16 replies in one read, then 16 GETs; key 7 holds a list. */
function benchmark(): Call[] {
  const keys = Array.from({ length: 16 }, (_, i) => `key:${String(i).padStart(12, '0')}`);
  return [
    out(...keys.map((k) => cmd('SET', k, 'xxx'))),
    inn('+OK\r\n'.repeat(16)),
    out(...keys.map((k) => cmd('GET', k))),
    inn(...keys.map((_, i) => (i === 7 ? '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n' : bulk('xxx')))),
  ];
}

test('a pipeline of 16 SETs then 16 GETs counts every command exactly, one WRONGTYPE among them', () => {
  const { records, stats } = run(redis, chunks(benchmark()));
  const recs = records as RedisRecord[];
  assert.equal(recs.length, 32);
  assert.deepEqual(recs.slice(0, 16).map(brief), Array(16).fill('SET ok'));
  assert.deepEqual(recs.slice(16).map(brief), [...Array<string>(7).fill('GET ok'), 'GET WRONGTYPE', ...Array<string>(8).fill('GET ok')]);
  assert.equal(recs[23]!.error, true);
  assert.equal(recs[23]!.errorMessage, 'WRONGTYPE Operation against a key holding the wrong kind of value');
  assert.deepEqual(recs[0]!.args, ['key:000000000000', 'xxx']);
  assert.equal(recs.reduce((n, r) => n + r.requestBytes, 0), benchmark()[0]!.data.length + benchmark()[2]!.data.length);
  assert.equal(recs.reduce((n, r) => n + r.responseBytes, 0), benchmark()[1]!.data.length + benchmark()[3]!.data.length);
  assert.equal(stats.unmatchedResponses, 0);
});

test('any split of the pipeline gives the same records', () => {
  const whole = run(redis, chunks(benchmark())).records;
  const random = rng(3);
  for (let i = 0; i < 300; i++) assert.deepEqual(run(redis, splitChunks(chunks(benchmark()), random)).records, whole);
});

test('a 256-byte capture of the pipeline still counts 32 replies with their statuses', () => {
  const { records, stats } = run(redis, chunks(benchmark(), 256));
  const recs = records as RedisRecord[];
  assert.equal(recs.length, 32);
  assert.equal(recs.filter((r) => r.status === 'ok').length, 31);
  assert.equal(recs.filter((r) => r.status === 'WRONGTYPE').length, 1);
  // commands past the capture are unknown, never another's: the first ones are named
  assert.deepEqual(recs.slice(0, 5).map(brief), Array(5).fill('SET ok'));
  assert.ok(recs.every((r, i) => r.command === undefined || r.command === (i < 16 ? 'SET' : 'GET')));
  assert.ok(stats.unmatchedResponses > 0);
});

test('RESP3: every reply type is followed, and pushes between replies pop nothing', () => {
  const calls: Call[] = [
    out(cmd('HELLO', '3', 'AUTH', 'default', 'hunter2')),
    inn('%3\r\n', bulk('server'), bulk('redis'), bulk('proto'), ':3\r\n', bulk('modules'), '*0\r\n'),
    out(cmd('CLIENT', 'TRACKING', 'on'), cmd('GET', 'a'), cmd('GET', 'b'), cmd('DEBUG', 'PROTOCOL', 'attrib'), cmd('XYZ')),
    inn('+OK\r\n', bulk('1')),
    inn('>2\r\n', bulk('invalidate'), '*1\r\n', bulk('a'), '>3\r\n', bulk('message'), bulk('ch'), bulk('hi')),
    inn('=15\r\ntxt:Some string\r\n'),
    inn('|1\r\n', bulk('key-popularity'), '%2\r\n', bulk('a'), ',0.1923\r\n', bulk('b'), ',0.0012\r\n', '~4\r\n#t\r\n_\r\n(3492890328409238509324850943850943825024385\r\n:-7\r\n'),
    inn('!21\r\nSYNTAX invalid syntax\r\n'),
  ];
  const { records, stats } = run(redis, chunks(calls), 'client');
  const recs = records as RedisRecord[];
  assert.deepEqual(recs.map(brief), ['HELLO ok', 'CLIENT TRACKING ok', 'GET ok', 'GET ok', 'DEBUG PROTOCOL ok', 'XYZ SYNTAX']);
  assert.deepEqual(recs[0]!.args, ['3', 'AUTH', '***', '***']);
  assert.equal(stats.asyncMessages, 2);
  const random = rng(5);
  for (let i = 0; i < 100; i++) assert.deepEqual(run(redis, splitChunks(chunks(calls), random)).records, records);
});

test('RESP2 pub/sub: confirmations answer SUBSCRIBE per channel, messages are pushes', () => {
  const confirm = (kind: string, ch: string, n: number): string => `*3\r\n${bulk(kind)}${bulk(ch)}:${n}\r\n`;
  const calls: Call[] = [
    out(cmd('SUBSCRIBE', 'news', 'alerts')),
    inn(confirm('subscribe', 'news', 1), confirm('subscribe', 'alerts', 2)),
    inn(`*3\r\n${bulk('message')}${bulk('news')}${bulk('hello')}`),
    out(cmd('PING')),
    inn(`*2\r\n${bulk('pong')}${bulk('')}`),
    inn(`*3\r\n${bulk('message')}${bulk('alerts')}${bulk('fire')}`),
    out(cmd('UNSUBSCRIBE')),
    inn(confirm('unsubscribe', 'news', 1), confirm('unsubscribe', 'alerts', 0)),
  ];
  const { records, stats } = run(redis, chunks(calls), 'client');
  assert.deepEqual((records as RedisRecord[]).map(brief), ['SUBSCRIBE ok', 'PING ok', 'UNSUBSCRIBE ok']);
  assert.equal(stats.asyncMessages, 3); // two messages and the second unsubscribe confirmation
});

test('a huge array past the capture is counted as one partial reply and the next command resynchronizes', () => {
  const items = Array.from({ length: 1000 }, (_, i) => bulk(`item-${i}`)).join('');
  const calls: Call[] = [
    inn(cmd('LRANGE', 'list', '0', '-1')),
    out(`*1000\r\n${items}`),
    inn(cmd('GET', 'k')),
    out(bulk('v')),
    inn('PING\r\n'),
    out('+PONG\r\n'),
  ];
  const { records, stats } = run(redis, chunks(calls, 128), 'server');
  const recs = records as RedisRecord[];
  assert.deepEqual(recs.map((r) => `${brief(r)}${r.responsePartial ? ' partial' : ''}`), ['LRANGE ok partial', 'GET ok', 'PING ok']);
  assert.equal(recs[0]!.responseBytes > 0, true);
  assert.equal(stats.desyncs, 1);
});

test('a big value is skipped by its length whatever the capture', () => {
  const value = 'v'.repeat(100_000);
  const calls: Call[] = [out(cmd('SET', 'big', value)), inn('+OK\r\n'), out(cmd('GET', 'big')), inn(bulk(value)), out(cmd('DEL', 'big')), inn(':1\r\n')];
  for (const cap of [Infinity, 512, 64]) {
    const { records, stats } = run(redis, chunks(calls, cap));
    assert.deepEqual((records as RedisRecord[]).map(brief), ['SET ok', 'GET ok', 'DEL ok'], `capture ${cap}`);
    assert.equal(records[0]!.requestBytes, calls[0]!.data.length);
    assert.equal(records[1]!.responseBytes, calls[3]!.data.length);
    assert.equal(stats.desyncs, 0);
  }
  assert.deepEqual((run(redis, chunks(calls)).records[0] as RedisRecord).args, ['big', `${'v'.repeat(64)}…`]);
});

test('AUTH arguments are masked, shapes-only mode keeps no arguments, and hostile nesting is bounded', () => {
  const { records } = run(redis, chunks([out(cmd('AUTH', 'app', 's3cret')), inn('+OK\r\n'), out('PING\r\n'), inn('+PONG\r\n')]));
  assert.deepEqual((records as RedisRecord[]).map((r) => [r.command, r.args]), [['AUTH', ['***', '***']], ['PING', []]]);
  const shapes = run(redis, chunks([out(cmd('SET', 'k', 'v')), inn('+OK\r\n')]), 'client', { payload: 'shapes' });
  assert.equal((shapes.records[0] as RedisRecord).args, undefined);
  const deep = run(redis, chunks([out(cmd('GET', 'x')), inn('*1\r\n'.repeat(5000), ':1\r\n'), out(cmd('GET', 'y')), inn(bulk('ok'))]));
  assert.deepEqual((deep.records as RedisRecord[]).map(brief), ['GET ok', 'GET ok']);
  assert.equal(deep.records[0]!.responsePartial, true);
  assert.equal(deep.stats.truncatedReplies, 1);
  const many = run(redis, chunks([out(cmd('PING').repeat(1000))]), 'client', { maxPending: 100 });
  assert.equal(many.records.length, 100);
  assert.equal(many.stats.pendingOverflow, 900);
  void bytes;
});

/** 16 commands in one write, their replies in one read (or `split` of them in a first read): SETs, GETs, an LPUSH that fails, GETs, DELs. */
function mixedPipeline(split = 16): Call[] {
  const commands = [
    ...Array.from({ length: 5 }, (_, i) => cmd('SET', `k${i}`, 'v')),
    ...Array.from({ length: 4 }, (_, i) => cmd('GET', `k${i}`)),
    cmd('LPUSH', 'k0', 'x'),
    ...Array.from({ length: 2 }, (_, i) => cmd('get', `k${i}`)),
    ...Array.from({ length: 4 }, (_, i) => cmd('DEL', `k${i}`)),
  ];
  const replies = [...Array<string>(5).fill('+OK\r\n'), ...Array<string>(4).fill(bulk('v')), '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n', ...Array<string>(2).fill(bulk('v')), ...Array<string>(4).fill(':1\r\n')];
  return [out(...commands), inn(...replies.slice(0, split)), ...(split < 16 ? [inn(...replies.slice(split))] : [])];
}

/** The records with each run written out: what one record per command would have counted. */
const perCommand = (recs: readonly RedisRecord[]): string[] => recs.flatMap((r) => Array<string>(r.count).fill(brief(r)));

test('aggregated: a 16-command pipeline is a record per run of commands alike, counts exact, the error its own record with its message', () => {
  const one = run(redis, chunks(mixedPipeline())).records as RedisRecord[];
  const { records, stats } = run(redis, chunks(mixedPipeline()), 'client', { aggregateUnder: 1_000_000n });
  const recs = records as RedisRecord[];
  assert.deepEqual(recs.map((r) => `${r.count} ${brief(r)}`), ['5 SET ok', '4 GET ok', '1 LPUSH WRONGTYPE', '2 GET ok', '4 DEL ok']);
  assert.deepEqual(perCommand(recs), perCommand(one));
  assert.ok(one.every((r) => r.count === 1), 'one record per command unless asked');
  assert.equal(stats.records, 16, 'commands, as before');
  const failed = recs[2]!;
  assert.equal(failed.error, true);
  assert.equal(failed.errorMessage, 'WRONGTYPE Operation against a key holding the wrong kind of value');
  assert.deepEqual(failed.args, ['k0', 'x']);
  assert.deepEqual(recs[0]!.args, ['k0', 'v'], 'a run carries its first command\'s arguments');
  assert.equal(recs.reduce((n, r) => n + r.requestBytes, 0), one.reduce((n, r) => n + r.requestBytes, 0));
  assert.equal(recs.reduce((n, r) => n + r.responseBytes, 0), one.reduce((n, r) => n + r.responseBytes, 0));
  for (const r of recs) assert.deepEqual([r.start, r.responseStart, r.end], [1000n, 2000n, 2000n]);
});

test('aggregated: replies read in two calls end two runs; commands as slow as aggregateUnder are each their own record; any split counts the same', () => {
  const two = run(redis, chunks(mixedPipeline(7)), 'client', { aggregateUnder: 1_000_000n }).records as RedisRecord[];
  assert.deepEqual(two.map((r) => `${r.count} ${brief(r)}`), ['5 SET ok', '2 GET ok', '2 GET ok', '1 LPUSH WRONGTYPE', '2 GET ok', '4 DEL ok']);
  assert.deepEqual([two[1]!.end, two[2]!.end], [2000n, 3000n]);
  // the replies came 1000 ns after the commands: at that threshold every command may be an event
  const slow = run(redis, chunks(mixedPipeline()), 'client', { aggregateUnder: 1000n }).records as RedisRecord[];
  assert.deepEqual(slow, run(redis, chunks(mixedPipeline())).records);
  const whole = perCommand(run(redis, chunks(mixedPipeline()), 'client', { aggregateUnder: 1_000_000n }).records as RedisRecord[]);
  const random = rng(9);
  for (let i = 0; i < 200; i++) assert.deepEqual(perCommand(run(redis, splitChunks(chunks(mixedPipeline()), random), 'client', { aggregateUnder: 1_000_000n }).records as RedisRecord[]), whole);
});

test('aggregated: commands unanswered at the close are a run of their own, after the answered ones', () => {
  const calls: Call[] = [out(cmd('SET', 'a', '1'), cmd('SET', 'b', '2'), cmd('GET', 'a'), cmd('GET', 'b'), cmd('GET', 'c')), inn('+OK\r\n+OK\r\n', bulk('1'))];
  // the close comes 1 ms after the last chunk
  const recs = run(redis, chunks(calls), 'client', { aggregateUnder: 10_000_000n }).records as RedisRecord[];
  assert.deepEqual(recs.map((r) => `${r.count} ${brief(r)}`), ['2 SET ok', '1 GET ok', '2 GET none']);
});

/** Each chunk as one-byte chunks at its time: no command or reply is ever whole in one, so none is read in place. */
const bytewise = (list: readonly Chunk[]): Chunk[] => list.flatMap((c) => Array.from({ length: c.size }, (_, i) => ({ ...c, data: c.data.subarray(i, i + 1), size: 1 })));

test('read in place or the general way, the records are the same: names in any case, long and many arguments, unknown and container commands, arguments read after the next chunk came', () => {
  const long = 'x'.repeat(100);
  const calls: Call[] = [
    out(cmd('get', 'a'), cmd('Set', 'b', long), cmd('MSET', 'k1', 'v1', 'k2', 'v2', 'k3', 'v3', 'k4', 'v4', 'k5', 'v5'), cmd('GETX', 'a'), cmd('CLIENT', 'SETNAME', 'app'), cmd('DEL', ''), cmd('GET', 'ctl\u0001\u007f')),
    out(cmd('AUTH', 'app', 's3cret'), cmd('HELLO', '3', 'AUTH', 'u', 'p'), cmd('EXISTS', 'a', 'b')), // before the replies to the first write: its arguments are read out of it then
    inn(bulk('1'), '+OK\r\n', '+OK\r\n', '-ERR unknown command\r\n', '+OK\r\n', ':0\r\n', bulk('')),
    inn('+OK\r\n', '%1\r\n', bulk('proto'), ':3\r\n', ':2\r\n'),
    out(cmd('INCR', 'n'), cmd('LRANGE', 'l', '0', '-1'), cmd('GET', 'gone')),
    inn(':1\r\n', '*2\r\n', bulk('a'), bulk('b'), '$-1\r\n'),
  ];
  const whole = run(redis, chunks(calls)).records as RedisRecord[];
  assert.deepEqual(whole.map(brief), ['GET ok', 'SET ok', 'MSET ok', 'GETX ERR', 'CLIENT SETNAME ok', 'DEL ok', 'GET ok', 'AUTH ok', 'HELLO ok', 'EXISTS ok', 'INCR ok', 'LRANGE ok', 'GET ok']);
  assert.deepEqual(whole.map((r) => r.args), [
    ['a'],
    ['b', `${'x'.repeat(64)}…`],
    ['k1', 'v1', 'k2', 'v2', 'k3', 'v3', 'k4', 'v4'],
    ['a'],
    ['app'],
    [''],
    ['ctl??'],
    ['***', '***'],
    ['3', 'AUTH', '***', '***'],
    ['a', 'b'],
    ['n'],
    ['l', '0', '-1'],
    ['gone'],
  ]);
  assert.deepEqual(run(redis, bytewise(chunks(calls))).records, whole);
  for (const role of ['client', 'server'] as const) {
    const flipped = calls.map((c) => ({ ...c, dir: role === 'client' ? c.dir : c.dir === 'egress' ? ('ingress' as const) : ('egress' as const) }));
    const agg = { aggregateUnder: 1_000_000n };
    assert.deepEqual(run(redis, chunks(flipped), role, agg).records, run(redis, bytewise(chunks(flipped)), role, agg).records, role);
  }
});

test('read in place, a command or reply cut by the capture or split across calls is left to the general way, which counts it the same', () => {
  const calls = benchmark();
  const whole = run(redis, chunks(calls)).records;
  for (const cap of [255, 300, 400, 600]) {
    const cut = run(redis, chunks(calls, cap)).records as RedisRecord[];
    assert.equal(cut.length, 32, `capture ${cap}`);
    assert.deepEqual(cut.map((r) => r.status), (whole as RedisRecord[]).map((r) => r.status), `capture ${cap}`);
  }
  // a write that ends mid-command and one that finishes it
  const out0 = calls[0]!.data;
  const split: Call[] = [{ dir: 'egress', data: out0.subarray(0, 200) }, { dir: 'egress', data: out0.subarray(200) }, calls[1]!];
  const recs = run(redis, chunks(split)).records as RedisRecord[];
  assert.deepEqual(recs.map(brief), Array(16).fill('SET ok'));
  assert.deepEqual(recs.map((r) => r.args![0]), Array.from({ length: 16 }, (_, i) => `key:${String(i).padStart(12, '0')}`));
});
