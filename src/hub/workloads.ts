/**
 * GET /api/v1/workloads, the arithmetic: the store's per-group counter deltas over a range
 * (Store.aggregate() grouped by WORKLOAD_GROUP_BY over WORKLOAD_METRICS) folded into one entry per
 * workload, pod or container cgroup (`group`), sorted and cut. Pure, so the hub and `periscope top`
 * against an agent (which makes the same rows from two scrapes of /metrics) show the same numbers.
 *
 * Identity of an entry: 'container' is a (node, cgroup); 'pod' is a (namespace, pod) where the pod is
 * known, else the cgroup on its node; 'workload' is a (namespace, kind, workload) where the workload is
 * known, else as 'pod'. Host cgroups (no pod) are therefore never merged across nodes.
 *
 * tcp_connections counts every connection the entry took part in: outbound attempts (successful or
 * not: a failing connect is work, and the failures are what one looks for) and inbound accepts, over
 * every peer. Run-queue latency quantiles come from the summed bucket deltas, interpolated within the
 * bucket as Prometheus's histogram_quantile does.
 */
import { type AggregateRow, type Column } from './store.js';

/** What summarizeWorkloads reads of a store's row (AggregateRow and WorkloadSumRow both have it). */
export type SummaryRow = Pick<AggregateRow, 'metric' | 'group' | 'delta'>;
import { type WorkloadEntry, type WorkloadGroup, type WorkloadSortKey } from '../wire/hub.js';

export const RUNQ_BUCKET_METRIC = 'periscope_runqueue_latency_seconds_bucket';

/** What an entry sums, by the metric it comes from (the histogram's buckets are read apart). */
const COUNTERS = {
  periscope_cpu_seconds_total: 'cpu_seconds',
  periscope_context_switches_total: 'context_switches',
  periscope_process_execs_total: 'execs',
  periscope_process_exits_total: 'exits',
  periscope_oom_kills_total: 'oom_kills',
  periscope_tcp_connections_total: 'tcp_connections',
  periscope_tcp_bytes_sent_total: 'tcp_bytes_sent',
  periscope_tcp_bytes_received_total: 'tcp_bytes_received',
  periscope_tcp_retransmits_total: 'tcp_retransmits',
} as const satisfies Record<string, keyof WorkloadEntry>;

type CounterField = (typeof COUNTERS)[keyof typeof COUNTERS];

/** The metrics the workloads view reads. */
export const WORKLOAD_METRICS: readonly string[] = [...Object.keys(COUNTERS), RUNQ_BUCKET_METRIC];

/** What the store's rows must be grouped by ('metric' is always a group of its own). */
export const WORKLOAD_GROUP_BY: readonly Column[] = ['node', 'namespace', 'workload_kind', 'workload', 'pod', 'container', 'cgroup', 'le'];

export interface Bucket {
  /** the bucket's upper bound (Infinity for "+Inf") */
  le: number;
  /** observations at or below it (cumulative) */
  count: number;
}

/**
 * The q-quantile (0 <= q <= 1) of a histogram of cumulative buckets, as Prometheus's
 * histogram_quantile computes it: the bucket the rank falls in, linearly interpolated between its
 * lower bound (the previous bound, or 0 for the first bucket) and its upper bound. A rank in the
 * +Inf bucket gives the highest finite bound. null without observations. Buckets may come in any
 * order; repeated bounds are summed; counts that go down with the bound are read as the highest
 * count below (as Prometheus does).
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number | null {
  if (!(q >= 0 && q <= 1)) throw new RangeError(`a quantile is between 0 and 1, not ${q}`);
  const byBound = new Map<number, number>();
  for (const b of buckets) {
    if (Number.isNaN(b.le) || !Number.isFinite(b.count)) continue;
    byBound.set(b.le, (byBound.get(b.le) ?? 0) + b.count);
  }
  const sorted = [...byBound].sort((a, b) => a[0] - b[0]);
  let highest = 0;
  const cum = sorted.map(([le, count]) => {
    highest = Math.max(highest, count);
    return { le, count: highest };
  });
  const total = cum.at(-1)?.count ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  const i = cum.findIndex((b) => b.count >= rank);
  const at = cum[i]!;
  if (at.le === Infinity) {
    const finite = cum.filter((b) => b.le !== Infinity);
    return finite.length > 0 ? finite.at(-1)!.le : null;
  }
  if (i === 0 && at.le <= 0) return at.le;
  const lower = i === 0 ? 0 : cum[i - 1]!.le;
  const below = i === 0 ? 0 : cum[i - 1]!.count;
  const inBucket = at.count - below;
  if (inBucket <= 0) return lower;
  return lower + (at.le - lower) * ((rank - below) / inBucket);
}

export interface SummarizeOptions {
  group: WorkloadGroup;
  /** the range's length: cpu_cores is cpu_seconds over it */
  seconds: number;
  sort: WorkloadSortKey;
  /** most entries returned (the first after sorting) */
  limit?: number;
}

interface Acc {
  entry: WorkloadEntry;
  nodes: Set<string>;
  cgroups: Set<string>;
  pods: Set<string>;
  containers: Set<string>;
  kinds: Set<string>;
  workloads: Set<string>;
  /** run-queue latency bucket deltas by bound */
  runq: Map<number, number>;
}

/** The key of the entry a row belongs to. */
function identity(g: Readonly<Record<string, string>>, group: WorkloadGroup): string {
  const v = (k: string): string => g[k] ?? '';
  const byCgroup = `c\u0000${v('node')}\u0000${v('cgroup')}`;
  if (group === 'container') return byCgroup;
  const byPod = v('pod') ? `p\u0000${v('namespace')}\u0000${v('pod')}` : byCgroup;
  if (group === 'pod') return byPod;
  return v('workload') ? `w\u0000${v('namespace')}\u0000${v('workload_kind')}\u0000${v('workload')}` : byPod;
}

/** The one value all members agree on, else "". */
const agreed = (s: Set<string>): string => (s.size === 1 ? [...s][0]! : '');

/** The shortest of the paths (the first in order among equals): the entry's outermost cgroup. */
const shortest = (s: Set<string>): string => [...s].sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0))[0] ?? '';

const nameKey = (e: WorkloadEntry): string[] => [e.namespace, e.workload, e.pod, e.cgroup, e.node];

function byName(a: WorkloadEntry, b: WorkloadEntry): number {
  const ka = nameKey(a);
  const kb = nameKey(b);
  for (let i = 0; i < ka.length; i++) if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
  return 0;
}

/**
 * One entry per workload, pod or container (opts.group) from the store's rows, sorted by opts.sort
 * (descending, nulls last, ties by name; 'name' ascending) and cut to opts.limit. Rows of other
 * metrics, and buckets without a readable `le`, are ignored. When an entry groups several pods or
 * containers, `pod` and `container` are those they all share, else "".
 */
export function summarizeWorkloads(rows: readonly SummaryRow[], opts: SummarizeOptions): WorkloadEntry[] {
  if (!(opts.seconds > 0) || !Number.isFinite(opts.seconds)) throw new RangeError(`the range must last a positive number of seconds, not ${opts.seconds}`);
  const accs = new Map<string, Acc>();
  for (const row of rows) {
    const counter = Object.hasOwn(COUNTERS, row.metric) ? COUNTERS[row.metric as keyof typeof COUNTERS] : undefined;
    if (counter === undefined && row.metric !== RUNQ_BUCKET_METRIC) continue;
    const g = row.group;
    const key = identity(g, opts.group);
    let acc = accs.get(key);
    if (!acc) {
      acc = {
        entry: {
          node: '',
          nodes: [],
          namespace: g.namespace ?? '',
          workload_kind: g.workload_kind ?? '',
          workload: g.workload ?? '',
          pod: '',
          container: '',
          cgroup: '',
          cpu_seconds: 0,
          cpu_cores: 0,
          runqueue_latency_p50_seconds: null,
          runqueue_latency_p99_seconds: null,
          context_switches: 0,
          execs: 0,
          exits: 0,
          oom_kills: 0,
          tcp_connections: 0,
          tcp_bytes_sent: 0,
          tcp_bytes_received: 0,
          tcp_retransmits: 0,
        },
        nodes: new Set(),
        cgroups: new Set(),
        pods: new Set(),
        containers: new Set(),
        kinds: new Set(),
        workloads: new Set(),
        runq: new Map(),
      };
      accs.set(key, acc);
    }
    // a row without a column (a query that did not group by it) says nothing about it
    if (g.node !== undefined) acc.nodes.add(g.node);
    if (g.cgroup !== undefined) acc.cgroups.add(g.cgroup);
    if (g.pod !== undefined) acc.pods.add(g.pod);
    if (g.container !== undefined) acc.containers.add(g.container);
    if (g.workload_kind !== undefined) acc.kinds.add(g.workload_kind);
    if (g.workload !== undefined) acc.workloads.add(g.workload);
    const delta = Number.isFinite(row.delta) ? row.delta : 0;
    if (counter !== undefined) {
      acc.entry[counter satisfies CounterField] += delta;
      continue;
    }
    const le = g.le === '+Inf' ? Infinity : g.le === undefined || g.le.trim() === '' ? NaN : Number(g.le);
    if (Number.isNaN(le)) continue;
    acc.runq.set(le, (acc.runq.get(le) ?? 0) + delta);
  }

  const entries = [...accs.values()].map((acc) => {
    const e = acc.entry;
    e.nodes = [...acc.nodes].sort();
    e.node = e.nodes[0] ?? '';
    e.cgroup = shortest(acc.cgroups);
    e.pod = agreed(acc.pods);
    e.container = agreed(acc.containers);
    // an entry keyed by its pod or cgroup takes the workload its members agree on
    e.workload_kind = agreed(acc.kinds);
    e.workload = agreed(acc.workloads);
    e.cpu_cores = e.cpu_seconds / opts.seconds;
    const buckets = [...acc.runq].map(([le, count]) => ({ le, count }));
    e.runqueue_latency_p50_seconds = histogramQuantile(0.5, buckets);
    e.runqueue_latency_p99_seconds = histogramQuantile(0.99, buckets);
    return e;
  });

  sortWorkloads(entries, opts.sort);
  return opts.limit === undefined ? entries : entries.slice(0, Math.max(0, opts.limit));
}

/** Sorts entries in place by `key`: descending, nulls last, ties by name; 'name' ascending. Returns them. */
export function sortWorkloads(entries: WorkloadEntry[], key: WorkloadSortKey): WorkloadEntry[] {
  if (key === 'name') return entries.sort(byName);
  return entries.sort((a, b) => {
    const va = a[key];
    const vb = b[key];
    if (va === null || vb === null) return va === vb ? byName(a, b) : va === null ? 1 : -1;
    return vb - va || byName(a, b);
  });
}
