/**
 * The hub's stores under a cluster's load (scenario `hub-store` of bench/run.ts). A synthetic cluster
 * of `nodes` × `pods` pods, each with the agent's metric set (27 series a pod: 6 process and CPU
 * counters, the run-queue latency histogram as 13 buckets + _sum + _count, 3 TCP counters × 2 peers),
 * one batch per node every 10 s, for `minutes` minutes of data ending now:
 *   ingest   samples/s through apply() on a fresh store, `inflight` batches at a time as a hub
 *            receiving from many agents has them (the hub's process CPU beside the wall time, batch
 *            building included; for ClickHouse, the server's CPU too), the first interval (every
 *            series new) apart
 *   queries  with that data loaded, p50/p95 of the hub's GET /api/v1/workloads over an hour (HTTP
 *            included; the hour ends 30 s before the last batch and starts mid-minute, as a
 *            user's "last hour" does), of the store queries under it (workloadSums() of the 8
 *            metrics, and the generic aggregate() over every series by namespace, workload_kind,
 *            workload, node and le beside it), and of one workload's CPU series (step 60 s); first
 *            from raw rows only, then again after maintain() as a live hub runs it (the minutes
 *            closed 30 s before the last batch rolled up, the last minute still raw)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DuckDbStore } from '../src/hub/store-duckdb.js';
import { ClickHouseStore } from '../src/hub/store-clickhouse.js';
import { seriesId, type BatchRows, type SeriesRow, type Store, type StoreOptions } from '../src/hub/store.js';
import { ClickHouseServer } from '../test/clickhouse.js';
import { type AddressInfo } from 'node:net';
import { Hub } from '../src/hub/hub.js';

export interface HubStoreOptions {
  nodes: number;
  pods: number;
  minutes: number;
  /** query repetitions for the percentiles */
  repeat: number;
  /** batches given to apply() before the first is done (the hub's pending batches under load) */
  inflight: number;
  stores: ('duckdb' | 'clickhouse')[];
}

export interface Result {
  scenario: string;
  [k: string]: string | number;
}

export const INTERVAL = 10_000;
const OPTIONS: StoreOptions = { rawRetentionMs: 24 * 3_600_000, rollupRetentionMs: 30 * 86_400_000 };
const COUNTERS = ['cpu_seconds_total', 'context_switches_total', 'process_execs_total', 'process_forks_total', 'process_exits_total', 'oom_kills_total'];
const LE = ['0.000001', '0.000004', '0.000016', '0.000064', '0.000256', '0.001', '0.004', '0.016', '0.064', '0.256', '1', '4', '+Inf'];
const TCP = ['tcp_connections_total', 'tcp_bytes_sent_total', 'tcp_bytes_received_total'];
export const OVERVIEW_METRICS = [
  'periscope_cpu_seconds_total',
  'periscope_context_switches_total',
  'periscope_process_execs_total',
  'periscope_oom_kills_total',
  'periscope_runqueue_latency_seconds_bucket',
  'periscope_tcp_bytes_sent_total',
  'periscope_tcp_bytes_received_total',
  'periscope_tcp_connections_total',
];

/** The labels of pod p: 10 namespaces, 5 workloads each, pods spread over them. */
function podLabels(node: number, p: number): Record<string, string> {
  const ns = `ns-${p % 10}`;
  const workload = `w-${p % 10}-${Math.floor(p / 10) % 5}`;
  const pod = `${workload}-${node}-${p}`;
  return { cgroup: `/kubepods.slice/${ns}/${pod}/app`, namespace: ns, pod, container: 'app', workload_kind: 'Deployment', workload };
}

/** One node's series, built once; each batch reuses them with new values. */
export function nodeSeries(node: number, pods: number): SeriesRow[] {
  const name = `node-${node}`;
  const out: SeriesRow[] = [];
  const add = (metric: string, labels: Record<string, string>): void => {
    out.push({ id: seriesId(name, metric, labels), node: name, metric, type: 'counter', labels });
  };
  for (let p = 0; p < pods; p++) {
    const base = podLabels(node, p);
    for (const c of COUNTERS) add(`periscope_${c}`, base);
    for (const le of LE) add('periscope_runqueue_latency_seconds_bucket', { ...base, le });
    add('periscope_runqueue_latency_seconds_sum', base);
    add('periscope_runqueue_latency_seconds_count', base);
    for (const peer of [0, 1]) {
      const peerLabels = { peer_kind: 'pod', peer_namespace: `ns-${(p + peer + 1) % 10}`, peer_workload: `w-${(p + peer + 1) % 10}-0`, peer: `10.0.${peer}.${p % 250}`, peer_port: '8080', direction: peer ? 'inbound' : 'outbound' };
      for (const t of TCP) add(`periscope_${t}`, { ...base, ...peerLabels });
    }
  }
  return out;
}

/** Batches of every node at each interval, in time order, from `start`. */
export function* batches(series: SeriesRow[][], start: number, intervals: number): Generator<BatchRows> {
  const cumulative = series.map((s) => new Float64Array(s.length));
  const instance = (n: number): string => `bench-instance-${n}`;
  for (let i = 0; i < intervals; i++) {
    for (let n = 0; n < series.length; n++) {
      const ts = start + i * INTERVAL + n; // nodes a ms apart
      const ss = series[n]!;
      const cum = cumulative[n]!;
      const samples = new Array<BatchRows['samples'][number]>(ss.length);
      for (let k = 0; k < ss.length; k++) {
        const delta = (k % 7) + (i % 3);
        cum[k]! += delta;
        samples[k] = { series: ss[k]!.id, ts, value: cum[k]!, delta };
      }
      yield {
        report: { node: `node-${n}`, instance: instance(n), seq: i + 1, version: 'bench', started: start - 1000, received: ts, cgroupSubtree: '/', status: '{}' },
        series: ss,
        samples,
        events: [],
      };
    }
  }
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

async function time<T>(f: () => Promise<T>, repeat: number): Promise<{ p50: number; p95: number; result: T }> {
  let result = await f(); // warm
  const ms: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const t0 = performance.now();
    result = await f();
    ms.push(performance.now() - t0);
  }
  return { p50: percentile(ms, 50), p95: percentile(ms, 95), result };
}

async function benchStore(kind: 'duckdb' | 'clickhouse', o: HubStoreOptions): Promise<Result[]> {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-bench-store-'));
  let server: ClickHouseServer | undefined;
  let store: Store;
  if (kind === 'duckdb') store = new DuckDbStore(join(dir, 'hub.duckdb'), OPTIONS);
  else {
    server = await ClickHouseServer.start();
    store = new ClickHouseStore({ url: server.url, username: 'default', password: '', database: 'periscope_bench' }, OPTIONS);
  }
  try {
    await store.open();
    const series = Array.from({ length: o.nodes }, (_, n) => nodeSeries(n, o.pods));
    const intervals = Math.round((o.minutes * 60_000) / INTERVAL);
    const now = Math.floor(Date.now() / 60_000) * 60_000;
    const start = now - intervals * INTERVAL;
    const perInterval = series.reduce((a, s) => a + s.length, 0);
    const out: Result[] = [];
    let samples = 0;
    let first: { seconds: number; samples: number } | undefined;
    const pid = server?.pid;
    const cpu0 = process.cpuUsage();
    const server0 = pid ? cpuSeconds(pid) : 0;
    const t0 = performance.now();
    let tFirst = t0;
    const inflight = new Set<Promise<void>>();
    for (const b of batches(series, start, intervals)) {
      const p: Promise<void> = store.apply(b).then(() => {
        inflight.delete(p);
      });
      inflight.add(p);
      samples += b.samples.length;
      if (samples === perInterval) {
        // the first interval (every series new) on its own
        await Promise.all(inflight);
        tFirst = performance.now();
        first = { seconds: (tFirst - t0) / 1000, samples };
      } else if (inflight.size >= o.inflight) await Promise.race(inflight);
    }
    await Promise.all(inflight);
    const wall = (performance.now() - tFirst) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const steady = samples - perInterval;
    out.push({
      scenario: `${kind}: ingest (${o.nodes} nodes × ${o.pods} pods × 27 series, a batch per node every 10 s, ${o.minutes} min = ${intervals} intervals)`,
      series: perInterval,
      samples_per_batch: series[0]!.length,
      first_interval_samples_per_second: first ? first.samples / first.seconds : 0,
      samples_after_first_interval: steady,
      batches_in_flight: o.inflight,
      wall_seconds_with_batch_building: wall,
      samples_per_second: steady / wall,
      hub_process_cpu_seconds: (cpu.user + cpu.system) / 1e6,
      ...(pid ? { clickhouse_server_cpu_seconds: cpuSeconds(pid) - server0 } : {}),
      store_bytes: await store.size(),
    });

    const hour = { from: now - 3_630_000, to: now - 30_000 };
    const queries = async (how: string): Promise<void> => {
      const sums = await time(() => store.workloadSums({ ...hour, metrics: OVERVIEW_METRICS }), o.repeat);
      const overview = await time(
        () => store.aggregate({ ...hour, metrics: OVERVIEW_METRICS, groupBy: ['namespace', 'workload_kind', 'workload', 'node', 'le'] }),
        o.repeat,
      );
      const one = await time(
        () => store.series({ ...hour, metric: 'periscope_cpu_seconds_total', filters: { namespace: 'ns-3', workload: 'w-3-1' }, stepMs: 60_000 }),
        o.repeat,
      );
      // the hub's own answer: GET /api/v1/workloads over the hour, as the UI and `periscope top` ask it
      const api = new Hub({ store, log: () => undefined });
      const listening = await api.listen('127.0.0.1', 0);
      const url = `http://127.0.0.1:${(listening.address() as AddressInfo).port}/api/v1/workloads?from=${new Date(hour.from).toISOString()}&to=${new Date(hour.to).toISOString()}&limit=10000`;
      const workloads = await time(async () => ((await (await fetch(url)).json()) as { workloads: unknown[] }).workloads, o.repeat);
      listening.closeAllConnections();
      listening.close();
      out.push({
        scenario: `${kind}: queries over the last hour (${samples} samples loaded; ${how})`,
        hub_workloads_entries: workloads.result.length,
        hub_workloads_p50_ms: workloads.p50,
        hub_workloads_p95_ms: workloads.p95,
        workload_sums_rows: sums.result.length,
        workload_sums_p50_ms: sums.p50,
        workload_sums_p95_ms: sums.p95,
        overview_rows: overview.result.length,
        overview_p50_ms: overview.p50,
        overview_p95_ms: overview.p95,
        workload_series_points: one.result[0]?.points.length ?? 0,
        workload_series_p50_ms: one.p50,
        workload_series_p95_ms: one.p95,
        repetitions: o.repeat,
      });
    };
    await queries('before maintain(): raw samples only');
    const m0 = performance.now();
    // as a live hub: maintain() ran at the last batch, which left its last minute raw
    const m = await store.maintain(now);
    out.push({ scenario: `${kind}: maintain() after the load`, seconds: (performance.now() - m0) / 1000, minutes_rolled_up: m.minutesRolledUp, store_bytes: await store.size() });
    await queries('after maintain(): whole minutes from rollups, the last one raw');
    return out;
  } finally {
    await store.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function hubStore(o: HubStoreOptions): Promise<Result[]> {
  const out: Result[] = [];
  for (const kind of o.stores) out.push(...(await benchStore(kind, o)));
  return out;
}
