import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { request } from 'node:http';
import { mergeEdges, type Hub } from './hub.js';
import { startTestHub } from '../../test/hub.js';
import { WIRE_VERSION, type Batch } from '../wire/ingest.js';
import { l7ClientBatch, l7ServerBatch } from '../../test/l7-batch.js';
import { WORKLOAD_SORT_KEYS, type NetworkMapResponse, type RequestsResponse, type EdgeEntry, type HubHealth, type NodesResponse, type OverviewResponse, type SeriesResponse, type WorkloadEntry, type WorkloadsResponse } from '../wire/hub.js';
import { type AggregateRow } from './store.js';
import { toWire, type ProfileWire } from '../wire/profiles.js';
import { parseFolded, type ProfileJson, type ProfileType } from '../profiles/model.js';
import { MAX_BATCH_PROFILE_STACKS } from './profiles.js';

const TOKEN = 'a-test-token-0123456789';
const WL = ['cgroup', 'namespace', 'pod', 'container', 'workload_kind', 'workload', 'node'];
const T0 = Date.parse('2026-11-28T10:00:00Z');

/** A batch as an agent builds it: CPU of two cgroups (value and delta), a run-queue histogram, a gauge and an exec. */
function batch(seq: number, opts: { instance?: string; node?: string; cpu?: [number, number]; at?: number } = {}): Batch {
  const node = opts.node ?? 'node-a';
  const [value, delta] = opts.cpu ?? [seq, 1];
  const time = new Date(opts.at ?? T0 + seq * 10_000).toISOString();
  return {
    version: WIRE_VERSION,
    agent: { node, instance: opts.instance ?? 'instance-0001', version: '0.1.0', started: new Date(T0).toISOString(), cgroup_subtree: '/' },
    seq,
    time,
    status: { collectors: [{ name: 'cpu', alternative: 'tp_btf', up: true }], capabilities: { btf: true, kprobe: false }, kernel: '6.18.0' },
    families: [
      {
        name: 'periscope_cpu_seconds_total',
        type: 'counter',
        help: 'CPU',
        labels: WL,
        series: [
          { labels: ['/shop/cart', 'shop', 'cart-1', 'app', 'Deployment', 'cart', node], value, delta },
          { labels: ['/system.slice/cron.service', '', '', '', '', '', node], value: 10 * value, delta: 10 * delta },
        ],
      },
      {
        name: 'periscope_runqueue_latency_seconds',
        type: 'histogram',
        help: 'RQ',
        labels: WL,
        buckets: [0.001, 0.01],
        series: [
          {
            labels: ['/shop/cart', 'shop', 'cart-1', 'app', 'Deployment', 'cart', node],
            hist: { cumulative: [50 * seq, 99 * seq], count: 100 * seq, sum: seq },
            hist_delta: { cumulative: [50, 99], count: 100, sum: 1 },
          },
        ],
      },
      { name: 'periscope_tcp_active_connections', type: 'gauge', help: 'open', labels: WL, series: [{ labels: ['/shop/cart', 'shop', 'cart-1', 'app', 'Deployment', 'cart', node], value: 7 }] },
    ],
    events: [
      {
        seq,
        type: 'exec',
        time,
        node,
        cgroup: '/shop/cart',
        cgroup_id: 42,
        namespace: 'shop',
        pod: 'cart-1',
        container: 'app',
        workload_kind: 'Deployment',
        workload: 'cart',
        pid: 100 + seq,
        comm: 'sh',
      },
    ],
    dropped: { batches: 0, events: 0, samples: 0 },
  };
}

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  raw: Buffer;
  json: () => unknown;
}

function send(url: string, opts: { method?: string; body?: Buffer | string; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        const body = raw.toString();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, raw, json: () => JSON.parse(body) as unknown });
      });
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const auth = { authorization: `Bearer ${TOKEN}` };
const ingest = (base: string, b: unknown, headers: Record<string, string> = {}): Promise<Reply> =>
  send(`${base}/api/v1/ingest`, { method: 'POST', body: gzipSync(JSON.stringify(b)), headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', ...auth, ...headers } });

const startHub = (t: { after: (fn: () => unknown) => void }, now = T0 + 60_000): Promise<{ hub: Hub; base: string }> =>
  startTestHub(t, { token: TOKEN, maxBatchBytes: 1 << 20, now: () => now });

const get = async <T>(base: string, path: string): Promise<T> => {
  const r = await send(`${base}${path}`, { headers: auth });
  assert.equal(r.status, 200, `${path}: ${r.body}`);
  return r.json() as T;
};

test('a batch is applied once: a replay and a duplicate are acknowledged without counting twice', async (t) => {
  const { base } = await startHub(t);
  assert.deepEqual((await ingest(base, batch(1))).json(), { applied: true, seq: 1 });
  assert.deepEqual((await ingest(base, batch(2, { cpu: [3, 2] }))).json(), { applied: true, seq: 2 });
  assert.deepEqual((await ingest(base, batch(2, { cpu: [3, 2] }))).json(), { applied: false, seq: 2 }, 'a replayed batch');
  assert.deepEqual((await ingest(base, batch(1))).json(), { applied: false, seq: 1 }, 'an older one');
  const w = await get<WorkloadsResponse>(base, `/api/v1/workloads?from=${new Date(T0).toISOString()}&to=-0s&group=container`);
  const cart = w.workloads.find((e) => e.cgroup === '/shop/cart');
  assert.ok(cart, JSON.stringify(w));
  assert.equal(cart.cpu_seconds, 3, 'deltas 1 + 2, the replay not counted');
  assert.equal(cart.node, 'node-a');
  assert.equal(cart.workload, 'cart');
  assert.equal(w.workloads[0]!.cgroup, '/system.slice/cron.service', 'sorted by CPU, most first');
  assert.ok(cart.runqueue_latency_p99_seconds !== null && cart.runqueue_latency_p99_seconds <= 0.01 + 1e-12 && cart.runqueue_latency_p99_seconds > 0.001, String(cart.runqueue_latency_p99_seconds));
  const health = await get<HubHealth>(base, '/api/v1/health');
  assert.equal(health.batches_applied, 2);
  assert.equal(health.batches_duplicate, 2);
  assert.equal(health.status, 'ok');
  const metrics = await get<unknown>(base, '/api/v1/nodes');
  const nodes = (metrics as NodesResponse).nodes;
  assert.equal(nodes.length, 1);
  assert.equal(nodes[0]!.node, 'node-a');
  assert.equal(nodes[0]!.connected, true);
  assert.deepEqual(nodes[0]!.capabilities, { btf: true, kprobe: false });
  assert.equal(nodes[0]!.collectors[0]!.alternative, 'tp_btf');
});

test('a new instance (agent restart) starts over from its first delta: no negative rate, no double count', async (t) => {
  const { base } = await startHub(t);
  await ingest(base, batch(1, { cpu: [5, 5] }));
  await ingest(base, batch(2, { cpu: [8, 3] }));
  // restarted: cumulative values start again from zero; seq 1 of a new instance is not a duplicate
  assert.deepEqual((await ingest(base, batch(1, { instance: 'instance-0002', cpu: [2, 2], at: T0 + 30_000 }))).json(), { applied: true, seq: 1 });
  const w = await get<WorkloadsResponse>(base, `/api/v1/workloads?from=${new Date(T0).toISOString()}&group=container`);
  assert.equal(w.workloads.find((e) => e.cgroup === '/shop/cart')?.cpu_seconds, 10);
  const s = await get<SeriesResponse>(base, `/api/v1/series?metric=periscope_cpu_seconds_total&cgroup=/shop/cart&from=${new Date(T0).toISOString()}&step=10s`);
  assert.equal(s.unit, 'per_second');
  const points = s.lines[0]!.points;
  assert.ok(points.every(([, v]) => v >= 0), 'no negative rate');
  assert.equal(points.reduce((a, [, v]) => a + v * 10, 0), 10);
});

test('a wrong or missing token gets 401 and stores nothing', async (t) => {
  const { base } = await startHub(t);
  const wrong = await ingest(base, batch(1), { authorization: 'Bearer not-the-token-at-all' });
  assert.equal(wrong.status, 401);
  const none = await send(`${base}/api/v1/ingest`, { method: 'POST', body: gzipSync(JSON.stringify(batch(1))), headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } });
  assert.equal(none.status, 401);
  assert.equal((await send(`${base}/api/v1/workloads`)).status, 401, 'the API needs it too');
  assert.equal((await send(`${base}/healthz`)).status, 200);
  const health = await get<HubHealth>(base, '/api/v1/health');
  assert.equal(health.batches_applied, 0);
  assert.equal(health.samples_ingested, 0);
  const nodes = await get<NodesResponse>(base, '/api/v1/nodes');
  assert.equal(nodes.nodes.length, 0, 'nothing stored');
});

test('malformed, oversized and wrong-version batches get a 4xx that says what is wrong, and the hub keeps serving', async (t) => {
  const { base } = await startHub(t);
  const post = (body: Buffer | string, headers: Record<string, string>): Promise<Reply> => send(`${base}/api/v1/ingest`, { method: 'POST', body, headers: { ...auth, ...headers } });
  const json = { 'content-type': 'application/json' };
  const gz = { ...json, 'content-encoding': 'gzip' };
  const cases: [string, Promise<Reply>, number, RegExp][] = [
    ['not gzip', post('{"version":1}', gz), 400, /not gzip/],
    ['not JSON', post(gzipSync('{"version":'), gz), 400, /not JSON/],
    ['an array', post(gzipSync('[]'), gz), 400, /JSON object/],
    ['wrong version', post(gzipSync(JSON.stringify({ ...batch(1), version: 2 })), gz), 400, /wire version 2 is not supported: this hub speaks version 1/],
    ['no version', post(JSON.stringify({ seq: 1 }), json), 400, /wire version null/],
    ['a bad field', post(gzipSync(JSON.stringify({ ...batch(1), seq: -1 })), gz), 400, /malformed batch: seq/],
    ['labels that do not match', post(gzipSync(JSON.stringify({ ...batch(1), families: [{ ...batch(1).families[0]!, labels: ['cgroup'] }] })), gz), 400, /series\.0\.labels/],
    ['a negative delta', post(gzipSync(JSON.stringify({ ...batch(1), families: [{ ...batch(1).families[0]!, series: [{ labels: WL.map(() => ''), value: 1, delta: -1 }] }] })), gz), 400, /delta/],
    ['too large', post(Buffer.alloc(2 << 20), gz), 413, /more than/],
    ['a zip bomb', post(gzipSync(Buffer.alloc(80 << 20, 32)), gz), 413, /inflates to more than/],
    ['wrong type', post('x', { 'content-type': 'text/plain' }), 415, /application\/json/],
    ['wrong encoding', post('x', { ...json, 'content-encoding': 'br' }), 415, /not supported/],
  ];
  for (const [what, reply, status, message] of cases) {
    const r = await reply;
    assert.equal(r.status, status, `${what}: ${r.body}`);
    assert.match((r.json() as { error: string }).error, message, what);
  }
  assert.equal((await send(`${base}/api/v1/ingest`, { headers: auth })).status, 405, 'GET on ingest');
  // still serving, nothing stored
  const health = await get<HubHealth>(base, '/api/v1/health');
  assert.equal(health.batches_applied, 0);
  assert.ok(health.batches_rejected >= cases.length - 2);
  assert.deepEqual((await ingest(base, batch(1))).json(), { applied: true, seq: 1 });
  const metrics = await send(`${base}/metrics`, { headers: auth });
  assert.match(metrics.body, /^periscope_hub_batches_rejected_total\{reason="too_large"\} 2$/m);
  assert.match(metrics.body, /^periscope_hub_batches_total\{result="applied"\} 1$/m);
});

test('queries with bad parameters get a 400 that names the parameter', async (t) => {
  const { base } = await startHub(t);
  const cases: [string, RegExp][] = [
    ['/api/v1/workloads?from=yesterday', /from="yesterday" is not a time/],
    ['/api/v1/workloads?from=-1h&to=-2h', /is not before to/],
    ['/api/v1/workloads?sort=colour', /sort="colour" is not one of/],
    ['/api/v1/workloads?group=planet', /group="planet"/],
    ['/api/v1/workloads?limit=-3', /limit must be a non-negative integer/],
    ['/api/v1/series', /metric is missing/],
    ['/api/v1/series?metric=nope_total', /unknown metric "nope_total"/],
    ['/api/v1/series?metric=periscope_cpu_seconds_total&from=-30d&step=1s', /more than 11,000/],
    ['/api/v1/series?metric=periscope_cpu_seconds_total&by=colour', /by="colour" is not a column/],
    ['/api/v1/events?type=teleport', /unknown event type "teleport"/],
    ['/api/v1/events?cgroup=relative', /is not a cgroup path/],
    ['/api/v1/workloads?from=-9999d', /more than the 400 a query may/],
    ["/api/v1/workloads?namespace=x'%20OR%201=1--", /^$/],
  ];
  for (const [path, message] of cases) {
    const r = await send(`${base}${path}`, { headers: auth });
    if (message.source === '^$') {
      assert.equal(r.status, 200, `${path}: values are bound, never spliced into SQL`);
      assert.deepEqual((r.json() as WorkloadsResponse).workloads, []);
      continue;
    }
    assert.equal(r.status, 400, `${path}: ${r.body}`);
    assert.match((r.json() as { error: string }).error, message, path);
  }
  assert.equal((await send(`${base}/api/v1/nope`, { headers: auth })).status, 404);
});

test('events are stored and served with filters, and streamed live as they arrive', async (t) => {
  const { base } = await startHub(t);
  const events: string[] = [];
  const stream = request(`${base}/api/v1/events/stream?type=exec`, { headers: auth }, (res) => res.on('data', (d: Buffer) => events.push(d.toString())));
  stream.end();
  await new Promise((r) => setTimeout(r, 200));
  await ingest(base, batch(1));
  await ingest(base, batch(2, { node: 'node-b', instance: 'instance-b001' }));
  const deadline = Date.now() + 5_000;
  while (!events.join('').includes('node-b') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  stream.destroy();
  assert.match(events.join(''), /event: exec\ndata: .*"node":"node-a"/);
  const stored = await get<{ events: { node: string; pid: number }[] }>(base, `/api/v1/events?from=${new Date(T0).toISOString()}&type=exec&node=node-b`);
  assert.deepEqual(
    stored.events.map((e) => [e.node, e.pid]),
    [['node-b', 102]],
  );
  const ns = await get<{ namespaces: string[] }>(base, `/api/v1/namespaces?from=${new Date(T0).toISOString()}`);
  assert.deepEqual(ns.namespaces, ['shop']);
});

test('the service map joins what the client\'s node and the server\'s node saw into one edge', () => {
  const row = (metric: string, group: Record<string, string>, delta: number): AggregateRow => ({ metric, group, delta, avg: 0, last: 0, series: 1 });
  const client = { node: 'node-a', namespace: 'shop', workload: 'cart', pod: 'cart-1', cgroup: '/c', peer_kind: 'pod', peer_namespace: 'shop', peer_workload: 'db', peer: 'db-0', peer_port: '5432' };
  const server = { node: 'node-b', namespace: 'shop', workload: 'db', pod: 'db-0', cgroup: '/d', peer_kind: 'pod', peer_namespace: 'shop', peer_workload: 'cart', peer: 'cart-1', peer_port: '' };
  const edges: EdgeEntry[] = mergeEdges([
    row('periscope_tcp_connections_total', { ...client, direction: 'outbound', result: 'success' }, 10),
    row('periscope_tcp_connections_total', { ...client, direction: 'outbound', result: 'refused' }, 2),
    row('periscope_tcp_bytes_sent_total', client, 1000),
    row('periscope_tcp_bytes_received_total', client, 5000),
    row('periscope_tcp_connections_total', { ...server, direction: 'inbound', result: 'success' }, 10),
    row('periscope_tcp_bytes_received_total', server, 1000),
    row('periscope_tcp_bytes_sent_total', server, 5000),
    // a server-side view only: a client on a node without an agent
    row('periscope_tcp_bytes_received_total', { ...server, peer_kind: 'external', peer_namespace: '', peer_workload: '', peer: '203.0.113.9' }, 70),
  ]);
  assert.equal(edges.length, 2);
  const [joined, lone] = edges;
  assert.deepEqual(joined, {
    source: { kind: 'pod', namespace: 'shop', workload: 'cart', name: 'cart' },
    target: { kind: 'pod', namespace: 'shop', workload: 'db', name: 'db', port: '5432' },
    connections: 10,
    failed: 2,
    bytes_sent: 1000,
    bytes_received: 5000,
    retransmits: 0,
    observed_by: ['node-a', 'node-b'],
    requests: {},
  });
  assert.equal(lone!.source.name, '203.0.113.9');
  assert.equal(lone!.bytes_sent, 70, 'what the server received is what the client sent');
  assert.deepEqual(lone!.observed_by, ['node-b']);
});

test('the service map: a server\'s requests join the edge its client\'s connections named (the port from there); empty buckets alone make no edge', () => {
  const row = (metric: string, group: Record<string, string>, delta: number): AggregateRow => ({ metric, group, delta, avg: 0, last: 0, series: 1 });
  const client = { node: 'node-a', namespace: 'shop', workload: 'web', pod: 'web-1', cgroup: '/w', peer_kind: 'pod', peer_namespace: 'shop', peer_workload: 'api', peer: 'api-0', peer_port: '8080' };
  const server = { node: 'node-b', namespace: 'shop', workload: 'api', pod: 'api-0', cgroup: '/a', peer_kind: 'pod', peer_namespace: 'shop', peer_workload: 'web', peer: 'web-1', peer_port: '', side: 'server' };
  const stale = { ...server, peer_workload: 'gone', peer: 'gone-1' };
  const edges = mergeEdges(
    [row('periscope_tcp_connections_total', { ...client, direction: 'outbound', result: 'success' }, 3)],
    [
      // the client is not followed by the l7 collector: only the server counted
      row('periscope_http_requests_total', { ...server, status_class: '2xx' }, 7),
      row('periscope_http_requests_total', { ...server, status_class: '5xx' }, 1),
      row('periscope_http_request_duration_seconds_bucket', { ...server, le: '0.1' }, 8),
      row('periscope_http_request_duration_seconds_bucket', { ...server, le: '+Inf' }, 8),
      row('periscope_redis_command_duration_seconds_bucket', { ...stale, le: '0.1' }, 0),
    ],
    10,
  );
  assert.equal(edges.length, 1, JSON.stringify(edges));
  assert.deepEqual(edges[0]!.target, { kind: 'pod', namespace: 'shop', workload: 'api', name: 'api', port: '8080' });
  assert.equal(edges[0]!.connections, 3);
  assert.deepEqual(edges[0]!.requests, { http: { requests: 8, rate: 0.8, errors: 1, client_errors: 0, p50_seconds: 0.05, p99_seconds: 0.099, side: 'server' } });
  assert.deepEqual(edges[0]!.observed_by, ['node-a', 'node-b']);
});

test('group=workload sums a workload over its pods and nodes, and says where it runs', async (t) => {
  const { base } = await startHub(t);
  await ingest(base, batch(1, { cpu: [4, 4] }));
  await ingest(base, batch(1, { node: 'node-b', instance: 'instance-b001', cpu: [6, 6] }));
  const w = await get<WorkloadsResponse>(base, `/api/v1/workloads?from=${new Date(T0).toISOString()}`);
  const cart = w.workloads.filter((e) => e.workload === 'cart');
  assert.equal(cart.length, 1, JSON.stringify(w.workloads));
  assert.equal(cart[0]!.cpu_seconds, 10);
  assert.deepEqual(cart[0]!.nodes, ['node-a', 'node-b']);
  assert.equal(cart[0]!.cgroup, '/shop/cart');
  assert.equal(cart[0]!.pod, 'cart-1', 'the pod its series share');
  assert.equal(cart[0]!.runqueue_latency_p50_seconds !== null, true);
  // a cgroup outside Kubernetes is one entry per node
  const cron = w.workloads.filter((e) => e.cgroup === '/system.slice/cron.service');
  assert.deepEqual(cron.map((e) => [e.node, e.cpu_seconds]).sort(), [['node-a', 40], ['node-b', 60]]);
  const only = await get<WorkloadsResponse>(base, `/api/v1/workloads?from=${new Date(T0).toISOString()}&node=node-b`);
  assert.deepEqual(only.workloads.find((e) => e.workload === 'cart')?.nodes, ['node-b']);
  // a namespace filter reads the per-workload sums too, a node filter every series: the same numbers
  const shop = await get<WorkloadsResponse>(base, `/api/v1/workloads?from=${new Date(T0).toISOString()}&namespace=shop`);
  assert.deepEqual(shop.workloads.find((e) => e.workload === 'cart'), cart[0]);
  assert.equal(shop.workloads.filter((e) => e.namespace !== 'shop').length, 0);
  const both = await get<WorkloadsResponse>(base, `/api/v1/workloads?from=${new Date(T0).toISOString()}&node=node-a,node-b`);
  assert.deepEqual(both.workloads.find((e) => e.workload === 'cart'), cart[0]);
});

/** Counters of four workloads: three in two namespaces, and a cgroup outside Kubernetes. */
function overviewBatch(): Batch {
  const node = 'node-a';
  const who = {
    cart: ['/shop/cart', 'shop', 'cart-1', 'app', 'Deployment', 'cart', node],
    db: ['/shop/db', 'shop', 'db-0', 'db', 'StatefulSet', 'db', node],
    front: ['/web/front', 'web', 'front-1', 'app', 'Deployment', 'front', node],
    cron: ['/system.slice/cron.service', '', '', '', '', '', node],
  };
  const counter = (name: string, values: Partial<Record<keyof typeof who, number>>): Batch['families'][number] => ({
    name,
    type: 'counter',
    help: name,
    labels: WL,
    series: Object.entries(values).map(([w, v]) => ({ labels: who[w as keyof typeof who], value: v, delta: v })),
  });
  const time = new Date(T0 + 10_000).toISOString();
  return {
    ...batch(1),
    time,
    families: [
      counter('periscope_cpu_seconds_total', { cart: 5, db: 3, front: 1, cron: 10 }),
      counter('periscope_process_execs_total', { cart: 2, db: 0, front: 7 }),
      counter('periscope_process_exits_total', { front: 4 }),
      counter('periscope_oom_kills_total', { cart: 0, db: 1 }),
    ],
    events: [],
  };
}

test('overview: how many workloads, their namespaces, and the top of each sort key without zeros', async (t) => {
  const { base } = await startHub(t);
  assert.deepEqual((await ingest(base, overviewBatch())).json(), { applied: true, seq: 1 });
  const from = new Date(T0).toISOString();
  const o = await get<OverviewResponse>(base, `/api/v1/overview?from=${from}`);
  assert.equal(o.from, from);
  assert.equal(o.workloads, 4);
  assert.deepEqual(o.namespaces, ['shop', 'web']);
  assert.deepEqual(
    Object.keys(o.top).sort(),
    WORKLOAD_SORT_KEYS.filter((k) => k !== 'name').sort(),
  );
  const names = (key: keyof OverviewResponse['top']): string[] => o.top[key].map((e) => e.workload || e.cgroup);
  assert.deepEqual(names('cpu_seconds'), ['/system.slice/cron.service', 'cart', 'db', 'front'], 'most first');
  assert.deepEqual(names('execs'), ['front', 'cart'], 'db and cron executed nothing: left out');
  assert.deepEqual(names('exits'), ['front']);
  assert.equal(o.top.exits[0]!.exits, 4);
  assert.deepEqual(names('oom_kills'), ['db']);
  assert.deepEqual(o.top.runqueue_latency_p99_seconds, [], 'null everywhere: none');
  assert.deepEqual(o.top.tcp_bytes_sent, []);
  // the entries are those of /api/v1/workloads, but for where known workloads run, which the overview leaves out
  const w = await get<WorkloadsResponse>(base, `/api/v1/workloads?from=${from}`);
  const withoutWhere = (e: WorkloadEntry): WorkloadEntry => (e.workload ? { ...e, node: '', nodes: [], pod: '', container: '', cgroup: '' } : e);
  assert.deepEqual(o.top.cpu_seconds, w.workloads.map(withoutWhere));
  assert.ok(o.top.cpu_seconds.filter((e) => e.workload).every((e) => e.nodes.length === 0), 'known workloads without their nodes');
  assert.deepEqual(w.workloads.find((e) => e.workload === 'front')?.exits, 4);

  const two = await get<OverviewResponse>(base, `/api/v1/overview?from=${from}&limit=2`);
  assert.deepEqual(two.top.cpu_seconds.map((e) => e.workload || e.cgroup), ['/system.slice/cron.service', 'cart']);
  assert.equal(two.workloads, 4, 'the count is not cut by limit');
  const shop = await get<OverviewResponse>(base, `/api/v1/overview?from=${from}&namespace=shop`);
  assert.equal(shop.workloads, 2);
  assert.deepEqual(shop.namespaces, ['shop']);
  assert.deepEqual(shop.top.oom_kills.map((e) => e.workload), ['db']);
  const most = await get<OverviewResponse>(base, `/api/v1/overview?from=${from}&limit=100000`);
  assert.equal(most.top.cpu_seconds.length, 4, 'a limit past 100 is 100');
  const empty = await get<OverviewResponse>(base, '/api/v1/overview?from=-10s&to=now');
  assert.equal(empty.workloads, 0);
  assert.deepEqual(empty.namespaces, []);
  assert.deepEqual(empty.top.cpu_seconds, []);

  for (const bad of ['limit=-1', 'limit=ten', 'limit=1.5', 'from=yesterday', 'cgroup=relative']) {
    const r = await send(`${base}/api/v1/overview?${bad}`, { headers: auth });
    assert.equal(r.status, 400, `${bad}: ${r.body}`);
  }
  assert.equal((await send(`${base}/api/v1/overview`)).status, 401, 'the token is needed');
  const metrics = await send(`${base}/metrics`, { headers: auth });
  assert.match(metrics.body, /^periscope_hub_query_duration_seconds_count\{route="\/api\/v1\/overview"\} 5$/m);
  const missing = await send(`${base}/api/v1/nope`, { headers: auth });
  assert.equal(missing.status, 404);
  assert.match((missing.json() as { hint: string }).hint, /\/api\/v1\/overview/);
});

const close = (actual: number | null | undefined, expected: number, what: string): void => assert.ok(actual !== null && actual !== undefined && Math.abs(actual - expected) < 1e-9, `${what}: ${actual} is not ${expected}`);

test('l7 series through the ingest path: map edges carry each request once (the client\'s count where observed), errors and p50/p99; /api/v1/requests a workload\'s rows as server and as client', async (t) => {
  const { base } = await startHub(t);
  assert.equal((await ingest(base, l7ClientBatch(T0 + 10_000))).status, 200);
  assert.equal((await ingest(base, l7ServerBatch(T0 + 10_000))).status, 200);
  const range = `from=${new Date(T0).toISOString()}&to=${new Date(T0 + 60_000).toISOString()}`;
  const map = await get<NetworkMapResponse>(base, `/api/v1/network/map?${range}`);
  const edge = (from: string, to: string): EdgeEntry => {
    const e = map.edges.find((x) => x.source.name === from && `${x.target.name}:${x.target.port}` === to);
    assert.ok(e, `${from} → ${to} in ${JSON.stringify(map.edges.map((x) => [x.source.name, x.target.name, x.target.port]))}`);
    return e;
  };
  const api = edge('web', 'api:8080');
  assert.deepEqual(Object.keys(api.requests).sort(), ['grpc', 'http']);
  const http = api.requests.http!;
  assert.deepEqual([http.side, http.requests, http.errors, http.client_errors], ['client', 100, 6, 4], 'the client\'s 100, not the server\'s 101 nor both');
  close(http.rate, 100 / 60, 'rate over the minute');
  close(http.p50_seconds, 0.01, 'http p50');
  close(http.p99_seconds, 0.01 + 0.09 * (49 / 50), 'http p99');
  const grpc = api.requests.grpc!;
  assert.deepEqual([grpc.side, grpc.requests, grpc.errors, grpc.client_errors], ['client', 10, 2, 0]);
  close(grpc.p50_seconds, 0.55, 'grpc p50');
  close(grpc.p99_seconds, 0.1 + 0.9 * 0.99, 'grpc p99');
  assert.deepEqual(api.observed_by, ['client', 'server']);
  assert.equal(api.connections, 0, 'no network collector in these batches: an edge of requests alone');
  const sql = edge('web', 'db:5432').requests.sql!;
  assert.deepEqual([sql.side, sql.requests, sql.errors, sql.client_errors], ['client', 21, 1, 0]);
  close(sql.p50_seconds, 0.0005, 'sql p50');
  close(sql.p99_seconds, 0.001 * (20.79 / 21), 'sql p99');
  const redis = edge('web', 'cache:6379').requests.redis!;
  assert.deepEqual([redis.side, redis.requests, redis.errors], ['client', 33, 3]);
  const outside = edge('203.0.113.9', 'api:');
  assert.deepEqual(Object.keys(outside.requests), ['http']);
  assert.deepEqual([outside.requests.http!.side, outside.requests.http!.requests, outside.requests.http!.errors], ['server', 10, 2], 'a client without an agent: the server\'s count');
  close(outside.requests.http!.p50_seconds, 0.0055, 'outside p50');
  assert.equal(map.edges.length, 4);

  const web = await get<RequestsResponse>(base, `/api/v1/requests?namespace=shop&workload=web&${range}`);
  assert.deepEqual(
    web.rows.map((r) => [r.protocol, r.side, r.operation, r.name, r.requests, r.errors, r.client_errors, r.statuses]),
    [
      ['http', 'client', 'GET', '/users/{id}', 100, 6, 4, { '2xx': 90, '4xx': 4, '5xx': 6 }],
      ['redis', 'client', '', 'GET', 30, 0, 0, { ok: 30 }],
      ['sql', 'client', 'SELECT', 'SELECT * FROM users WHERE id = ?', 20, 0, 0, { ok: 20 }],
      ['grpc', 'client', '', 'shop.Cart/Add', 10, 2, 0, { NOT_FOUND: 2, OK: 8 }],
      ['redis', 'client', '', 'SET', 3, 3, 0, { WRONGTYPE: 3 }],
      ['sql', 'client', 'INSERT', 'INSERT INTO users VALUES (?, ?)', 1, 1, 0, { '23505': 1 }],
    ],
  );
  close(web.rows[0]!.error_ratio, 0.06, 'error ratio');
  close(web.rows[0]!.p99_seconds, 0.0982, 'route p99');
  const apiRows = await get<RequestsResponse>(base, `/api/v1/requests?namespace=shop&workload=api&since=${encodeURIComponent(new Date(T0).toISOString())}&to=${new Date(T0 + 60_000).toISOString()}`);
  assert.deepEqual(
    apiRows.rows.map((r) => [r.protocol, r.side, r.name, r.requests, r.errors, r.client_errors, r.statuses]),
    [['http', 'server', '/users/{id}', 111, 8, 4, { '2xx': 99, '4xx': 4, '5xx': 8 }]],
    'as the server: every client\'s requests, the ones outside the selection too',
  );
  close(apiRows.rows[0]!.p50_seconds, 0.001 + 0.009 * (55.5 / 61), 'server p50');
  close(apiRows.rows[0]!.p99_seconds, 0.01 + 0.09 * ((0.99 * 111 - 61) / 50), 'server p99');
  close(apiRows.rows[0]!.rate, 111 / 60, 'server rate');
  const onlySql = await get<RequestsResponse>(base, `/api/v1/requests?namespace=shop&workload=web&protocol=sql&side=client&${range}`);
  assert.deepEqual(onlySql.rows.map((r) => r.name), ['SELECT * FROM users WHERE id = ?', 'INSERT INTO users VALUES (?, ?)']);
  // the series route filters and groups by the l7 labels
  const s = await get<SeriesResponse>(base, `/api/v1/series?metric=periscope_http_requests_total&${range}&step=60&side=client&status_class=5xx&status_class=4xx&by=status_class,route`);
  assert.deepEqual(s.lines.map((l) => [l.labels.status_class, l.labels.route, l.points.map((p) => p[1] * 60)]).sort(), [['4xx', '/users/{id}', [4]], ['5xx', '/users/{id}', [6]]]);
  const shape = await get<SeriesResponse>(base, `/api/v1/series?metric=periscope_sql_queries_total&${range}&step=60&shape=${encodeURIComponent('INSERT INTO users VALUES (?, ?)')}`);
  assert.deepEqual(shape.lines.map((l) => l.points.map((p) => p[1] * 60)), [[1]], 'a value with a comma is one value');
});

test('/api/v1/requests and the l7 filters of /api/v1/series: bad parameters get a 400 that names them; values are bound', async (t) => {
  const { base } = await startHub(t);
  const R = '/api/v1/requests?namespace=shop&workload=web';
  const cases: [string, RegExp | number][] = [
    ['/api/v1/requests?workload=web', /namespace is missing/],
    ['/api/v1/requests?namespace=shop', /workload is missing/],
    [`${R}&protocol=ftp`, /protocol="ftp" is not one of http, grpc, sql, redis/],
    [`${R}&side=both`, /side="both" is not one of/],
    [`${R}&colour=red`, /unknown parameter "colour"/],
    [`${R}&since=yesterday`, /since="yesterday" is not a time/],
    [`${R}&since=15m&from=-1h`, /since and from are both given/],
    [`${R}&since=999999999w`, /more than the 400 a query may/],
    [`${R}&from=-999999999w&to=-999999999w`, /is not before to/],
    [`${R}&limit=1e309`, /limit must be a non-negative integer/],
    [`/api/v1/requests?namespace=shop&workload=${'w'.repeat(300)}`, /workload is 300 characters long/],
    ['/api/v1/requests?namespace=a&namespace=b&workload=w', /namespace is given 2 times/],
    [`/api/v1/series?metric=periscope_http_requests_total&route=${'r'.repeat(2000)}`, /route is 2000 characters long/],
    [`/api/v1/series?metric=periscope_http_requests_total&${'method=GET&'.repeat(101)}`, /method is given 101 times/],
    ['/api/v1/series?metric=periscope_http_requests_total&by=route;DROP', /by="route;DROP" is not a column/],
    ["/api/v1/requests?namespace=x'%20OR%201=1--&workload=w", 200],
    ["/api/v1/series?metric=periscope_http_requests_total&route=x'%3B%20DROP%20TABLE%20series%3B--", 200],
  ];
  for (const [path, expected] of cases) {
    const r = await send(`${base}${path}`, { headers: auth });
    if (typeof expected === 'number') {
      assert.equal(r.status, expected, `${path}: ${r.body}`);
      continue;
    }
    assert.equal(r.status, 400, `${path}: ${r.body}`);
    assert.match((r.json() as { error: string }).error, expected, path);
  }
  assert.equal((await send(`${base}${R}`)).status, 401, 'the token, as every API route');
  assert.deepEqual((await get<RequestsResponse>(base, R)).rows, []);
});

/** A profile of one pod of namespace shop over [T0, T0 + 10 s], as an agent ships it (stacks as folded text, root first). */
function wire(type: ProfileType, pod: string, stacks: Record<string, number>, period = type === 'cpu' ? 1e9 / 99 : 1): ProfileWire {
  const workload = pod.replace(/-\d+$/, '');
  return toWire(
    { type, from: T0, to: T0 + 10_000, period, total: 0, stacks: Object.entries(stacks).map(([folded, value]) => ({ frames: folded.split(';'), value })) },
    { cgroup: `/shop/${pod}`, namespace: 'shop', pod, container: 'app', workload_kind: 'Deployment', workload },
  );
}

const flat = (p: ProfileJson): string[] => p.stacks.map((s) => `${s.frames.join(';')} ${s.value}`);

test('profiles shipped in batches are stored once and served merged across nodes, filtered, as json, folded text and pprof', async (t) => {
  const { base } = await startHub(t);
  const a = {
    ...batch(1),
    profiles: [wire('cpu', 'cart-1', { 'cart;main;a': 10, 'cart;main;b': 5 }), wire('offcpu', 'cart-1', { 'cart;main;read;vfs_read_[k]': 2e6 })],
  };
  const b = {
    ...batch(1, { node: 'node-b', instance: 'instance-b001' }),
    profiles: [wire('cpu', 'cart-2', { 'cart;main;a': 7 }, 1e7), wire('cpu', 'db-0', { 'db;loop': 100 }, 1e7)],
  };
  assert.deepEqual((await ingest(base, a)).json(), { applied: true, seq: 1 });
  assert.deepEqual((await ingest(base, b)).json(), { applied: true, seq: 1 });
  assert.deepEqual((await ingest(base, a)).json(), { applied: false, seq: 1 }, 'a replay: its stacks are not counted twice');

  // the default range (the last 15 minutes) and type (cpu)
  const all = await get<ProfileJson>(base, '/api/v1/profiles');
  assert.deepEqual(flat(all), ['db;loop 100', 'cart;main;a 17', 'cart;main;b 5'], 'cart;main;a merged over node-a and node-b');
  assert.deepEqual([all.type, all.unit, all.sample_type, all.total, all.period, all.dropped], ['cpu', 'count', 'samples', 122, 1e9 / 99, undefined]);
  assert.deepEqual([all.from, all.to], [T0 + 60_000 - 15 * 60_000, T0 + 60_000]);
  const range = `from=${new Date(T0).toISOString()}&to=${new Date(T0 + 60_000).toISOString()}`;
  assert.deepEqual(flat(await get<ProfileJson>(base, `/api/v1/profiles?${range}&workload=shop/cart`)), ['cart;main;a 17', 'cart;main;b 5']);
  assert.deepEqual(flat(await get<ProfileJson>(base, `/api/v1/profiles?${range}&namespace=shop&workload=cart&node=node-b`)), ['cart;main;a 7']);
  assert.deepEqual(flat(await get<ProfileJson>(base, `/api/v1/profiles?${range}&pod=cart-2,db-0`)), ['db;loop 100', 'cart;main;a 7']);
  assert.deepEqual(flat(await get<ProfileJson>(base, `/api/v1/profiles?${range}&cgroup=/shop/cart-1`)), ['cart;main;a 10', 'cart;main;b 5']);
  assert.deepEqual(flat(await get<ProfileJson>(base, `/api/v1/profiles?${range}&workload=shop/nope`)), []);
  // the window ended at T0 + 10 s: a range that ends there leaves it out
  assert.deepEqual(flat(await get<ProfileJson>(base, `/api/v1/profiles?from=${new Date(T0).toISOString()}&to=${new Date(T0 + 10_000).toISOString()}`)), []);
  const off = await get<ProfileJson>(base, `/api/v1/profiles?${range}&type=offcpu`);
  assert.deepEqual([flat(off), off.unit, off.sample_type, off.period], [['cart;main;read;vfs_read_[k] 2000000'], 'nanoseconds', 'offcpu', 1]);
  assert.deepEqual(flat(await get<ProfileJson>(base, `/api/v1/profiles?${range}&type=runq`)), []);
  const top = await get<ProfileJson>(base, `/api/v1/profiles?${range}&limit=1`);
  assert.deepEqual([flat(top), top.total, top.dropped], [['db;loop 100'], 122, { stacks: 2, value: 22 }]);

  const folded = await send(`${base}/api/v1/profiles?${range}&workload=shop/cart&format=folded`, { headers: auth });
  assert.equal(folded.status, 200);
  assert.match(String(folded.headers['content-type']), /^text\/plain/);
  assert.equal(folded.body, 'cart;main;a 17\ncart;main;b 5\n');
  assert.deepEqual(parseFolded(folded.body).map((s) => s.frames.length), [3, 3]);
  const pprof = await send(`${base}/api/v1/profiles?${range}&format=pprof`, { headers: auth });
  assert.equal(pprof.status, 200);
  assert.equal(pprof.headers['content-type'], 'application/octet-stream');
  assert.match(String(pprof.headers['content-disposition']), /cpu\.pb\.gz/);
  assert.deepEqual([...pprof.raw.subarray(0, 2)], [0x1f, 0x8b], 'gzip magic');
  const head = await send(`${base}/api/v1/profiles?${range}`, { method: 'HEAD', headers: auth });
  assert.deepEqual([head.status, head.raw.length], [200, 0]);
  assert.match(String(head.headers['content-type']), /application\/json/);
  assert.equal((await send(`${base}/api/v1/profiles`)).status, 401, 'the token, as every API route');

  const metrics = await send(`${base}/metrics`, { headers: auth });
  assert.match(metrics.body, /^periscope_hub_profile_stacks_ingested_total 5$/m, 'node-a 3, node-b 2, the replay none');
  assert.match(metrics.body, /^periscope_hub_query_duration_seconds_count\{route="\/api\/v1\/profiles"\} 13$/m, 'every query above, the HEAD too');
});

test('GET /api/v1/profiles: bad parameters get a 400 that names them', async (t) => {
  const { base } = await startHub(t);
  const cases: [string, RegExp][] = [
    ['type=bogus', /type="bogus" is not one of cpu, offcpu, runq/],
    ['format=svg', /format="svg" is not one of json, folded, pprof/],
    ['limit=0', /limit must be a positive integer/],
    ['limit=1e309', /limit must be a positive integer/],
    ['colour=red', /unknown parameter "colour"/],
    ['workload=a/b/c', /workload="a\/b\/c" is neither NAME nor NAMESPACE\/NAME/],
    ['workload=shop/cart&namespace=other', /names namespace shop but namespace=other/],
    ['from=yesterday', /from="yesterday" is not a time/],
    ['from=-1h&to=-2h', /is not before to/],
    ['cgroup=relative', /is not a cgroup path/],
  ];
  for (const [query, message] of cases) {
    const r = await send(`${base}/api/v1/profiles?${query}`, { headers: auth });
    assert.equal(r.status, 400, `${query}: ${r.body}`);
    assert.match((r.json() as { error: string }).error, message, query);
  }
  // values are bound, never spliced into SQL; a limit past 100,000 is 100,000
  assert.deepEqual((await get<ProfileJson>(base, "/api/v1/profiles?namespace=x'%20OR%201=1--&limit=999999")).stacks, []);
});

test('a batch whose profiles are malformed or hold more stacks than a batch may is refused with a 400 that names the field, and stores nothing', async (t) => {
  const { base } = await startHub(t);
  const good = wire('cpu', 'cart-1', { 'cart;main;a': 10 });
  const many = (n: number): ProfileWire => ({ ...good, frames: ['cart', 'main'], stacks: Array.from({ length: n }, () => ({ f: [0, 1], v: 1 })) });
  const cases: [string, unknown, RegExp][] = [
    ['a frame index past the table', { ...batch(1), profiles: [{ ...good, stacks: [{ f: [0, 7], v: 1 }] }] }, /malformed batch: profiles\.0\.stacks\.0\.f: a frame index is past the 3 frames/],
    ['an unknown type', { ...batch(1), profiles: [{ ...good, type: 'wall' }] }, /profiles\.0\.type/],
    ['a negative value', { ...batch(1), profiles: [good, { ...good, stacks: [{ f: [0], v: -1 }] }] }, /profiles\.1\.stacks\.0\.v/],
    ['a frame name with a separator', { ...batch(1), profiles: [{ ...good, frames: ['cart', 'ma;in', 'a'] }] }, /profiles\.0\.frames\.1: a frame name holds ';'/],
    ['a window that ends before it starts', { ...batch(1), profiles: [{ ...good, to: new Date(T0 - 1).toISOString() }] }, /profiles\.0\.to: .* is before from/],
    [`${MAX_BATCH_PROFILE_STACKS + 1} stacks`, { ...batch(1), profiles: [many(100_000), many(100_000), many(1)] }, /the batch holds 200001 profile stacks, more than the 200000 a batch may/],
  ];
  for (const [what, body, message] of cases) {
    const r = await ingest(base, body);
    assert.equal(r.status, 400, `${what}: ${r.body}`);
    assert.match((r.json() as { error: string }).error, message, what);
  }
  const range = `from=${new Date(T0).toISOString()}&to=${new Date(T0 + 60_000).toISOString()}`;
  assert.deepEqual((await get<ProfileJson>(base, `/api/v1/profiles?${range}`)).stacks, [], 'no stack stored');
  assert.deepEqual((await get<NodesResponse>(base, '/api/v1/nodes')).nodes, [], 'nor anything else of those batches');
  const metrics = await send(`${base}/metrics`, { headers: auth });
  assert.match(metrics.body, /^periscope_hub_batches_rejected_total\{reason="profile_stacks"\} 1$/m);
  assert.match(metrics.body, /^periscope_hub_batches_rejected_total\{reason="malformed"\} 5$/m);
  // the seq was not taken: the same seq applies once whole, and exactly the cap goes in
  assert.deepEqual((await ingest(base, { ...batch(1), profiles: [many(100_000), many(100_000)] })).json(), { applied: true, seq: 1 });
  const stored = await get<ProfileJson>(base, `/api/v1/profiles?${range}`);
  assert.deepEqual([flat(stored), stored.total], [[`cart;main ${MAX_BATCH_PROFILE_STACKS}`], MAX_BATCH_PROFILE_STACKS]);
});
