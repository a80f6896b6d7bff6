/**
 * GET /api/v1/profiles on the agent and on the hub: the same parameters, the same answers.
 *
 *   type=cpu|offcpu|runq   (default cpu)
 *   from, to               RFC 3339, relative to now (-15m) or "now"; default the last 15 minutes
 *   namespace, workload, workload_kind, pod, container, node   exact (a value may be a comma list);
 *                          workload=NS/NAME and pod=NS/NAME name the namespace too
 *   cgroup=/PATH           a cgroup subtree
 *   format=json|folded|pprof   (default json; pprof is gzip'd protobuf)
 *   limit=N                the N largest stacks (default 10,000, at most 100,000); the rest are
 *                          summed in `dropped` (json) or left out (folded, pprof)
 */
import { type ServerResponse } from 'node:http';
import { badQuery } from '../server/http.js';
import { choice, onlyParams, parseFilters, parseRange } from '../hub/query.js';
import { type Filters } from '../hub/store.js';
import { PROFILE_TYPES, profileJson, toFolded, type Profile, type ProfileType } from './model.js';
import { toPprof } from './pprof.js';

export const PROFILE_FORMATS = ['json', 'folded', 'pprof'] as const;
export type ProfileFormat = (typeof PROFILE_FORMATS)[number];

export interface ProfileQuery {
  type: ProfileType;
  from: number;
  to: number;
  filters: Filters;
  format: ProfileFormat;
  limit: number;
}

export const PROFILE_PARAMS = ['type', 'from', 'to', 'namespace', 'workload', 'workload_kind', 'pod', 'container', 'node', 'cgroup', 'format', 'limit'];
export const DEFAULT_PROFILE_LIMIT = 10_000;
export const MAX_PROFILE_LIMIT = 100_000;

export function parseProfileQuery(q: URLSearchParams, now: number): ProfileQuery {
  onlyParams(q, PROFILE_PARAMS);
  const type = choice(q, 'type', PROFILE_TYPES, 'cpu');
  const format = choice(q, 'format', PROFILE_FORMATS, 'json');
  const { from, to } = parseRange(q, now);
  const filters = parseFilters(q);
  // workload=NS/NAME and pod=NS/NAME carry their namespace
  for (const k of ['workload', 'pod'] as const) {
    const v = filters[k];
    if (typeof v !== 'string' || !v.includes('/')) continue;
    const [ns, name, ...rest] = v.split('/');
    if (rest.length || !ns || !name) throw badQuery(`${k}="${v.slice(0, 80)}" is neither NAME nor NAMESPACE/NAME`, `give ${k}=NAME (with namespace=NS) or ${k}=NS/NAME`);
    if (filters.namespace !== undefined && filters.namespace !== ns) throw badQuery(`${k}="${v.slice(0, 80)}" names namespace ${ns} but namespace=${String(filters.namespace)}`, 'give the namespace once');
    filters.namespace = ns;
    filters[k] = name;
  }
  const raw = q.get('limit');
  let limit = DEFAULT_PROFILE_LIMIT;
  if (raw !== null) {
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isInteger(n) || n < 1) throw badQuery(`limit must be a positive integer, not "${raw.slice(0, 40)}"`, `give 1 to ${MAX_PROFILE_LIMIT}`);
    limit = Math.min(n, MAX_PROFILE_LIMIT);
  }
  return { type, from, to, filters, format, limit };
}

/** Does a set of labels pass the filters (the agent's check; the hub's store filters in SQL)? */
export function matchesFilters(labels: Readonly<Record<string, string>>, f: Filters): boolean {
  for (const k of ['node', 'namespace', 'pod', 'container', 'workload', 'workload_kind'] as const) {
    const want = f[k];
    if (want === undefined) continue;
    const have = labels[k] ?? '';
    if (Array.isArray(want) ? !want.includes(have) : want !== have) return false;
  }
  if (f.cgroupPrefix !== undefined) {
    const c = labels.cgroup ?? '';
    const p = f.cgroupPrefix.replace(/\/+$/, '');
    if (!(c === p || c.startsWith(`${p}/`) || p === '')) return false;
  }
  return true;
}

/** Writes a profile in the asked format. */
export function sendProfile(res: ServerResponse, p: Profile, format: ProfileFormat): void {
  let body: Buffer;
  let type: string;
  if (format === 'folded') {
    body = Buffer.from(toFolded(p));
    type = 'text/plain; charset=utf-8';
  } else if (format === 'pprof') {
    body = toPprof(p);
    type = 'application/octet-stream';
  } else {
    body = Buffer.from(JSON.stringify(profileJson(p)));
    type = 'application/json; charset=utf-8';
  }
  const headers: Record<string, string> = { 'content-type': type, 'content-length': String(body.length) };
  if (format === 'pprof') headers['content-disposition'] = `attachment; filename="${p.type}.pb.gz"`;
  res.writeHead(200, headers);
  res.end(body);
}
