/**
 * `periscope top`: the Prometheus text parser (hostile lines included), increases between two reads
 * (counter resets, new series), and the real command against local stub servers: an agent serving two
 * successive /metrics texts (the JSON snapshot's numbers computed by hand), a hub serving a
 * WorkloadsResponse (the query it was sent), tables without a terminal, and every failure as one line
 * and a fix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, freePort } from '../../test/agent-process.js';
import { run } from '../../test/kernel.js';
import { type WorkloadsResponse } from '../wire/hub.js';
import { ExpositionError, agentSnapshot, checkWorkloadsResponse, increaseRows, parseExposition, rate, renderTable, scrape, sortKey } from './top.js';

// ----------------------------------------------------------------------------------------------
// The parser

test('the parser reads HELP, TYPE, comments, labels with escapes, special values and timestamps', () => {
  const text = [
    '# HELP periscope_x_total A help text with \\\\ and \\n escapes.',
    '# TYPE periscope_x_total counter',
    '# just a comment',
    '',
    'periscope_x_total{cgroup="/a\\\\b\\"c\\nd",namespace=""} 12.5',
    'periscope_x_total{a="1",} 3 1700000000000',
    'periscope_up 1',
    'h_bucket{le="+Inf"} +Inf',
    'h_bucket{le="1e-3"} -Inf',
    'nan_metric NaN',
    'exp_metric 1.5e+3\r',
  ].join('\n');
  const got = parseExposition(text);
  assert.deepEqual(got, [
    { name: 'periscope_x_total', labels: { cgroup: '/a\\b"c\nd', namespace: '' }, value: 12.5 },
    { name: 'periscope_x_total', labels: { a: '1' }, value: 3 },
    { name: 'periscope_up', labels: {}, value: 1 },
    { name: 'h_bucket', labels: { le: '+Inf' }, value: Infinity },
    { name: 'h_bucket', labels: { le: '1e-3' }, value: -Infinity },
    { name: 'nan_metric', labels: {}, value: NaN },
    { name: 'exp_metric', labels: {}, value: 1500 },
  ]);
  // a label named __proto__ is a label like any other, not the object's prototype
  const [proto] = parseExposition('m{__proto__="x"} 1');
  assert.equal(Object.getPrototypeOf(proto!.labels), Object.prototype);
  assert.equal(Object.getOwnPropertyDescriptor(proto!.labels, '__proto__')?.value, 'x');
});

test('hostile or broken lines are errors naming the line', () => {
  const cases: [string, RegExp][] = [
    ['m{a="1} 1', /not closed/],
    ['m{a="\\t"} 1', /unknown escape \\t/],
    ['m{a="1"', /not closed|expected a label name|expected , or }/],
    ['m{a=1} 1', /expected ="value"/],
    ['m{a="1" b="2"} 1', /expected , or }/],
    ['m{a="1",a="2"} 1', /appears twice/],
    ['m{1a="x"} 1', /expected a label name/],
    ['m{="x"} 1', /expected a label name/],
    ['m', /expected a space and the value/],
    ['m ', /expected a value/],
    ['m abc', /"abc" is not a number/],
    ['m 0x10', /is not a number/],
    ['m 1 2 3', /at most a timestamp/],
    ['m 1 soon', /is not a timestamp/],
    ['m{a="1"}1', /expected a space/],
    ['1m 1', /expected a metric name/],
    ['{a="1"} 1', /expected a metric name/],
    ['<html><body>hello</body></html>', /expected a metric name/],
    ['# TYPE m nonsense', /unknown metric type/],
    ['# TYPE 9m counter', /not a metric name/],
    ['m{\u001b[2J="x"} 1', /expected a label name/],
  ];
  for (const [l, message] of cases) {
    assert.throws(
      () => parseExposition(`# TYPE ok gauge\nok 1\n${l}\n`),
      (err: unknown) => err instanceof ExpositionError && err.lineNumber === 3 && message.test(err.message) && err.message.startsWith('line 3: '),
      l,
    );
  }
  // bounded: lines, samples and labels
  assert.throws(() => parseExposition(`m{a="${'x'.repeat(200)}"} 1`, { maxLine: 100, maxSamples: 10, maxLabels: 4 }), /longer than 100 characters/);
  assert.throws(() => parseExposition('m 1\nm 2\nm 3\n', { maxLine: 100, maxSamples: 2, maxLabels: 4 }), /line 3: more than 2 samples/);
  assert.throws(() => parseExposition('m{a="",b="",c=""} 1', { maxLine: 100, maxSamples: 2, maxLabels: 2 }), /more than 2 labels/);
});

// ----------------------------------------------------------------------------------------------
// Increases between two reads

const A = 'cgroup="/kubepods/poda/c1",namespace="shop",pod="cart-a",container="app",workload_kind="Deployment",workload="cart",node="n1"';
const B = 'cgroup="/kubepods/podb/c1",namespace="shop",pod="cart-b",container="app",workload_kind="Deployment",workload="cart",node="n1"';
const X = 'cgroup="/kubepods/podx/c1",namespace="other",pod="x",container="x",workload_kind="",workload="",node="n1"';
const SSH = 'cgroup="/system.slice/a\\\\b\\"c.service",namespace="",pod="",container="",workload_kind="",workload="",node="n1"';
const PEER = 'peer_kind="pod",peer_namespace="db",peer_workload="postgres",peer="db/postgres",peer_port="5432"';

/** /metrics before: what the agent has counted since it started. */
const FIRST = `# HELP periscope_cpu_seconds_total CPU time spent on a CPU by tasks of the cgroup.
# TYPE periscope_cpu_seconds_total counter
periscope_cpu_seconds_total{${A}} 10
periscope_cpu_seconds_total{${B}} 5
periscope_cpu_seconds_total{${X}} 1
periscope_cpu_seconds_total{${SSH}} 100
# TYPE periscope_context_switches_total counter
periscope_context_switches_total{${A},kind="voluntary"} 1000
periscope_context_switches_total{${A},kind="involuntary"} 10
# TYPE periscope_oom_kills_total counter
periscope_oom_kills_total{${B}} 0
# TYPE periscope_tcp_connections_total counter
periscope_tcp_connections_total{${A},${PEER},direction="outbound",result="success"} 50
periscope_tcp_connections_total{${A},${PEER},direction="outbound",result="refused"} 2
# TYPE periscope_tcp_bytes_sent_total counter
periscope_tcp_bytes_sent_total{${A},${PEER}} 1000000
# TYPE periscope_runqueue_latency_seconds histogram
periscope_runqueue_latency_seconds_bucket{${A},le="0.001"} 10
periscope_runqueue_latency_seconds_bucket{${A},le="0.002"} 20
periscope_runqueue_latency_seconds_bucket{${A},le="+Inf"} 20
periscope_runqueue_latency_seconds_sum{${A}} 0.02
periscope_runqueue_latency_seconds_count{${A}} 20
# TYPE periscope_memory_bytes gauge
periscope_memory_bytes{${A}} 123456789
`;

/**
 * /metrics one interval later. Increases: cpu A 1.5, B 4 (its counter went from 5 to 4: a restart, so
 * 4), X 2, ssh 0.25; switches 600 + 20; an OOM in B; connections 10 + 0 + 3 (a new inbound series
 * counts from 0); bytes 2048; run-queue buckets of A: 4 ≤ 1ms, 10 ≤ 2ms, 11 in all; execs of X 7 (new).
 */
const SECOND = `# TYPE periscope_cpu_seconds_total counter
periscope_cpu_seconds_total{${A}} 11.5
periscope_cpu_seconds_total{${B}} 4
periscope_cpu_seconds_total{${X}} 3
periscope_cpu_seconds_total{${SSH}} 100.25
# TYPE periscope_context_switches_total counter
periscope_context_switches_total{${A},kind="voluntary"} 1600
periscope_context_switches_total{${A},kind="involuntary"} 30
# TYPE periscope_oom_kills_total counter
periscope_oom_kills_total{${B}} 1
# TYPE periscope_process_execs_total counter
periscope_process_execs_total{${X}} 7
# TYPE periscope_tcp_connections_total counter
periscope_tcp_connections_total{${A},${PEER},direction="outbound",result="success"} 60
periscope_tcp_connections_total{${A},${PEER},direction="outbound",result="refused"} 2
periscope_tcp_connections_total{${A},${PEER},direction="inbound",result="success"} 3
# TYPE periscope_tcp_bytes_sent_total counter
periscope_tcp_bytes_sent_total{${A},${PEER}} 1002048
# TYPE periscope_runqueue_latency_seconds histogram
periscope_runqueue_latency_seconds_bucket{${A},le="0.001"} 14
periscope_runqueue_latency_seconds_bucket{${A},le="0.002"} 30
periscope_runqueue_latency_seconds_bucket{${A},le="+Inf"} 31
periscope_runqueue_latency_seconds_sum{${A}} 0.05
periscope_runqueue_latency_seconds_count{${A}} 31
# TYPE periscope_memory_bytes gauge
periscope_memory_bytes{${A}} 1
`;

/** The cart workload's numbers over the interval, by hand (see SECOND). */
function assertCart(e: WorkloadsResponse['workloads'][number], seconds: number): void {
  assert.equal(e.namespace, 'shop');
  assert.equal(e.workload_kind, 'Deployment');
  assert.equal(e.workload, 'cart');
  assert.equal(e.pod, '', 'two pods');
  assert.equal(e.container, 'app');
  assert.equal(e.cgroup, '/kubepods/poda/c1');
  assert.deepEqual(e.nodes, ['n1']);
  assert.equal(e.cpu_seconds, 5.5);
  assert.equal(e.cpu_cores, 5.5 / seconds);
  assert.equal(e.context_switches, 620);
  assert.equal(e.oom_kills, 1);
  assert.equal(e.execs, 0);
  assert.equal(e.tcp_connections, 13);
  assert.equal(e.tcp_bytes_sent, 2048);
  assert.equal(e.tcp_bytes_received, 0);
  // p50: rank 5.5, in (1ms, 2ms] holding 6 from 4 → 1ms + 1ms * 1.5/6; p99: rank 10.89 is past 2ms → 2ms
  assert.ok(Math.abs(e.runqueue_latency_p50_seconds! - 0.00125) < 1e-15, String(e.runqueue_latency_p50_seconds));
  assert.equal(e.runqueue_latency_p99_seconds, 0.002);
}

test('increases between two reads: restarts, new series, filters; the same entries as the hub computes', () => {
  const prev = scrape(parseExposition(FIRST), 1_000_000);
  const cur = scrape(parseExposition(SECOND), 1_004_000);
  const rows = increaseRows(prev, cur);
  const cpu = rows.filter((r) => r.metric === 'periscope_cpu_seconds_total').map((r) => [r.group.pod, r.delta]);
  assert.deepEqual(cpu, [['cart-a', 1.5], ['cart-b', 4], ['x', 2], ['', 0.25]]);
  const switches = rows.filter((r) => r.metric === 'periscope_context_switches_total');
  assert.deepEqual(switches.map((r) => [r.delta, r.series]), [[620, 2]], 'kinds summed into one row');
  assert.ok(!rows.some((r) => r.metric === 'periscope_memory_bytes' || r.metric.endsWith('_sum')));
  assert.equal(rows.find((r) => r.metric === 'periscope_cpu_seconds_total')!.group.le, '');
  assert.deepEqual(rows.filter((r) => r.metric === 'periscope_runqueue_latency_seconds_bucket').map((r) => [r.group.le, r.delta]), [['0.001', 4], ['0.002', 10], ['+Inf', 11]]);

  const snap = agentSnapshot(prev, cur, { group: 'workload', sort: 'cpu_seconds', namespace: undefined, node: undefined }, 10);
  assert.equal(snap.from, new Date(1_000_000).toISOString());
  assert.equal(snap.to, new Date(1_004_000).toISOString());
  assert.deepEqual(snap.workloads.map((e) => e.workload || e.pod || e.cgroup), ['cart', 'x', '/system.slice/a\\b"c.service']);
  assertCart(snap.workloads[0]!, 4);
  assert.equal(snap.workloads[1]!.execs, 7);
  const shop = agentSnapshot(prev, cur, { group: 'pod', sort: 'name', namespace: 'shop', node: 'n1' }, 10);
  assert.deepEqual(shop.workloads.map((e) => e.pod), ['cart-a', 'cart-b']);
  assert.deepEqual(agentSnapshot(prev, cur, { group: 'pod', sort: 'name', namespace: undefined, node: 'n2' }, 10).workloads, []);
  assert.throws(() => scrape(parseExposition(`periscope_oom_kills_total{${B}} 1\nperiscope_oom_kills_total{${B}} 2`), 0), /appears twice/);
});

test('--sort names, rates, the table and the check of a hub answer', () => {
  assert.equal(sortKey('cpu'), 'cpu_seconds');
  assert.equal(sortKey('RQ'), 'runqueue_latency_p99_seconds');
  assert.equal(sortKey('latency'), 'runqueue_latency_p99_seconds');
  assert.equal(sortKey('conns'), 'tcp_connections');
  assert.equal(sortKey('tcp_bytes_received'), 'tcp_bytes_received');
  assert.equal(sortKey('constructor'), undefined);
  assert.equal(sortKey('memory'), undefined);
  assert.deepEqual([0, 0.25, 9.94, 12.4, 999, 1234, 56_789, 1.2e6].map(rate), ['0', '0.3', '9.9', '12', '999', '1.2k', '57k', '1.2M']);

  const prev = scrape(parseExposition(FIRST), Date.UTC(2026, 0, 2, 3, 4, 5));
  const cur = scrape(parseExposition(SECOND), Date.UTC(2026, 0, 2, 3, 4, 7));
  const snap = agentSnapshot(prev, cur, { group: 'workload', sort: 'cpu_seconds', namespace: undefined, node: undefined }, 10);
  const [summary, blank, header, ...rows] = renderTable(snap, 'agent http://127.0.0.1:9464').trimEnd().split('\n');
  assert.equal(summary, 'agent http://127.0.0.1:9464  03:04:05–03:04:07 UTC (2.0 s)  by workload, sorted by cpu_seconds  3 rows');
  assert.equal(blank, '');
  assert.match(header!, /^NAMESPACE +WORKLOAD +NODE +CPU +RQ P99 +OOM +CTXSW\/s +EXECS\/s +CONNS\/s +SENT\/s +RECV\/s$/);
  const cells = rows.map((r) => r.trim().split(/ {2,}/));
  assert.deepEqual(cells[0], ['shop', 'deployment/cart', 'n1', '2.75', '2.00ms', '1', '310', '0', '6.5', '1.0Ki', '0']);
  assert.deepEqual(cells[1], ['other', 'x', 'n1', '1.00', '-', '0', '0', '3.5', '0', '0', '0']);
  assert.deepEqual(cells[2], ['-', '/system.slice/a\\b"c.service', 'n1', '0.13', '-', '0', '0', '0', '0', '0', '0']);
  for (const r of rows) assert.equal(r.length, header!.length, 'columns line up');

  assert.deepEqual(checkWorkloadsResponse(snap), snap);
  const bad: [unknown, RegExp][] = [
    [[], /not a JSON object/],
    [{ ...snap, from: 5 }, /"from" is not a string/],
    [{ ...snap, group: 'cluster' }, /"group"/],
    [{ ...snap, sort: 'memory' }, /"sort"/],
    [{ ...snap, workloads: {} }, /"workloads" is not an array/],
    [{ ...snap, workloads: [null] }, /workloads\[0\] is not an object/],
    [{ ...snap, workloads: [{ ...snap.workloads[0], cpu_cores: '1' }] }, /workloads\[0\]\.cpu_cores is not a number/],
    [{ ...snap, workloads: [{ ...snap.workloads[0], runqueue_latency_p99_seconds: 'slow' }] }, /p99_seconds is neither a number nor null/],
    [{ ...snap, workloads: [{ ...snap.workloads[0], nodes: 'n1' }] }, /nodes is not a list/],
    [{ ...snap, workloads: [{ ...snap.workloads[0], pod: undefined }] }, /\.pod is not a string/],
  ];
  for (const [body, message] of bad) assert.throws(() => checkWorkloadsResponse(body), message);
});

// ----------------------------------------------------------------------------------------------
// The command, against stub servers

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `periscope ARGS` with an environment of its own (no $PERISCOPE_* from outside). */
function periscope(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PERISCOPE_')));
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...clean, ...env } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
}

const top = (args: string[], env: Record<string, string> = {}): Promise<Ran> => periscope(['top', ...args], env);

/** The command failed with one line saying what is wrong and one with the fix; returns both. */
function oneError(r: Ran): { error: string; fix: string } {
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 2, `two lines, not:\n${r.stderr}`);
  assert.match(lines[0]!, /^periscope: /);
  assert.match(lines[1]!, /^ {2}fix: /);
  return { error: lines[0]!.replace(/^periscope: /, ''), fix: lines[1]!.replace(/^ {2}fix: /, '') };
}

interface Stub {
  url: string;
  requests: { url: string; authorization: string | undefined }[];
  close(): Promise<void>;
}

/** A local server answering every request with `handle`, recording what it was asked. */
async function stub(handle: (req: IncomingMessage, res: ServerResponse, n: number) => void): Promise<Stub> {
  const requests: Stub['requests'] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ url: req.url ?? '', authorization: req.headers.authorization });
    handle(req, res, requests.length);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An agent whose /metrics is FIRST on the first read and SECOND after. */
const twoReads = (): Promise<Stub> =>
  stub((req, res, n) => {
    if (req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(n === 1 ? FIRST : SECOND);
  });

test('--agent --output json: two reads of /metrics an interval apart, one snapshot with the numbers computed by hand', async (t) => {
  const agent = await twoReads();
  t.after(() => agent.close());
  const r = await top(['--agent', agent.url, '-o', 'json', '--interval', '0.3']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
  const snap = JSON.parse(r.stdout) as WorkloadsResponse;
  assert.deepEqual(checkWorkloadsResponse(snap), snap);
  assert.equal(agent.requests.length, 2);
  assert.equal(snap.group, 'workload');
  assert.equal(snap.sort, 'cpu_seconds');
  const seconds = (Date.parse(snap.to) - Date.parse(snap.from)) / 1000;
  assert.ok(seconds >= 0.25 && seconds < 5, `${seconds} s between the reads`);
  assert.deepEqual(snap.workloads.map((e) => e.workload || e.pod || e.cgroup), ['cart', 'x', '/system.slice/a\\b"c.service']);
  assertCart(snap.workloads[0]!, seconds);
  assert.equal(snap.workloads[1]!.cpu_seconds, 2);
  assert.equal(snap.workloads[2]!.cpu_seconds, 0.25);

  // by pod, in one namespace, by run-queue latency, from $PERISCOPE_AGENT
  const again = await twoReads();
  t.after(() => again.close());
  const pods = await top(['--group', 'pod', '--namespace', 'shop', '--sort', 'rq', '-o', 'json', '--interval', '0.1', '--limit', '1'], { PERISCOPE_AGENT: again.url });
  assert.equal(pods.code, 0, pods.stderr);
  const p = JSON.parse(pods.stdout) as WorkloadsResponse;
  assert.equal(p.group, 'pod');
  assert.equal(p.sort, 'runqueue_latency_p99_seconds');
  assert.deepEqual(p.workloads.map((e) => [e.pod, e.cpu_seconds, e.runqueue_latency_p99_seconds]), [['cart-a', 1.5, 0.002]]);
});

test('--agent without a terminal: one table per refresh, a blank line between; --count ends it; a closed pipe ends it with 0', async (t) => {
  const agent = await twoReads();
  t.after(() => agent.close());
  const r = await top(['--agent', agent.url, '--interval', '0.1', '--count', '2']);
  assert.equal(r.code, 0, r.stderr);
  const tables = r.stdout.split('\n\n');
  assert.equal(tables.length, 4, 'two tables, each a summary line, a blank line and the columns');
  assert.match(tables[0]!, new RegExp(`^agent ${agent.url}  \\d\\d:\\d\\d:\\d\\d–\\d\\d:\\d\\d:\\d\\d UTC \\(0\\.\\d s\\)  by workload, sorted by cpu_seconds  3 rows$`));
  assert.match(tables[1]!, /^NAMESPACE +WORKLOAD +NODE +CPU/);
  assert.match(tables[1]!, /\nshop +deployment\/cart +n1 /);
  // the second refresh compares two reads of SECOND: nothing grew
  assert.match(tables[3]!, /\nshop +deployment\/cart +n1 +0\.00 +- +0 +0 +0 +0 +0 +0\n$/);
  assert.equal(agent.requests.length, 3);
  assert.doesNotMatch(r.stdout, /\x1b/, 'no escape sequences without a terminal');

  const piped = await run('bash', ['-c', `${BIN} top --agent ${agent.url} --interval 0.1 2>&1 | head -1; echo "status \${PIPESTATUS[0]}"`]);
  const lines = piped.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^agent /);
  assert.equal(lines[1], 'status 0', 'no EPIPE error, exit 0');
});

const HUB_ANSWER: WorkloadsResponse = {
  from: '2026-01-02T03:04:05.000Z',
  to: '2026-01-02T03:04:07.000Z',
  group: 'pod',
  sort: 'runqueue_latency_p99_seconds',
  workloads: [
    {
      node: 'n1',
      nodes: ['n1', 'n2'],
      namespace: 'shop',
      workload_kind: 'Deployment',
      workload: 'cart',
      pod: 'cart-a',
      container: '',
      cgroup: '/kubepods/poda',
      cpu_seconds: 1,
      cpu_cores: 0.5,
      runqueue_latency_p50_seconds: 0.0001,
      runqueue_latency_p99_seconds: 0.0125,
      context_switches: 40,
      execs: 2,
      exits: 1,
      oom_kills: 0,
      tcp_connections: 6,
      tcp_bytes_sent: 3 * 1024 * 1024,
      tcp_bytes_received: 2048,
      tcp_retransmits: 1,
    },
  ],
};

const hubServing = (status: number, body: string, type = 'application/json'): Promise<Stub> => stub((_req, res) => res.writeHead(status, { 'content-type': type }).end(body));

test('--hub: asks /api/v1/workloads for the last interval with the flags as the query; the answer printed as it came, or as a table', async (t) => {
  const hub = await hubServing(200, JSON.stringify(HUB_ANSWER));
  t.after(() => hub.close());
  const dir = mkdtempSync(join(tmpdir(), 'periscope-top-'));
  writeFileSync(join(dir, 'token'), 'hub-token\n');
  const r = await top(['--hub', hub.url, '--group', 'pod', '--sort', 'latency', '--namespace', 'shop', '--node', 'n1', '--interval', '5', '-o', 'json', '--token-file', join(dir, 'token')]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), HUB_ANSWER);
  assert.equal(hub.requests.length, 1);
  const asked = new URL(hub.requests[0]!.url, hub.url);
  assert.equal(asked.pathname, '/api/v1/workloads');
  assert.deepEqual(Object.fromEntries(asked.searchParams), { from: '-5s', group: 'pod', sort: 'runqueue_latency_p99_seconds', namespace: 'shop', node: 'n1', limit: '20' });
  assert.equal(hub.requests[0]!.authorization, 'Bearer hub-token');

  // $PERISCOPE_HUB, the defaults, a table per refresh
  const table = await top(['--count', '2', '--interval', '0.1', '--limit', '7'], { PERISCOPE_HUB: hub.url });
  assert.equal(table.code, 0, table.stderr);
  const defaults = Object.fromEntries(new URL(hub.requests[1]!.url, hub.url).searchParams);
  assert.deepEqual(defaults, { from: '-1s', group: 'workload', sort: 'cpu_seconds', limit: '7' });
  const tables = table.stdout.split('\n\n');
  assert.equal(tables.length, 4);
  assert.equal(tables[0], `hub ${hub.url}  03:04:05–03:04:07 UTC (2.0 s)  by pod, sorted by runqueue_latency_p99_seconds  1 row`);
  const [header, row] = tables[1]!.split('\n');
  assert.match(header!, /^NAMESPACE +POD +NODE +CPU +RQ P99/);
  assert.deepEqual(row!.trim().split(/ {2,}/), ['shop', 'cart-a', 'n1+1', '0.50', '12.5ms', '0', '20', '1.0', '3.0', '1.5Mi', '1.0Ki']);
});

test('failures are one line and a fix: 401, unreachable, not JSON, not a workloads answer, not the text format, bad flags', async (t) => {
  const unauthorized = await hubServing(401, '{"error":"this hub needs a bearer token"}');
  t.after(() => unauthorized.close());
  const none = oneError(await top(['--hub', unauthorized.url, '-o', 'json']));
  assert.equal(none.error, `the hub at ${unauthorized.url} refused the request (401 Unauthorized): this hub needs a bearer token`);
  assert.equal(none.fix, "pass --token-file FILE with the hub's token (or set $PERISCOPE_TOKEN_FILE)");
  const agent401 = oneError(await top(['--agent', unauthorized.url, '-o', 'json']));
  assert.match(agent401.error, /^the agent at .* refused the request \(401 Unauthorized\)/);

  const port = await freePort();
  const gone = oneError(await top(['--agent', `http://127.0.0.1:${port}`]));
  assert.equal(gone.error, `cannot reach the agent at http://127.0.0.1:${port}: connection refused`);
  assert.equal(gone.fix, 'start it (periscope agent), or point --agent (or $PERISCOPE_AGENT) at where it listens');
  const hubGone = oneError(await top(['--hub', `127.0.0.1:${port}`]));
  assert.equal(hubGone.error, `cannot reach the hub at http://127.0.0.1:${port}: connection refused`);
  assert.equal(hubGone.fix, 'start the hub, or point --hub (or $PERISCOPE_HUB) at where it listens');

  const html = await hubServing(200, '<html>hello</html>', 'text/html');
  t.after(() => html.close());
  const notJson = oneError(await top(['--hub', html.url]));
  assert.equal(notJson.error, `the hub at ${html.url} answered with something that is not JSON: <html>hello</html>`);
  assert.equal(notJson.fix, 'point --hub (or $PERISCOPE_HUB) at a periscope hub (the URL its banner prints)');
  const notMetrics = oneError(await top(['--agent', html.url]));
  assert.equal(notMetrics.error, `the agent at ${html.url} answered with text/html on /metrics: not the Prometheus text format`);
  const plain = await hubServing(200, 'periscope_cpu_seconds_total{cgroup="/x} 1\n', 'text/plain');
  t.after(() => plain.close());
  const broken = oneError(await top(['--agent', plain.url]));
  assert.equal(broken.error, `the agent at ${plain.url} answered with /metrics that is not the Prometheus text format: line 1: the value of label cgroup is not closed`);

  const shape = await hubServing(200, JSON.stringify({ ...HUB_ANSWER, workloads: [{ ...HUB_ANSWER.workloads[0], cpu_cores: null }] }));
  t.after(() => shape.close());
  assert.equal(oneError(await top(['--hub', shape.url])).error, `the hub at ${shape.url} answered with JSON that is not a workloads answer: workloads[0].cpu_cores is not a number`);
  const missing = await hubServing(404, '{"error":"no such route"}');
  t.after(() => missing.close());
  assert.equal(oneError(await top(['--hub', missing.url])).error, `the hub at ${missing.url} has no workloads API (404): no such route`);

  const cases: [string[], string][] = [
    [['--sort', 'memory'], '--sort wants one of cpu, rq, ctx, execs, exits, oom, conns, sent, recv, retrans, name (or cpu_seconds, runqueue_latency_p99_seconds, context_switches, execs, exits, oom_kills, tcp_connections, tcp_bytes_sent, tcp_bytes_received, tcp_retransmits, name), not "memory"'],
    [['--group', 'node'], '--group wants workload, pod, container, not "node"'],
    [['--interval', '0'], '--interval must be between 0.1 and 3600 seconds, not 0'],
    [['--limit', 'all'], '--limit wants a whole number, not "all"'],
    [['-o', 'yaml'], '--output wants table or json, not "yaml"'],
    [['--count', '0'], '--count must be between 1 and 9007199254740991, not 0'],
    [['--agent', 'http://a:1', '--hub', 'http://b:2'], '--agent and --hub both say where to connect: give one'],
    [['--hub', 'ftp://hub'], '--hub wants the hub\'s URL, such as http://periscope-hub:9465 or https://hub.example:9465, not "ftp://hub"'],
    [['extra'], 'unexpected argument "extra": this command takes only --flags'],
  ];
  for (const [args, message] of cases) assert.equal(oneError(await top(args)).error, message, args.join(' '));
  const help = await top(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^usage: periscope top \[flags\]/);
  for (const flag of ['--hub', '--agent', '--token-file', '--ca-file', '--namespace', '--node', '--group', '--sort', '--interval', '--limit', '--output', '--count']) {
    assert.match(help.stdout, new RegExp(`^ {2}(-o, )?${flag}\\b`, 'm'), flag);
  }
  assert.match((await periscope(['--help'])).stdout, /^ {2}top {2}/m);
});
