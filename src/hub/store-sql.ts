/**
 * SQL both stores share: the WHERE clauses of a query's filters, and the rules of which table a range
 * reads. Values never enter the SQL text here: each store passes `bind`, which records the value and
 * returns its placeholder (DuckDB: a `?` parameter; ClickHouse: store-clickhouse.ts says why it
 * quotes). Column names come only from COLUMNS, checked here.
 */
import { COLUMNS, type Column, type Filters } from './store.js';
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

/**
 * Where a range is read from: rollups for [from, rollupTo) when the range starts before raw retention
 * (rollups hold the minutes before the rollup watermark), and raw samples for [rawFrom, to).
 */
export function plan(from: number, to: number, now: number, rawRetentionMs: number, watermark: number): { rollupTo: number | undefined; rawFrom: number } {
  if (from >= now - rawRetentionMs || watermark <= from) return { rollupTo: undefined, rawFrom: from };
  const rollupTo = Math.min(to, watermark);
  return { rollupTo, rawFrom: Math.max(from, rollupTo) };
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
