import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventLog } from './event-log.js';
import { type ExecEvent } from '../collectors/process/index.js';

const exec = (pid: number): Omit<ExecEvent, 'seq'> => ({
  type: 'exec',
  time: new Date(0).toISOString(),
  node: 'n',
  cgroup: '/a',
  cgroup_id: 7,
  pid,
  ns_pid: pid,
  ppid: 1,
  namespace: '',
  pod: '',
  container: '',
  workload_kind: '',
  workload: '',
  uid: 0,
  comm: 'sh',
  filename: '/bin/true',
  args: ['true'],
  args_truncated: false,
});

const pids = (events: readonly Record<string, unknown>[]): unknown[] => events.map((e) => e.pid);

test('keeps the newest events up to its capacity and numbers them', () => {
  const log = new EventLog(3, ['exec', 'exit']);
  for (let pid = 1; pid <= 5; pid++) log.push(exec(pid));
  assert.deepEqual(pids(log.since(0, 100)), [3, 4, 5]);
  assert.deepEqual(log.since(4, 100).map((e) => e.seq), [5]);
  assert.equal(log.last, 5);
  assert.equal(log.evicted, 2);
  assert.deepEqual(log.since(0, 2).map((e) => e.seq), [3, 4], 'paging forward from since takes the oldest first');
  assert.deepEqual(log.newest(2).map((e) => e.seq), [4, 5], 'newest takes the newest, in order');
  assert.deepEqual(log.newest(2, (e) => e.pid !== 5).map((e) => e.seq), [3, 4], 'newest after filtering');
  assert.deepEqual([...log.counts], [['exec', 5], ['exit', 0]], 'every declared type is counted from zero');
});

test('a subscriber that cannot keep up loses events, and the loss is counted', () => {
  const log = new EventLog(10);
  const got: unknown[] = [];
  const unsubscribe = log.subscribe({ send: (e) => ((e.pid as number) % 2 === 0 ? (got.push(e.pid), true) : false) });
  for (let pid = 1; pid <= 6; pid++) log.push(exec(pid));
  assert.deepEqual(got, [2, 4, 6]);
  assert.equal(log.subscriberDrops, 3);
  unsubscribe();
  log.push(exec(8));
  assert.deepEqual(got, [2, 4, 6]);
  assert.equal(log.subscriberCount, 0);
});

test('filters apply before delivery and do not count as drops', () => {
  const log = new EventLog(10);
  const got: unknown[] = [];
  log.subscribe({ filter: (e) => (e.pid as number) > 2, send: (e) => (got.push(e.pid), true) });
  for (let pid = 1; pid <= 4; pid++) log.push(exec(pid));
  assert.deepEqual(got, [3, 4]);
  assert.equal(log.subscriberDrops, 0);
});

test('a storm of one type shortens only its own history: the rare types stay in the log', () => {
  const log = new EventLog(100, ['exec', 'oom_kill']);
  log.push({ ...exec(1), type: 'oom_kill' });
  for (let pid = 2; pid <= 10_000; pid++) log.push(exec(pid));
  const oom = log.newest(10, (e) => e.type === 'oom_kill');
  assert.deepEqual(pids(oom), [1], 'the one OOM kill outlived 9,999 execs');
  assert.equal(log.newest(1000).length, 100, 'still at most capacity in all');
  assert.deepEqual(pids(log.newest(2)), [9_999, 10_000]);
  assert.equal(log.evicted, 9_900);
  assert.deepEqual(log.since(0, 3).map((e) => e.type), ['oom_kill', 'exec', 'exec'], 'paging forward goes by seq across types');
});
