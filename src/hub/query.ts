/**
 * The query parameters the hub's API shares: time ranges (RFC 3339 or relative to now, `-15m`), steps,
 * limits and the label filters. Every mistake is a 400 that names the parameter and what it takes.
 */
import { badQuery, intParam, listParam } from '../server/http.js';
import { type Column, type Filters, INDEXED_LABELS, type Range } from './store.js';

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
const RELATIVE = /^-(\d{1,9}(?:\.\d{1,6})?)(ms|s|m|h|d|w)$/;
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})$/;
/** the longest range a query may cover */
export const MAX_RANGE_MS = 400 * 86_400_000;

/** A time: `now`, relative (`-15m`, `-2h`, `-30s`, `-7d`) or RFC 3339 (`2026-11-28T10:00:00Z`). */
export function parseTime(raw: string, now: number, name: string): number {
  if (raw === 'now') return now;
  const rel = RELATIVE.exec(raw);
  if (rel) return now - Number(rel[1]) * UNITS[rel[2]!]!;
  if (RFC3339.test(raw)) {
    const t = Date.parse(raw.replace(' ', 'T'));
    if (Number.isFinite(t)) return t;
  }
  throw badQuery(`${name}="${raw.slice(0, 60)}" is not a time`, `give RFC 3339 (2026-11-28T10:00:00Z), a time relative to now (-15m, -2h, -7d) or "now"`);
}

/** A duration: `30s`, `5m`, `1h`, or a number of seconds. */
export function parseDuration(raw: string, name: string): number {
  const m = /^(\d{1,9}(?:\.\d{1,6})?)(ms|s|m|h|d|w)?$/.exec(raw);
  if (!m) throw badQuery(`${name}="${raw.slice(0, 60)}" is not a duration`, 'give seconds (60) or a number with a unit: 30s, 5m, 1h');
  return Number(m[1]) * UNITS[m[2] ?? 's']!;
}

/** `from` and `to` of a query (default: the last `defaultMs` up to now). */
export function parseRange(q: URLSearchParams, now: number, defaultMs = 15 * 60_000, fromMs?: number): Range {
  const to = q.has('to') ? parseTime(q.get('to')!, now, 'to') : now;
  const from = fromMs ?? (q.has('from') ? parseTime(q.get('from')!, now, 'from') : to - defaultMs);
  // a time past what Date can show (-999999999w) is named by its milliseconds
  const show = (t: number): string => (Math.abs(t) <= 8.64e15 ? new Date(t).toISOString() : `${t} ms`);
  if (!(from < to)) throw badQuery(`from (${show(from)}) is not before to (${show(to)})`, 'give a from earlier than to');
  if (to - from > MAX_RANGE_MS) throw badQuery(`the range covers ${Math.round((to - from) / 86_400_000)} days, more than the 400 a query may`, 'narrow from and to');
  return { from, to };
}

/** Equality filters on the attribution columns, and `cgroup` as a path prefix. Values may repeat or be comma lists. */
export function parseFilters(q: URLSearchParams): Filters {
  const f: Filters = {};
  for (const k of ['node', 'namespace', 'pod', 'container', 'workload', 'workload_kind'] as const) {
    const v = listParam(q, k);
    if (v.length > 100) throw badQuery(`${k} lists ${v.length} values, more than 100`, 'ask for fewer at once');
    if (v.length === 1) f[k] = v[0]!;
    else if (v.length > 1) f[k] = v;
  }
  const cgroup = q.get('cgroup');
  if (cgroup !== null) {
    if (!cgroup.startsWith('/')) throw badQuery(`cgroup="${cgroup.slice(0, 60)}" is not a cgroup path`, 'give a path under the cgroup2 root, starting with /');
    f.cgroupPrefix = cgroup;
  }
  return f;
}

export function limitParam(q: URLSearchParams, dflt: number, max: number): number {
  return intParam(q.get('limit'), 'limit', max) ?? dflt;
}

/** One of a fixed set of values, or a 400 that lists them. */
export function choice<T extends string>(q: URLSearchParams, name: string, allowed: readonly T[], dflt: T, aliases: Record<string, T> = {}): T {
  const raw = q.get(name);
  if (raw === null) return dflt;
  const v = (aliases[raw] ?? raw) as T;
  if (!allowed.includes(v)) throw badQuery(`${name}="${raw.slice(0, 60)}" is not one of ${allowed.join(', ')}`, `give ${name}=${allowed.join('|')}`);
  return v;
}

/** Indexed labels parseFilters takes itself, or that are no filter (a histogram's bound). */
const NOT_LABEL_FILTERS = new Set<Column>(['cgroup', 'namespace', 'pod', 'container', 'workload_kind', 'workload', 'le']);
/** Labels of series that /api/v1/series filters by beside parseFilters' (the peer's, and the l7 collector's). */
export const LABEL_FILTERS: readonly Column[] = INDEXED_LABELS.filter((c) => !NOT_LABEL_FILTERS.has(c));
/** the longest value a label filter takes (the l7 collector keeps 256 characters of a label) */
export const MAX_LABEL_VALUE = 1024;

/**
 * Exact filters on LABEL_FILTERS. A value is taken whole, commas and all (a route or an SQL shape may
 * hold commas): several values repeat the parameter. At most 100 values of a label, each at most
 * MAX_LABEL_VALUE characters; an empty value matches series without the label.
 */
export function parseLabelFilters(q: URLSearchParams): Filters {
  const f: Filters = {};
  for (const k of LABEL_FILTERS) {
    const v = q.getAll(k);
    if (v.length === 0) continue;
    if (v.length > 100) throw badQuery(`${k} is given ${v.length} times, more than 100`, 'ask for fewer at once');
    const long = v.find((x) => x.length > MAX_LABEL_VALUE);
    if (long !== undefined) throw badQuery(`${k} is ${long.length} characters long, more than ${MAX_LABEL_VALUE}`, `give a value the agent could have sent (at most ${MAX_LABEL_VALUE} characters)`);
    f[k] = v.length === 1 ? v[0]! : v;
  }
  return f;
}

/** Refuses parameters a route does not take (a typo would otherwise be ignored and answer something else). */
export function onlyParams(q: URLSearchParams, allowed: readonly string[]): void {
  for (const k of new Set(q.keys())) {
    if (!allowed.includes(k)) throw badQuery(`unknown parameter "${k.slice(0, 60)}"`, `this route takes ${allowed.join(', ')}`);
  }
}

/** One value of a parameter (a repeated one is a 400), of at most `max` characters; undefined if absent. */
export function singleParam(q: URLSearchParams, name: string, max: number): string | undefined {
  const v = q.getAll(name);
  if (v.length === 0) return undefined;
  if (v.length > 1) throw badQuery(`${name} is given ${v.length} times`, `give one ${name}`);
  if (v[0]!.length > max) throw badQuery(`${name} is ${v[0]!.length} characters long, more than ${max}`, `give a ${name} of at most ${max} characters`);
  return v[0];
}
