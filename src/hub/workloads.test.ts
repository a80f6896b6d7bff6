/**
 * The workloads view's arithmetic: quantiles against values computed by hand, entries grouped by
 * workload, pod and container (unknown workloads and host cgroups included), sums, sorting and limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { type AggregateRow } from './store.js';
import { WORKLOAD_GROUP_BY, WORKLOAD_METRICS, histogramQuantile, summarizeWorkloads } from './workloads.js';

test('histogramQuantile interpolates within the bucket the rank falls in', () => {
  // 10 observations: 2 in (0, 0.001], 6 in (0.001, 0.002], 2 in (0.002, 0.004]
  const b = [
    { le: 0.001, count: 2 },
    { le: 0.002, count: 8 },
    { le: 0.004, count: 10 },
    { le: Infinity, count: 10 },
  ];
  // p50: rank 5, in the second bucket, 3 of its 6 → 0.001 + 0.001 * 3/6
  assert.equal(histogramQuantile(0.5, b), 0.0015);
  // p99: rank 9.9, third bucket, 1.9 of its 2 → 0.002 + 0.002 * 0.95
  assert.ok(Math.abs(histogramQuantile(0.99, b)! - 0.0039) < 1e-15);
  // p10: rank 1, first bucket from 0 → 0.001 * 1/2
  assert.equal(histogramQuantile(0.1, b), 0.0005);
  // p20: rank 2, exactly the first bucket's count → its upper bound
  assert.equal(histogramQuantile(0.2, b), 0.001);
  assert.equal(histogramQuantile(1, b), 0.004);
  assert.equal(histogramQuantile(0, b), 0);
  // any order; repeated bounds summed (two series' buckets)
  assert.equal(histogramQuantile(0.5, [...b].reverse()), 0.0015);
  assert.equal(histogramQuantile(0.5, [...b, ...b]), 0.0015);
});

test('histogramQuantile: a rank in +Inf gives the highest finite bound; no observations give null', () => {
  const b = [
    { le: 1, count: 1 },
    { le: 2, count: 2 },
    { le: Infinity, count: 100 },
  ];
  assert.equal(histogramQuantile(0.5, b), 2);
  assert.equal(histogramQuantile(0.99, b), 2);
  assert.equal(histogramQuantile(0.5, [{ le: 1, count: 0 }, { le: Infinity, count: 0 }]), null);
  assert.equal(histogramQuantile(0.5, []), null);
  assert.equal(histogramQuantile(0.5, [{ le: Infinity, count: 5 }]), null, 'no finite bound to say');
  // empty leading buckets: the rank lands past them
  assert.equal(histogramQuantile(0.5, [{ le: 1, count: 0 }, { le: 2, count: 0 }, { le: 4, count: 4 }, { le: Infinity, count: 4 }]), 3);
  // counts that go down (a reset seen in one bucket only) are read as the highest below
  assert.equal(histogramQuantile(0.5, [{ le: 1, count: 4 }, { le: 2, count: 3 }, { le: Infinity, count: 4 }]), 0.5);
  assert.throws(() => histogramQuantile(1.5, b), RangeError);
  assert.throws(() => histogramQuantile(Number.NaN, b), RangeError);
});

const POD_A = { node: 'n1', namespace: 'shop', workload_kind: 'Deployment', workload: 'cart', pod: 'cart-a', container: 'app', cgroup: '/kubepods/poda/c1' };
const POD_A_SIDECAR = { ...POD_A, container: 'proxy', cgroup: '/kubepods/poda/c2' };
const POD_B = { ...POD_A, node: 'n2', pod: 'cart-b', cgroup: '/kubepods/podb/c1' };
/** a pod without a known workload (a bare pod) */
const BARE = { node: 'n1', namespace: 'shop', workload_kind: '', workload: '', pod: 'debug', container: 'sh', cgroup: '/kubepods/podd/c1' };
/** host cgroups: the same path on two nodes is two entries */
const HOST1 = { node: 'n1', namespace: '', workload_kind: '', workload: '', pod: '', container: '', cgroup: '/system.slice/sshd.service' };
const HOST2 = { ...HOST1, node: 'n2' };

const row = (metric: string, group: Record<string, string>, delta: number, le?: string): AggregateRow => ({
  metric,
  group: { ...group, le: le ?? '' },
  delta,
  avg: 0,
  last: 0,
  series: 1,
});

const runq = (group: Record<string, string>, cumulative: [string, number][]): AggregateRow[] => cumulative.map(([le, n]) => row('periscope_runqueue_latency_seconds_bucket', group, n, le));

function rows(): AggregateRow[] {
  return [
    row('periscope_cpu_seconds_total', POD_A, 3),
    row('periscope_cpu_seconds_total', POD_A_SIDECAR, 1),
    row('periscope_cpu_seconds_total', POD_B, 2),
    row('periscope_cpu_seconds_total', BARE, 0.5),
    row('periscope_cpu_seconds_total', HOST1, 7),
    row('periscope_cpu_seconds_total', HOST2, 0.25),
    row('periscope_context_switches_total', POD_A, 100),
    row('periscope_context_switches_total', POD_B, 50),
    row('periscope_process_execs_total', BARE, 4),
    row('periscope_process_exits_total', BARE, 3),
    row('periscope_process_exits_total', POD_A, 2),
    row('periscope_oom_kills_total', POD_B, 1),
    row('periscope_tcp_connections_total', POD_A, 10),
    row('periscope_tcp_connections_total', POD_A_SIDECAR, 5),
    row('periscope_tcp_bytes_sent_total', POD_A, 1000),
    row('periscope_tcp_bytes_received_total', POD_A, 2000),
    row('periscope_tcp_retransmits_total', POD_B, 3),
    // not a workload metric: ignored
    row('periscope_memory_bytes', POD_A, 1e9),
    // pod a: 4 in (0, 1ms], 4 in (1ms, 2ms]; pod b: 2 in (1ms, 2ms]
    ...runq(POD_A, [['0.001', 4], ['0.002', 8], ['+Inf', 8]]),
    ...runq(POD_B, [['0.001', 0], ['0.002', 2], ['+Inf', 2]]),
    ...runq(HOST1, [['0.001', 0], ['0.002', 0], ['+Inf', 0]]),
  ];
}

test('WORKLOAD_METRICS and WORKLOAD_GROUP_BY name what the store must be asked for', () => {
  assert.ok(WORKLOAD_METRICS.includes('periscope_runqueue_latency_seconds_bucket'));
  assert.ok(WORKLOAD_METRICS.includes('periscope_tcp_bytes_received_total'));
  assert.equal(WORKLOAD_METRICS.length, 10);
  assert.ok(WORKLOAD_METRICS.includes('periscope_process_exits_total'));
  assert.deepEqual([...WORKLOAD_GROUP_BY].sort(), ['cgroup', 'container', 'le', 'namespace', 'node', 'pod', 'workload', 'workload_kind']);
});

test("group 'workload': a workload's pods on every node in one entry; a bare pod by its name; host cgroups per node", () => {
  const got = summarizeWorkloads(rows(), { group: 'workload', seconds: 10, sort: 'cpu_seconds' });
  assert.deepEqual(
    got.map((e) => [e.namespace, e.workload, e.pod, e.node, e.cgroup, e.cpu_seconds]),
    [
      ['', '', '', 'n1', '/system.slice/sshd.service', 7],
      ['shop', 'cart', '', 'n1', '/kubepods/poda/c1', 6],
      ['shop', '', 'debug', 'n1', '/kubepods/podd/c1', 0.5],
      ['', '', '', 'n2', '/system.slice/sshd.service', 0.25],
    ],
  );
  const cart = got[1]!;
  assert.deepEqual(cart.nodes, ['n1', 'n2']);
  assert.equal(cart.workload_kind, 'Deployment');
  assert.equal(cart.container, '', 'two containers: none named');
  assert.equal(cart.cpu_cores, 0.6);
  assert.equal(cart.context_switches, 150);
  assert.equal(cart.oom_kills, 1);
  assert.equal(cart.tcp_connections, 15);
  assert.equal(cart.tcp_bytes_sent, 1000);
  assert.equal(cart.tcp_bytes_received, 2000);
  assert.equal(cart.tcp_retransmits, 3);
  assert.equal(cart.execs, 0);
  assert.equal(cart.exits, 2);
  // 10 observations: 4 ≤ 1ms, 10 ≤ 2ms. p50: rank 5 → 1ms + 1ms * 1/6; p99: rank 9.9 → 1ms + 1ms * 5.9/6
  assert.ok(Math.abs(cart.runqueue_latency_p50_seconds! - (0.001 + 0.001 / 6)) < 1e-15);
  assert.ok(Math.abs(cart.runqueue_latency_p99_seconds! - (0.001 + (0.001 * 5.9) / 6)) < 1e-15);
  const bare = got[2]!;
  assert.equal(bare.execs, 4);
  assert.equal(bare.exits, 3);
  assert.equal(bare.container, 'sh');
  assert.equal(bare.runqueue_latency_p99_seconds, null, 'no buckets');
  assert.equal(got[0]!.runqueue_latency_p50_seconds, null, 'buckets without observations');
});

test("group 'pod' and 'container'", () => {
  const pods = summarizeWorkloads(rows(), { group: 'pod', seconds: 2, sort: 'name' });
  assert.deepEqual(
    pods.map((e) => [e.namespace, e.pod, e.node, e.container, e.cpu_seconds]),
    [
      ['', '', 'n1', '', 7],
      ['', '', 'n2', '', 0.25],
      ['shop', 'debug', 'n1', 'sh', 0.5], // name sorts by namespace, workload, pod: the bare pod has no workload
      ['shop', 'cart-a', 'n1', '', 4],
      ['shop', 'cart-b', 'n2', 'app', 2],
    ],
  );
  assert.equal(pods[3]!.cgroup, '/kubepods/poda/c1', 'the shortest path, the first among equals');
  assert.equal(pods[3]!.workload, 'cart', 'a pod keeps its workload');
  assert.equal(pods[3]!.cpu_cores, 2);
  const containers = summarizeWorkloads(rows(), { group: 'container', seconds: 1, sort: 'tcp_connections' });
  assert.equal(containers.length, 6);
  assert.deepEqual(containers.slice(0, 2).map((e) => [e.cgroup, e.container, e.tcp_connections]), [
    ['/kubepods/poda/c1', 'app', 10],
    ['/kubepods/poda/c2', 'proxy', 5],
  ]);
});

test('sorting puts nulls last and breaks ties by name; limit cuts after sorting', () => {
  const byLatency = summarizeWorkloads(rows(), { group: 'pod', seconds: 1, sort: 'runqueue_latency_p99_seconds' });
  assert.deepEqual(byLatency.map((e) => e.runqueue_latency_p99_seconds === null), [false, false, true, true, true]);
  assert.equal(byLatency[0]!.pod, 'cart-b', '1.99ms (2 in (1ms, 2ms]) beats 1.98ms');
  assert.deepEqual(byLatency.slice(2).map((e) => [e.namespace, e.pod, e.node]), [
    ['', '', 'n1'],
    ['', '', 'n2'],
    ['shop', 'debug', 'n1'],
  ]);
  const top2 = summarizeWorkloads(rows(), { group: 'pod', seconds: 1, sort: 'execs', limit: 2 });
  assert.deepEqual(top2.map((e) => e.pod), ['debug', ''], 'execs 4, then the zero ties by name');
  assert.deepEqual(summarizeWorkloads([], { group: 'workload', seconds: 1, sort: 'cpu_seconds' }), []);
  assert.throws(() => summarizeWorkloads([], { group: 'workload', seconds: 0, sort: 'cpu_seconds' }), RangeError);
});
