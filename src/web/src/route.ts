/**
 * The UI's state lives in the URL (after the `#`), so that a link reopens the same view: the view,
 * what it shows (a workload, a namespace filter, ...), the time range and the refresh interval.
 * `#/workload?namespace=shop&kind=Deployment&workload=cart&from=-1h&refresh=10`. Pure functions: the
 * Node tests hold them to examples (test/web/route.test.ts).
 */

export const VIEWS = ['overview', 'workload', 'map', 'events', 'nodes'] as const;
export type View = (typeof VIEWS)[number];

/** Relative ranges the picker offers (the hub takes any `-<n><unit>`, RFC 3339 or `now`). */
export const RANGES = ['-5m', '-15m', '-1h', '-6h', '-24h', '-7d'] as const;
/** Refresh intervals in seconds (0: off). */
export const REFRESHES = [0, 2, 5, 10, 30, 60] as const;

export const DEFAULT_FROM = '-15m';
export const DEFAULT_REFRESH = 10;

export interface Route {
  view: View;
  /** the view's own parameters (namespace, workload, type, ...), in the order given */
  params: Record<string, string>;
  from: string;
  /** '' for now */
  to: string;
  /** seconds between refreshes; 0: off */
  refresh: number;
}

const RELATIVE = /^-\d{1,6}(?:s|m|h|d|w)$/;
const ABSOLUTE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})$/;

/** A time the hub takes for from/to, or undefined: the UI never sends the hub something it refuses. */
export function validTime(v: string): boolean {
  return v === 'now' || RELATIVE.test(v) || (ABSOLUTE.test(v) && Number.isFinite(Date.parse(v)));
}

const MAX_PARAM = 512;

/** Reads a location hash (`#/view?query`); anything unknown or malformed falls back to the defaults. */
export function parseHash(hash: string): Route {
  const raw = hash.replace(/^#/, '');
  const q = raw.indexOf('?');
  const path = (q < 0 ? raw : raw.slice(0, q)).replace(/^\/+|\/+$/g, '');
  const search = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const view: View = (VIEWS as readonly string[]).includes(path) ? (path as View) : 'overview';
  const params: Record<string, string> = {};
  let from = DEFAULT_FROM;
  let to = '';
  let refresh: number = DEFAULT_REFRESH;
  for (const [k, v] of search) {
    if (v.length > MAX_PARAM || k.length > 64) continue;
    if (k === 'from') from = validTime(v) ? v : DEFAULT_FROM;
    else if (k === 'to') to = v === 'now' || !validTime(v) ? '' : v;
    else if (k === 'refresh') refresh = (REFRESHES as readonly number[]).includes(Number(v)) ? Number(v) : DEFAULT_REFRESH;
    else if (v !== '') params[k] = v;
  }
  // a fixed end does not move: refreshing it would show the same thing
  if (to !== '') refresh = 0;
  return { view, params, from, to, refresh };
}

/** The hash for a route: defaults left out, so links stay short. */
export function formatHash(r: Route): string {
  const s = new URLSearchParams();
  for (const [k, v] of Object.entries(r.params)) if (v !== '') s.set(k, v);
  if (r.from !== DEFAULT_FROM) s.set('from', r.from);
  if (r.to !== '') s.set('to', r.to);
  if (r.refresh !== DEFAULT_REFRESH && r.to === '') s.set('refresh', String(r.refresh));
  const qs = s.toString();
  return `#/${r.view}${qs ? `?${qs}` : ''}`;
}

/** A route to a view, keeping the time range and refresh of the current one. */
export function go(current: Route, view: View, params: Record<string, string> = {}): Route {
  return { view, params, from: current.from, to: current.to, refresh: current.refresh };
}

/** The time range as the hub's query parameters. */
export function rangeQuery(r: Route): Record<string, string> {
  return r.to ? { from: r.from, to: r.to } : { from: r.from };
}

/** The range's length in seconds, from its parameters and now (for rates and chart steps). */
export function rangeSeconds(r: Route, now = Date.now()): number {
  const at = (v: string, dflt: number): number => {
    if (v === '' || v === 'now') return dflt;
    const m = /^-(\d+)([smhdw])$/.exec(v);
    if (m) return now - Number(m[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86_400e3, w: 604_800e3 }[m[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return Date.parse(v);
  };
  return Math.max(1, (at(r.to, now) - at(r.from, now)) / 1000);
}

/** A label for a relative range: "last 15 minutes". */
export function rangeLabel(from: string): string {
  const m = /^-(\d+)([smhdw])$/.exec(from);
  if (!m) return from;
  const n = Number(m[1]);
  const unit = { s: 'second', m: 'minute', h: 'hour', d: 'day', w: 'week' }[m[2] as 's' | 'm' | 'h' | 'd' | 'w'];
  return `last ${n === 1 ? '' : `${n} `}${unit}${n === 1 ? '' : 's'}`;
}
