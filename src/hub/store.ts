/**
 * The hub's store, behind one interface with two implementations that pass the same test suite
 * (store.suite.ts): DuckDB embedded in the hub process (the default: a file, no set-up) and ClickHouse
 * (past one machine; hubs in front of it keep no state of their own and can run as several replicas).
 *
 * The data model is Prometheus's, flattened for column stores:
 *   - a *series* is a node, a metric name and its labels. Its id is a 63-bit hash of the three
 *     (seriesId), so every hub computes the same id without asking the store. The labels the hub
 *     filters and groups by are columns of their own (INDEXED_LABELS); every label is also kept in
 *     `labels` (JSON text of the whole set).
 *   - a *sample* is a series' value at a time: `value` (a gauge, or a counter's cumulative value) and
 *     for counters `delta` (what it grew by since the previous sample of the same agent instance:
 *     src/wire/ingest.ts). Histograms are stored the way Prometheus exposes them: one counter per
 *     bucket (`<name>_bucket` with label `le`, "+Inf" included), `<name>_sum` and `<name>_count`.
 *   - an *event* is one row with its envelope as columns and the whole event as JSON text.
 *   - an *agent report* is one row per applied batch: the agent's identity and status (JSON).
 *   - a *profile stack* is one row per stack of a profile an agent shipped (src/wire/profiles.ts): the
 *     window's end, the node, the type, the cgroup and its attribution, the stack as folded text
 *     (frames root first, joined by ';') and its value. profile() sums them by stack over a range.
 *
 * Raw samples are kept for `rawRetentionMs`, 1-minute rollups for `rollupRetentionMs`; `maintain()`
 * makes rollups of closed minutes and drops what is past retention. Queries over a range that starts
 * before raw retention read the rollups, and so do long ranges (15 minutes or more) for the minutes
 * already rolled up; samples that arrive for a minute already rolled up go into the rollups as well
 * (store-sql.ts: plan, lateRollups).
 *
 * Profile stacks are kept as long as raw samples, and the same maintain() pass drops them: they have
 * no rollup. A stack's row is mostly its text, and most stacks of a minute are seen in one window of
 * one cgroup, so summing rows per minute would save little; kept as long as rollups they would be
 * kept at full size, the largest table of the store by far.
 *
 * Workload sums: the counters of series whose workload is known are also summed per batch over every
 * pod, container and peer of a workload on the node (store-sql.ts: batchSums), as rows of a numeric
 * key (workloadKey: metric, namespace, kind, workload, le), rolled up per minute over every node.
 * Beside them, which PRESENCE_METRIC series each batch had, rolled up per minute too. The workloads
 * overview of a cluster reads these (workloadSums(), placement()): a row per workload key, or per
 * pod, a minute instead of one per series (100 nodes × 100 pods: 1,000 and 10,000 rows a minute
 * instead of 270,000).
 */
import { createHash } from 'node:crypto';
import { type ProfileType } from '../profiles/model.js';

/** Labels with columns of their own: what the hub's queries filter and group by. */
export const INDEXED_LABELS = [
  'cgroup',
  'namespace',
  'pod',
  'container',
  'workload_kind',
  'workload',
  'peer_kind',
  'peer_namespace',
  'peer_workload',
  'peer',
  'peer_port',
  'direction',
  'result',
  'le',
  // the l7 collector's (src/collectors/l7/index.ts): which end saw a request, and what it was
  'side',
  'method',
  'route',
  'status_class',
  'grpc_service',
  'grpc_method',
  'grpc_status',
  'operation',
  'shape',
  'error',
  'command',
] as const;
/**
 * Indexed labels added after the first release of the stores' schema: a store made before them gets
 * them as columns when it opens, filled from each series' `labels` JSON (store-duckdb.ts, store-clickhouse.ts).
 */
export const LATER_LABELS: readonly IndexedLabel[] = ['side', 'method', 'route', 'status_class', 'grpc_service', 'grpc_method', 'grpc_status', 'operation', 'shape', 'error', 'command'];
export type IndexedLabel = (typeof INDEXED_LABELS)[number];
/** What a query may filter or group by: the node and the indexed labels (and `metric` for grouping). */
export type Column = 'node' | IndexedLabel;
export const COLUMNS: readonly Column[] = ['node', ...INDEXED_LABELS];

export type SeriesType = 'counter' | 'gauge';

export interface SeriesRow {
  id: bigint;
  node: string;
  metric: string;
  type: SeriesType;
  /** every label but node, as given (the indexed ones are read from here; missing ones are "") */
  labels: Readonly<Record<string, string>>;
}

export interface SampleRow {
  series: bigint;
  /** ms since the epoch */
  ts: number;
  value: number;
  /** counters: increase since the instance's previous sample (>= 0); gauges: null */
  delta: number | null;
}

export interface EventRow {
  /** ms since the epoch (the event's own time) */
  ts: number;
  node: string;
  type: string;
  namespace: string;
  pod: string;
  container: string;
  workload_kind: string;
  workload: string;
  cgroup: string;
  /** the whole event as JSON text */
  body: string;
}

export interface AgentReport {
  node: string;
  instance: string;
  seq: number;
  version: string;
  /** ms since the epoch: when the agent started, and when the hub received the batch */
  started: number;
  received: number;
  cgroupSubtree: string;
  /** the batch's status (collectors, capabilities, kernel) and drop counts, as JSON text */
  status: string;
}

/** One stack of a profile as the store keeps it (a row of `profile_stacks`). */
export interface ProfileRow {
  /** ms since the epoch: the end of the window the agent drained */
  ts: number;
  node: string;
  type: ProfileType;
  namespace: string;
  pod: string;
  container: string;
  workload_kind: string;
  workload: string;
  cgroup: string;
  /** the frames, root first, joined by ';' (folded text: a frame name never holds ';') */
  stack: string;
  value: number;
  /** what one unit of value stands for: cpu, nanoseconds per sample; offcpu and runq, 1 */
  period: number;
}

/** The columns of `profile_stacks`, in table order (both stores). */
export const PROFILE_COLUMNS = ['ts', 'node', 'type', 'namespace', 'pod', 'container', 'workload_kind', 'workload', 'cgroup', 'stack', 'value', 'period'] as const satisfies readonly (keyof ProfileRow)[];

/** One batch, as the hub normalised it. Applied atomically where the store can (DuckDB), and once. */
export interface BatchRows {
  report: AgentReport;
  /** the series the samples refer to (the store keeps the first sight of each id; repeats are cheap) */
  series: SeriesRow[];
  samples: SampleRow[];
  events: EventRow[];
  /** the stacks of the batch's profiles (absent: none) */
  profiles?: ProfileRow[];
}

export type Filters = Partial<Record<Column, string | readonly string[]>> & {
  /** cgroup path prefix (a cgroup and everything under it) */
  cgroupPrefix?: string;
  /** columns that must not be empty (e.g. series of pods whose workload is known) */
  nonEmpty?: readonly Column[];
  /** columns that must be empty */
  empty?: readonly Column[];
};

export interface Range {
  /** ms since the epoch, from inclusive, to exclusive */
  from: number;
  to: number;
}

export interface AggregateQuery extends Range {
  metrics: readonly string[];
  filters?: Filters;
  /** columns to group by; 'metric' is always one of them */
  groupBy: readonly Column[];
}

export interface AggregateRow {
  metric: string;
  /** the group's value of each groupBy column */
  group: Record<string, string>;
  /** sum of counter deltas in the range (0 for gauges) */
  delta: number;
  /** gauges: the average of the group's sum at each sample time is not kept; this is the mean over
   * samples in the range of each series, summed over the group's series (0 for counters) */
  avg: number;
  /** gauges: the sum over the group's series of each one's last value in the range */
  last: number;
  /** series in the group that had samples in the range */
  series: number;
}

export interface SeriesQuery extends Range {
  metric: string;
  filters?: Filters;
  /** bucket width (ms) */
  stepMs: number;
  /** columns that split the result into lines (none: one line, the sum over every matching series) */
  groupBy?: readonly Column[];
  /** most lines returned (the largest by total) */
  limit?: number;
}

export interface SeriesLine {
  group: Record<string, string>;
  /** [bucket start (ms), value]: counters the sum of deltas in the bucket; gauges the sum over series of each one's mean in the bucket */
  points: [number, number][];
}

export interface EventQuery extends Range {
  /** the event types to return; absent or empty: every type */
  types?: readonly string[];
  filters?: Filters;
  /** newest first, at most this many */
  limit: number;
}

export interface ProfileStacksQuery {
  type: ProfileType;
  /** ms since the epoch, from inclusive, to exclusive: rows whose window ended in it */
  range: Range;
  filters?: Filters;
  /** most stacks returned (the largest) */
  limit: number;
}

export interface ProfileStacks {
  /** summed by stack over the matching rows, largest first (ties by stack), at most `limit` */
  stacks: { stack: string; value: number }[];
  /** the sum of every matching row's value, the stacks left out included */
  total: number;
  /** distinct stacks past the limit, and the value they held */
  droppedStacks: number;
  droppedValue: number;
  /** the largest period of the matching rows (0: none matched) */
  period: number;
}

/** What workloadSums() groups by beside the metric (a workload's identity, and a bucket's bound). */
export const WORKLOAD_SUM_COLUMNS = ['namespace', 'workload_kind', 'workload', 'le'] as const;
/** The filters workloadSums() and placement() take (others, node among them, need aggregate(), which reads every series). */
export const WORKLOAD_SUM_FILTERS = ['namespace', 'workload_kind', 'workload'] as const;
export type WorkloadSumFilters = Partial<Record<(typeof WORKLOAD_SUM_FILTERS)[number], string | readonly string[]>>;

/**
 * The metric every cgroup an agent sees has a series of (its CPU time): where a workload runs (its
 * nodes, pods, containers and cgroups) is read from which of its series had samples in a range.
 */
export const PRESENCE_METRIC = 'periscope_cpu_seconds_total';

export interface WorkloadSumsQuery extends Range {
  metrics: readonly string[];
  filters?: WorkloadSumFilters;
}

/** A counter's deltas over a range summed over one workload's series (every node, pod, container and peer). */
export interface WorkloadSumRow {
  metric: string;
  /** the WORKLOAD_SUM_COLUMNS of the workload (le: "" but for histogram buckets) */
  group: Record<(typeof WORKLOAD_SUM_COLUMNS)[number], string>;
  delta: number;
}

/** What one workload key stands for: a counter of a workload (a histogram's bucket with its `le`). */
export interface WorkloadKeyRow {
  key: bigint;
  metric: string;
  namespace: string;
  workload_kind: string;
  workload: string;
  le: string;
}

/** A batch's deltas of one workload key, summed over the node's pods, containers and peers. */
export interface WorkloadSampleRow {
  ts: number;
  key: bigint;
  delta: number;
}

/** A series of PRESENCE_METRIC (of a known workload) seen at a time. */
export interface PresenceRow {
  ts: number;
  series: bigint;
}

/** Where a known workload ran: a cgroup of it on a node. */
export interface PlacementRow {
  node: string;
  namespace: string;
  workload_kind: string;
  workload: string;
  cgroup: string;
  pod: string;
  container: string;
}

/** The key of a workload's counter: the first 63 bits of SHA-1 over its parts, as seriesId. */
export function workloadKey(metric: string, namespace: string, kind: string, workload: string, le: string): bigint {
  const h = createHash('sha1');
  for (const part of [metric, namespace, kind, workload, le]) h.update(part).update('\u0000');
  return h.digest().readBigUInt64BE(0) >> 1n;
}

export interface StoreOptions {
  /** how long raw samples, events, profile stacks and agent reports are kept (ms) */
  rawRetentionMs: number;
  /** how long 1-minute rollups are kept (ms) */
  rollupRetentionMs: number;
}

export interface MaintainResult {
  /** minutes rolled up now */
  minutesRolledUp: number;
  /** raw samples dropped (best estimate where the store drops whole partitions) */
  droppedParts: number;
}

export interface Store {
  readonly kind: 'duckdb' | 'clickhouse';
  /** where it is, for the banner and /api/v1/health (no secrets) */
  readonly location: string;
  /** Connects, creates what is missing (tables), and checks it can write. */
  open(): Promise<void>;
  close(): Promise<void>;
  /**
   * Applies a batch unless the store already holds one of the same instance with this seq or a
   * higher one. Returns whether it applied it. Batches are applied in the order of the calls, also
   * when a call comes before the previous one has settled (a store may write waiting batches
   * together: DuckDB commits them in one transaction).
   */
  apply(rows: BatchRows): Promise<boolean>;
  /** The highest seq applied for an agent instance (0: none). */
  lastSeq(instance: string): Promise<number>;
  /**
   * The newest report of each node (reports newer than `since`, if given; none older than raw
   * retention before `now`, the hub's clock, where the store keeps older ones).
   */
  nodes(since?: number, now?: number): Promise<AgentReport[]>;
  /** Distinct values of a column among series with samples in the range (e.g. namespaces). */
  distinct(column: Column, range: Range, filters?: Filters): Promise<string[]>;
  /** Sums per group over the range, in no particular order. */
  aggregate(q: AggregateQuery): Promise<AggregateRow[]>;
  series(q: SeriesQuery): Promise<SeriesLine[]>;
  /**
   * Counter deltas over the range of the series whose workload is known, summed per workload (over
   * every node, pod, container and peer) and per histogram bucket, in no particular order. The same
   * totals as aggregate() grouped by WORKLOAD_SUM_COLUMNS with a non-empty workload, from a table a
   * few hundred times smaller.
   */
  workloadSums(q: WorkloadSumsQuery): Promise<WorkloadSumRow[]>;
  /** The cgroups of known workloads whose PRESENCE_METRIC series had samples in the range. */
  placement(q: Range & { filters?: WorkloadSumFilters }): Promise<PlacementRow[]>;
  events(q: EventQuery): Promise<EventRow[]>;
  /**
   * A profile of one type over a range: the values of the stacks whose window ended in it, summed by
   * stack over the rows the filters select (every node, cgroup and window), the largest `limit`.
   * Profile rows go in with their batch (apply(): BatchRows.profiles), nowhere else, so they are
   * stored once per batch like the rest.
   */
  profile(q: ProfileStacksQuery): Promise<ProfileStacks>;
  /** Rolls up closed minutes and drops data past retention. Idempotent; safe to call at any time. */
  maintain(now: number): Promise<MaintainResult>;
  /** Bytes the store takes (on disk where it can tell). */
  size(): Promise<number>;
}

/** The id of a series: the first 63 bits of SHA-1 over node, metric and the sorted labels. */
export function seriesId(node: string, metric: string, labels: Readonly<Record<string, string>>): bigint {
  const h = createHash('sha1');
  h.update(node).update('\u0000').update(metric);
  for (const k of Object.keys(labels).sort()) h.update('\u0000').update(k).update('=').update(labels[k]!);
  return h.digest().readBigUInt64BE(0) >> 1n;
}
