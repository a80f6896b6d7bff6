/**
 * SQL both stores share: the WHERE clauses of a query's filters, and the rules of which table a range
 * reads. Values never enter the SQL text here: each store passes `bind`, which records the value and
 * returns its placeholder (DuckDB: a `?` parameter; ClickHouse: store-clickhouse.ts says why it
 * quotes). Column names come only from COLUMNS, checked here.
 */
import {
  COLUMNS,
  PRESENCE_METRIC,
  WORKLOAD_SUM_COLUMNS,
  workloadKey,
  type AggregateRow,
  type BatchRows,
  type Column,
  type Filters,
  type PlacementRow,
  type PresenceRow,
  type ProfileStacks,
  type ProfileStacksQuery,
  type SampleRow,
  type SeriesRow,
  type WorkloadKeyRow,
  type WorkloadSampleRow,
  type WorkloadSumRow,
} from './store.js';
import { PeriscopeError } from '../kernel/errors.js';

export type Bind = (value: string | number | bigint) => string;

/** Refuses a column that is not one of COLUMNS (the only names that enter SQL). */
export function checkColumn(c: string): Column {
  if (!(COLUMNS as readonly string[]).includes(c)) throw new PeriscopeError('BAD_ARGUMENT', `unknown column "${c}"`, `choose from ${COLUMNS.join(', ')}`);
  return c as Column;
}

/** `col IN (...)` with one placeholder per value (an empty list matches nothing). */
export function inList(column: string, values: readonly (string | number | bigint)[], bind: Bind): string {
  return values.length === 0 ? '0 = 1' : `${column} IN (${values.map(bind).join(', ')})`;
}

/**
 * The conditions of `filters` on a table with the columns `has` (others match nothing: an event has
 * no peer). `like` is the dialect's prefix test.
 */
export function filterSql(filters: Filters | undefined, bind: Bind, like: (column: string, prefix: string) => string, has: readonly string[] = COLUMNS): string[] {
  const out: string[] = [];
  if (!filters) return out;
  for (const [k, v] of Object.entries(filters)) {
    if (v === undefined) continue;
    if (k === 'cgroupPrefix') {
      out.push(has.includes('cgroup') ? like('cgroup', v as string) : '0 = 1');
      continue;
    }
    if (k === 'nonEmpty' || k === 'empty') {
      for (const col of v as readonly string[]) {
        const c = checkColumn(col);
        // a column the table lacks is empty everywhere
        out.push(has.includes(c) ? `${c} ${k === 'empty' ? '=' : '<>'} ''` : k === 'empty' ? '1 = 1' : '0 = 1');
      }
      continue;
    }
    const c = checkColumn(k);
    if (!has.includes(c)) out.push('0 = 1');
    else out.push(inList(c, typeof v === 'string' ? [v] : (v), bind));
  }
  return out;
}

/** Escapes LIKE's wildcards so a prefix matches literally (escape character: backslash). */
export function likePrefix(prefix: string): string {
  return `${prefix.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
}

export const MINUTE = 60_000;
/** How long after a minute ends maintain() waits before rolling it up (batches a little late). */
export const ROLLUP_GRACE_MS = 30_000;

/** Ranges at least this long read the rollups for their closed minutes even inside raw retention. */
export const ROLLUP_SPAN_MS = 15 * MINUTE;

/**
 * Where a range is read from. Rollups hold whole minutes before the rollup watermark; they serve the
 * whole minutes of the range inside [from, watermark) when the range starts before raw retention
 * (raw samples are gone there) or is long (ROLLUP_SPAN_MS: a 60th of the rows to read). Raw samples
 * serve the rest: the partial minute at the start and everything from the end of the rollups on.
 * Counter totals, means and last values are the same either way; only late samples of a minute
 * already rolled up are seen by raw reads alone.
 */
export function plan(from: number, to: number, now: number, rawRetentionMs: number, watermark: number, spanMs = ROLLUP_SPAN_MS): { rollup?: [number, number]; raw: [number, number][] } {
  const rf = Math.ceil(from / MINUTE) * MINUTE;
  const rt = Math.min(Math.floor(to / MINUTE) * MINUTE, watermark);
  if (rt <= rf || (from >= now - rawRetentionMs && to - from < spanMs)) return { raw: [[from, to]] };
  return { rollup: [rf, rt], raw: [[from, rf], [rt, to]].filter(([a, b]) => b! > a!) as [number, number][] };
}

/** One table's part of a range read by rangeParts(): the table, what to select, and a condition. */
export interface TablePart {
  from: string;
  select: string;
  where: string;
}

/**
 * A range's rows from a raw table (by `ts`) and its minute rollup (by `minute`), as one UNION ALL:
 * every whole minute already rolled up (below the watermark) is read from the rollup, which holds
 * late batches too; a part per raw range (an OR of ranges defeats DuckDB's zone maps).
 */
export function rangeParts(range: { from: number; to: number }, now: number, rawRetentionMs: number, watermark: number, bind: Bind, raw: TablePart, rollup: TablePart): string {
  const { rollup: r, raw: rs } = plan(range.from, range.to, now, rawRetentionMs, watermark, 0);
  const parts = rs.map(([a, b]) => `SELECT ${raw.select} FROM ${raw.from} WHERE ts >= ${bind(a)} AND ts < ${bind(b)} AND ${raw.where}`);
  if (r) parts.push(`SELECT ${rollup.select} FROM ${rollup.from} WHERE minute >= ${bind(r[0])} AND minute < ${bind(r[1])} AND ${rollup.where}`);
  return parts.join(' UNION ALL ');
}

/**
 * Samples of minutes already rolled up (a batch that arrives late: an agent's backlog after an outage)
 * as rollup rows of their own, one per sample, so reads of the rollups see them too. A minute may then
 * have several rows of a series: sums and counts add up; its last value is any of them.
 */
export function lateRollups(samples: readonly SampleRow[], watermark: number): RollupRow[] {
  const out: RollupRow[] = [];
  for (const s of samples)
    if (s.ts < watermark) {
      const v = s.value;
      out.push({ minute: Math.floor(s.ts / MINUTE) * MINUTE, series: s.series, delta_sum: s.delta ?? 0, value_sum: v, value_count: 1, value_last: v, value_min: v, value_max: v });
    }
  return out;
}

/** What a batch adds to the workload tables (store.ts): sums per workload key, the keys, presence. */
export interface BatchSums {
  sums: WorkloadSampleRow[];
  /** every key the sums use (the store writes those it does not know yet) */
  keys: WorkloadKeyRow[];
  presence: PresenceRow[];
}

/**
 * A batch's counter deltas summed per workload key (over the series whose workload is known: every
 * pod, container and peer of it on the batch's node), and the samples of PRESENCE_METRIC of known
 * workloads. Samples and series may be parallel arrays (the hub's batches are) or not.
 */
export function batchSums(b: BatchRows): BatchSums {
  const parallel = b.series.length === b.samples.length;
  let byId: Map<bigint, SeriesRow> | undefined;
  const out: BatchSums = { sums: [], keys: [], presence: [] };
  const epoch = ++batches;
  // sums of a time other than the batch's first sample's (none in the hub's batches), by time and slot
  let others: Map<number, Map<Slot, WorkloadSampleRow>> | undefined;
  const ts0 = b.samples[0]?.ts;
  for (let i = 0; i < b.samples.length; i++) {
    const s = b.samples[i]!;
    let row = parallel ? b.series[i] : undefined;
    if (row?.id !== s.series) row = (byId ??= new Map(b.series.map((r) => [r.id, r]))).get(s.series);
    if (row === undefined) continue;
    const slot = slotOf(row);
    if (slot === null) continue;
    if (row.metric === PRESENCE_METRIC) out.presence.push({ ts: s.ts, series: s.series });
    if (!s.delta) continue;
    if (slot.epoch !== epoch) {
      // the slot's first sample in this batch
      slot.epoch = epoch;
      slot.sum = undefined;
      out.keys.push(slot.key);
    }
    if (s.ts === ts0) {
      if (slot.sum) slot.sum.delta += s.delta;
      else out.sums.push((slot.sum = { ts: s.ts, key: slot.key.key, delta: s.delta }));
      continue;
    }
    others ??= new Map<number, Map<Slot, WorkloadSampleRow>>();
    let byTs = others.get(s.ts);
    if (!byTs) others.set(s.ts, (byTs = new Map<Slot, WorkloadSampleRow>()));
    const sum = byTs.get(slot);
    if (sum) sum.delta += s.delta;
    else {
      const r = { ts: s.ts, key: slot.key.key, delta: s.delta };
      byTs.set(slot, r);
      out.sums.push(r);
    }
  }
  return out;
}

/** A workload key as batchSums() accumulates it: the batch it last counted in, and its sum there. */
interface Slot {
  key: WorkloadKeyRow;
  epoch: number;
  sum: WorkloadSampleRow | undefined;
}

/** batchSums() calls so far: a slot whose epoch is not the current call's has no sum of this batch yet. */
let batches = 0;

/** Slots by their key's parts, shared by every series of the key; bounded (past the limit it starts over). */
const slots = new Map<string, Slot>();
const SLOTS_MAX = 100_000;
/** A series row's slot (null: a gauge, or no workload), kept on the row: a property read beats a WeakMap's lookup. */
const SLOT = Symbol('workload slot');
type Keyed = SeriesRow & { [SLOT]?: Slot | null };

function slotOf(row: Keyed): Slot | null {
  let slot = row[SLOT];
  if (slot === undefined) {
    const l = row.labels;
    slot = null;
    if (row.type === 'counter' && l.workload) {
      const parts = [row.metric, l.namespace ?? '', l.workload_kind ?? '', l.workload, l.le ?? ''] as const;
      const text = parts.join('\u0000');
      slot = slots.get(text) ?? null;
      if (slot === null) {
        if (slots.size >= SLOTS_MAX) slots.clear();
        slot = { key: { key: workloadKey(...parts), metric: parts[0], namespace: parts[1], workload_kind: parts[2], workload: parts[3], le: parts[4] }, epoch: 0, sum: undefined };
        slots.set(text, slot);
      }
    }
    // not enumerable: the row compares and copies as it was
    Object.defineProperty(row, SLOT, { value: slot, writable: true });
  }
  return slot;
}

/**
 * The rows of workload_samples for a batch: each key's sum, and each presence as a row keyed by the
 * series id with a null delta (one table: each table a batch writes to costs the store a fixed
 * price per batch). The two kinds of key cannot meet but by a 63-bit hash collision.
 */
export function workloadTableRows(sums: readonly WorkloadSampleRow[], presence: readonly PresenceRow[]): { ts: number; key: bigint; delta: number | null }[] {
  return [...sums, ...presence.map((p) => ({ ts: p.ts, key: p.series, delta: null }))];
}

/** Rows of workload_samples of minutes already rolled up (a late batch) as workload_1m rows of their own (see lateRollups). */
export function lateWorkloadRows(rows: readonly { ts: number; key: bigint; delta: number | null }[], watermark: number): { minute: number; key: bigint; delta_sum: number | null }[] {
  return rows.filter((r) => r.ts < watermark).map((r) => ({ minute: Math.floor(r.ts / MINUTE) * MINUTE, key: r.key, delta_sum: r.delta }));
}

/** A row of a placement() query as the store interface returns it. */
export function placementRow(r: Record<string, unknown>): PlacementRow {
  const v = (k: string): string => r[k] as string;
  return { node: v('node'), namespace: v('namespace'), workload_kind: v('workload_kind'), workload: v('workload'), cgroup: v('cgroup'), pod: v('pod'), container: v('container') };
}

/** A row of a workloadSums() query (metric, the WORKLOAD_SUM_COLUMNS, d) as the store interface returns it. */
export function workloadSumRow(r: Record<string, unknown>): WorkloadSumRow {
  return {
    metric: r.metric as string,
    group: Object.fromEntries(WORKLOAD_SUM_COLUMNS.map((c) => [c, r[c] as string])) as WorkloadSumRow['group'],
    delta: Number(r.d),
  };
}

export interface RollupRow {
  minute: number;
  series: bigint;
  delta_sum: number;
  value_sum: number;
  value_count: number;
  value_last: number;
  value_min: number;
  value_max: number;
}

/** Groups rows into lines, keeps the `limit` largest by total, fills each line's points in bucket order. */
export function toLines(rows: { group: Record<string, string>; bucket: number; value: number }[], limit: number | undefined): { group: Record<string, string>; points: [number, number][] }[] {
  const lines = new Map<string, { group: Record<string, string>; points: [number, number][]; total: number }>();
  for (const r of rows) {
    const key = JSON.stringify(r.group);
    let l = lines.get(key);
    if (!l) lines.set(key, (l = { group: r.group, points: [], total: 0 }));
    l.points.push([r.bucket, r.value]);
    l.total += Math.abs(r.value);
  }
  let out = [...lines.values()];
  if (limit !== undefined) out = out.sort((a, b) => b.total - a.total).slice(0, limit);
  return out.map((l) => ({ group: l.group, points: l.points.sort((a, b) => a[0] - b[0]) }));
}

/** A row of an aggregate query (metric, type, the group's columns, d, a, l, n) as the store interface returns it. */
export function aggregateRow(r: Record<string, unknown>, groups: readonly string[]): AggregateRow {
  const counter = r.type === 'counter';
  return {
    metric: r.metric as string,
    group: Object.fromEntries(groups.map((g) => [g, r[g] as string])),
    delta: counter ? Number(r.d) : 0,
    avg: counter ? 0 : Number(r.a),
    last: counter ? 0 : Number(r.l),
    series: Number(r.n),
  };
}

/** The columns of `profile_stacks` a query filters by (as events: no peer, no l7 labels). */
export const PROFILE_FILTER_COLUMNS = ['node', 'namespace', 'pod', 'container', 'workload_kind', 'workload', 'cgroup'];
/** Most stacks profile() returns, whatever it is asked (the hub's API takes no more either). */
export const MAX_PROFILE_STACKS = 100_000;

/** The WHERE clause of a profile() query on `profile_stacks`: the type, the range by window end, the filters. */
export function profileWhere(q: ProfileStacksQuery, bind: Bind, like: (column: string, prefix: string) => string): string {
  return [`type = ${bind(q.type)}`, `ts >= ${bind(q.range.from)}`, `ts < ${bind(q.range.to)}`, ...filterSql(q.filters, bind, like, PROFILE_FILTER_COLUMNS)].join(' AND ');
}

/** profile()'s LIMIT: whole, at least 0, at most MAX_PROFILE_STACKS. */
export function profileLimit(limit: number): number {
  return Math.min(MAX_PROFILE_STACKS, Math.max(0, Math.floor(Number.isFinite(limit) ? limit : MAX_PROFILE_STACKS)));
}

/**
 * profile()'s answer from the largest stacks (rows of stack and v, largest first) and what the store
 * counted over every stack: how many there were, the sum of their values and the largest period.
 */
export function profileStacks(top: readonly Record<string, unknown>[], distinct: number, total: number, period: number): ProfileStacks {
  const stacks = top.map((r) => ({ stack: r.stack as string, value: Number(r.v) }));
  let kept = 0;
  for (const s of stacks) kept += s.value;
  return {
    stacks,
    total,
    droppedStacks: Math.max(0, distinct - stacks.length),
    // the same sums in another order may differ in the last bits: nothing dropped is exactly 0
    droppedValue: distinct > stacks.length ? Math.max(0, total - kept) : 0,
    period,
  };
}
