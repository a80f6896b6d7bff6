/**
 * SQL both stores share: the WHERE clauses of a query's filters, and the rules of which table a range
 * reads. Values never enter the SQL text here: each store passes `bind`, which records the value and
 * returns its placeholder (DuckDB: a `?` parameter; ClickHouse: store-clickhouse.ts says why it
 * quotes). Column names come only from COLUMNS, checked here.
 */
import { COLUMNS, type AggregateRow, type Column, type Filters, type SampleRow } from './store.js';
import { PeriscopeError } from '../kernel/errors.js';

export type Bind = (value: string | number) => string;

/** Refuses a column that is not one of COLUMNS (the only names that enter SQL). */
export function checkColumn(c: string): Column {
  if (!(COLUMNS as readonly string[]).includes(c)) throw new PeriscopeError('BAD_ARGUMENT', `unknown column "${c}"`, `choose from ${COLUMNS.join(', ')}`);
  return c as Column;
}

/** `col IN (...)` with one placeholder per value (an empty list matches nothing). */
export function inList(column: string, values: readonly (string | number)[], bind: Bind): string {
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
export function plan(from: number, to: number, now: number, rawRetentionMs: number, watermark: number): { rollup?: [number, number]; raw: [number, number][] } {
  const rf = Math.ceil(from / MINUTE) * MINUTE;
  const rt = Math.min(Math.floor(to / MINUTE) * MINUTE, watermark);
  if (rt <= rf || (from >= now - rawRetentionMs && to - from < ROLLUP_SPAN_MS)) return { raw: [[from, to]] };
  return { rollup: [rf, rt], raw: [[from, rf], [rt, to]].filter(([a, b]) => b! > a!) as [number, number][] };
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
