/**
 * The hub's whole ingest path (scenario `hub-ingest` of bench/run.ts): batches as agents send them —
 * gzip JSON of the wire schema, 100 pods a node with the agent's metric set — POSTed over loopback
 * HTTP to a Hub with a DuckDB store, one at a time and then `inflight` at a time (many agents
 * sending at once: the store writes the batches that wait together). It measures what bench/hub-store.ts does not:
 * inflating, parsing, checking the schema (zod) and flattening before apply(). Samples are counted
 * as the store keeps them (a histogram's buckets, sum and count each one). The same batches are also
 * put through the checks alone (no HTTP, no store), to show where the time goes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { request } from 'node:http';
import { type AddressInfo } from 'node:net';
import { Hub } from '../src/hub/hub.js';
import { Normalizer } from '../src/hub/ingest.js';
import { DuckDbStore } from '../src/hub/store-duckdb.js';
import { checkBatch, WIRE_VERSION, type Batch, type FamilyWire } from '../src/wire/ingest.js';
import { type Result } from './hub-store.js';

export interface HubIngestOptions {
  nodes: number;
  pods: number;
  /** batches per node (10 s apart) */
  intervals: number;
  /** batches POSTed at once in the second half */
  inflight: number;
}

/** POSTs the bodies with at most `inflight` requests open, in order of starting. */
async function postAll(port: number, bodies: readonly Buffer[], inflight: number): Promise<void> {
  const open = new Set<Promise<void>>();
  for (const b of bodies) {
    const p: Promise<void> = post(port, b).then(() => {
      open.delete(p);
    });
    open.add(p);
    if (open.size >= inflight) await Promise.race(open);
  }
  await Promise.all(open);
}

const WL = ['cgroup', 'namespace', 'pod', 'container', 'workload_kind', 'workload', 'node'];
/** The agent's run-queue buckets: log2 from 2 µs to 67 s. */
const RQ_BUCKETS = Array.from({ length: 26 }, (_x, i) => 2e-6 * 2 ** i);

function batch(node: number, pods: number, seq: number, at: number): Batch {
  const n = `node-${node}`;
  const podLabels = Array.from({ length: pods }, (_x, p) => {
    const ns = `ns-${p % 10}`;
    const workload = `w-${p % 10}-${Math.floor(p / 10) % 5}`;
    return [`/kubepods.slice/${ns}/${workload}-${node}-${p}/app`, ns, `${workload}-${node}-${p}`, 'app', 'Deployment', workload, n];
  });
  const counter = (name: string, extra: string[] = [], values: string[][] = [[]]): FamilyWire => ({
    name,
    type: 'counter',
    help: name,
    labels: [...WL, ...extra],
    series: podLabels.flatMap((l) => values.map((v) => ({ labels: [...l, ...v], value: seq * 10, delta: 10 }))),
  });
  const hist = RQ_BUCKETS.map((_b, i) => Math.min(100, i * 8));
  const peers = [
    ['pod', 'db', 'postgres', 'postgres-0', '5432'],
    ['service', 'shop', 'cart', 'cart', '8080'],
  ];
  return {
    version: WIRE_VERSION,
    agent: { node: n, instance: `bench-instance-${node}`, version: '0.1.0', started: new Date(at - 3_600_000).toISOString(), cgroup_subtree: '/' },
    seq,
    time: new Date(at).toISOString(),
    status: { collectors: [{ name: 'cpu', alternative: 'tp_btf', up: true }], capabilities: { btf: true }, kernel: '6.18' },
    families: [
      counter('periscope_cpu_seconds_total'),
      counter('periscope_context_switches_total', ['kind'], [['voluntary'], ['involuntary']]),
      counter('periscope_process_execs_total'),
      counter('periscope_process_forks_total'),
      counter('periscope_process_exits_total'),
      counter('periscope_oom_kills_total'),
      {
        name: 'periscope_runqueue_latency_seconds',
        type: 'histogram',
        help: 'rq',
        labels: WL,
        buckets: RQ_BUCKETS,
        series: podLabels.map((l) => ({ labels: l, hist: { cumulative: hist.map((c) => c * seq), count: 100 * seq, sum: seq }, hist_delta: { cumulative: hist, count: 100, sum: 1 } })),
      },
      ...['periscope_tcp_connections_total', 'periscope_tcp_bytes_sent_total', 'periscope_tcp_bytes_received_total'].map((name) =>
        counter(name, ['peer_kind', 'peer_namespace', 'peer_workload', 'peer', 'peer_port'], peers),
      ),
    ],
    events: [],
    dropped: { batches: 0, events: 0, samples: 0 },
  };
}

function post(port: number, body: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/v1/ingest', method: 'POST', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'content-length': body.length } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function hubIngest(o: HubIngestOptions): Promise<Result[]> {
  const start = Date.now() - o.intervals * 10_000;
  const bodies: Buffer[] = [];
  for (let i = 0; i < o.intervals; i++) for (let n = 0; n < o.nodes; n++) bodies.push(gzipSync(JSON.stringify(batch(n, o.pods, i + 1, start + i * 10_000))));
  const wireBytes = bodies.reduce((a, b) => a + b.length, 0);

  // the checks alone: inflate, parse, zod, flatten
  const normalizer = new Normalizer();
  let checked = 0;
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (const b of bodies) {
    const r = checkBatch(JSON.parse(gunzipSync(b).toString('utf8')));
    if (!r.ok) throw new Error(r.error);
    checked += normalizer.rows(r.batch, Date.now()).samples.length;
  }
  const checkSeconds = (performance.now() - t0) / 1e3;
  const checkCpu = process.cpuUsage(c0);

  const dir = mkdtempSync(join(tmpdir(), 'periscope-bench-ingest-'));
  const store = new DuckDbStore(join(dir, 'hub.duckdb'), { rawRetentionMs: 24 * 3_600_000, rollupRetentionMs: 30 * 86_400_000 });
  await store.open();
  const hub = new Hub({ store, log: () => undefined });
  const server = await hub.listen('127.0.0.1', 0);
  const port = (server.address() as AddressInfo).port;
  try {
    // the first interval makes every series: timed apart
    const first = performance.now();
    for (const b of bodies.slice(0, o.nodes)) await post(port, b);
    const firstSeconds = (performance.now() - first) / 1e3;
    const firstSamples = hub.counts.samples;
    // then half the rest one at a time, half `inflight` at a time (whole intervals: a node's batches stay in seq order)
    const rest = bodies.slice(o.nodes);
    const split = Math.floor((o.intervals - 1) / 2) * o.nodes;
    const phase = async (part: Buffer[], inflight: number) => {
      const s0 = hub.counts.samples;
      const c1 = process.cpuUsage();
      const t1 = performance.now();
      await postAll(port, part, inflight);
      const seconds = (performance.now() - t1) / 1e3;
      const cpu = process.cpuUsage(c1);
      const cpuSeconds = (cpu.user + cpu.system) / 1e6;
      const samples = hub.counts.samples - s0;
      return { rate: Math.round(samples / seconds), perCpu: Math.round(samples / cpuSeconds), cores: Number((cpuSeconds / seconds).toFixed(2)) };
    };
    const one = await phase(rest.slice(0, split), 1);
    const many = await phase(rest.slice(split), o.inflight);
    return [
      {
        scenario: 'hub-ingest',
        store: 'duckdb',
        batches: bodies.length,
        'samples per batch': Math.round(checked / bodies.length),
        'wire KiB per batch': Math.round(wireBytes / bodies.length / 1024),
        'checks alone, samples/s': Math.round(checked / checkSeconds),
        'checks alone, samples per CPU-second': Math.round(checked / ((checkCpu.user + checkCpu.system) / 1e6)),
        'first interval (new series), samples/s': Math.round(firstSamples / firstSeconds),
        'ingest over HTTP one at a time, samples/s': one.rate,
        'one at a time, samples per hub CPU-second': one.perCpu,
        'one at a time, hub CPU cores': one.cores,
        [`ingest over HTTP ${o.inflight} at a time, samples/s`]: many.rate,
        [`${o.inflight} at a time, samples per hub CPU-second`]: many.perCpu,
        [`${o.inflight} at a time, hub CPU cores`]: many.cores,
      },
    ];
  } finally {
    server.closeAllConnections();
    server.close();
    await hub.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
