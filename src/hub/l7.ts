/**
 * What the hub makes of the l7 collector's series (src/collectors/l7/index.ts): requests, errors and
 * latency quantiles per service-map edge and per route (or gRPC method, SQL shape, Redis command) of
 * a workload. Each request is counted by the side that captured it (`side`: client or server), so a
 * request between two selected workloads is in the store twice; an edge takes the client's series
 * and falls back on the server's only where no client side was observed (the client outside the
 * selection, or on a node without an agent).
 */
import { type L7Protocol, type RequestRow, type RequestStats } from '../wire/hub.js';
import { histogramQuantile } from './workloads.js';
import { type AggregateRow, type Column } from './store.js';

interface ProtocolDef {
  counter: string;
  bucket: string;
  /** the labels that name a row of /api/v1/requests (beside side), and of its histogram */
  names: readonly Column[];
  /** the label that says how a request ended */
  outcome: Column;
}

export const L7_METRICS: Readonly<Record<L7Protocol, ProtocolDef>> = {
  http: { counter: 'periscope_http_requests_total', bucket: 'periscope_http_request_duration_seconds_bucket', names: ['method', 'route'], outcome: 'status_class' },
  grpc: { counter: 'periscope_grpc_requests_total', bucket: 'periscope_grpc_request_duration_seconds_bucket', names: ['grpc_service', 'grpc_method'], outcome: 'grpc_status' },
  sql: { counter: 'periscope_sql_queries_total', bucket: 'periscope_sql_query_duration_seconds_bucket', names: ['operation', 'shape'], outcome: 'error' },
  redis: { counter: 'periscope_redis_commands_total', bucket: 'periscope_redis_command_duration_seconds_bucket', names: ['command'], outcome: 'error' },
};

const BY_METRIC = new Map<string, { protocol: L7Protocol; histogram: boolean }>(
  (Object.entries(L7_METRICS) as [L7Protocol, ProtocolDef][]).flatMap(([protocol, d]) => [
    [d.counter, { protocol, histogram: false }],
    [d.bucket, { protocol, histogram: true }],
  ]),
);

/** Every counter and bucket metric of the l7 collector's requests. */
export const L7_QUERY_METRICS: readonly string[] = [...BY_METRIC.keys()];
/** The labels an edge's l7 rows are grouped by beside the edge's own (how requests ended, and buckets). */
export const L7_OUTCOME_COLUMNS: readonly Column[] = ['side', 'status_class', 'grpc_status', 'error', 'le'];

/** Which protocol, and whether a bucket, a row of these metrics is. */
export const l7Metric = (metric: string): { protocol: L7Protocol; histogram: boolean } | undefined => BY_METRIC.get(metric);

/**
 * How a request ended, from its outcome label: an error (HTTP 5xx, no response or reset; gRPC not
 * OK; SQL and Redis error replies and no reply), a client error (HTTP 4xx, or gRPC over an HTTP 4xx)
 * or neither (success, and "unknown": an outcome past what the capture saw).
 */
export function outcomeOf(protocol: L7Protocol, value: string): 'error' | 'client_error' | 'ok' {
  switch (protocol) {
    case 'http':
      return value === '5xx' || value === 'none' || value === 'reset' ? 'error' : value === '4xx' ? 'client_error' : 'ok';
    case 'grpc':
      if (value === 'OK' || value === 'unknown') return 'ok';
      if (/^\d{3}$/.test(value)) return value.startsWith('5') ? 'error' : value.startsWith('4') ? 'client_error' : 'ok';
      return 'error';
    default:
      return value === '' || value === 'unknown' ? 'ok' : 'error';
  }
}

/** Counts and buckets of requests, summed as rows come. */
export class RequestAcc {
  requests = 0;
  errors = 0;
  clientErrors = 0;
  readonly statuses = new Map<string, number>();
  private readonly buckets = new Map<number, number>();

  add(protocol: L7Protocol, r: AggregateRow): void {
    const m = l7Metric(r.metric);
    if (!m) return;
    if (m.histogram) {
      const le = r.group.le === '+Inf' ? Infinity : Number(r.group.le);
      if (!Number.isNaN(le)) this.buckets.set(le, (this.buckets.get(le) ?? 0) + r.delta);
      return;
    }
    const status = r.group[L7_METRICS[protocol].outcome] ?? '';
    this.requests += r.delta;
    const o = outcomeOf(protocol, status);
    if (o === 'error') this.errors += r.delta;
    else if (o === 'client_error') this.clientErrors += r.delta;
    const label = status === '' ? 'ok' : status;
    this.statuses.set(label, (this.statuses.get(label) ?? 0) + r.delta);
  }

  stats(seconds: number): RequestStats {
    const b = [...this.buckets].map(([le, count]) => ({ le, count }));
    return {
      requests: this.requests,
      rate: seconds > 0 ? this.requests / seconds : 0,
      errors: this.errors,
      client_errors: this.clientErrors,
      p50_seconds: histogramQuantile(0.5, b),
      p99_seconds: histogramQuantile(0.99, b),
    };
  }
}

/** The columns /api/v1/requests groups a workload's l7 rows by. */
export const REQUEST_GROUP_BY: readonly Column[] = ['side', 'method', 'route', 'status_class', 'grpc_service', 'grpc_method', 'grpc_status', 'operation', 'shape', 'error', 'command', 'le'];

/** A workload's rows of /api/v1/requests from its l7 rows grouped by REQUEST_GROUP_BY: most requests first. */
export function requestRows(rows: readonly AggregateRow[], seconds: number): RequestRow[] {
  const acc = new Map<string, { protocol: L7Protocol; side: 'client' | 'server'; operation: string; name: string; acc: RequestAcc }>();
  for (const r of rows) {
    const m = l7Metric(r.metric);
    const side = r.group.side;
    if (!m || (side !== 'client' && side !== 'server')) continue;
    const g = r.group;
    const [operation, name] =
      m.protocol === 'http'
        ? [g.method ?? '', g.route ?? '']
        : m.protocol === 'grpc'
          ? ['', g.grpc_service && g.grpc_method && g.grpc_service !== g.grpc_method ? `${g.grpc_service}/${g.grpc_method}` : (g.grpc_method ?? '')]
          : m.protocol === 'sql'
            ? [g.operation ?? '', g.shape ?? '']
            : ['', g.command ?? ''];
    const key = [m.protocol, side, operation, name].join('\u0000');
    let a = acc.get(key);
    if (!a) acc.set(key, (a = { protocol: m.protocol, side, operation, name, acc: new RequestAcc() }));
    a.acc.add(m.protocol, r);
  }
  return [...acc.values()]
    .filter((a) => a.acc.requests > 0)
    .map(({ protocol, side, operation, name, acc: a }): RequestRow => {
      const s = a.stats(seconds);
      return { protocol, side, operation, name, ...s, error_ratio: s.requests > 0 ? s.errors / s.requests : 0, statuses: Object.fromEntries([...a.statuses].filter(([, n]) => n > 0).sort()) };
    })
    .sort((x, y) => y.requests - x.requests || x.protocol.localeCompare(y.protocol) || x.side.localeCompare(y.side) || x.name.localeCompare(y.name) || x.operation.localeCompare(y.operation));
}
