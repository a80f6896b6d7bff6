/**
 * Ingest batches with the l7 collector's series, as an agent ships them (families labelled with the
 * subject, the peer, the side and the request's labels: src/collectors/l7/index.ts), with counts
 * chosen so every number the hub derives from them is known: the hub's tests and the UI test post
 * them through the real ingest path and hold the service map and /api/v1/requests to these numbers.
 *
 * shop/web (node "client") is the client of shop/api:8080 (HTTP and gRPC), shop/db:5432 (SQL) and
 * shop/cache:6379 (Redis); shop/api (node "server") saw web's HTTP requests too (one more than the
 * client counted: the map must show the client's 100), and 10 from an external address the client
 * side never saw (the map shows them from the server's side).
 */
import { WIRE_VERSION, type Batch } from '../src/wire/ingest.js';

const SUBJECT = ['cgroup', 'namespace', 'pod', 'container', 'workload_kind', 'workload', 'node'];
const PEER = ['peer_kind', 'peer_namespace', 'peer_workload', 'peer', 'peer_port'];
/** the duration buckets of these batches (the collector's are finer; the hub reads any) */
export const L7_TEST_BUCKETS = [0.001, 0.01, 0.1, 1];

type Family = Batch['families'][number];
type Series = Family['series'][number];

const web = (node: string): string[] => ['/kubepods/shop/web-1/app', 'shop', 'web-1', 'app', 'Deployment', 'web', node];
const api = (node: string): string[] => ['/kubepods/shop/api-1/app', 'shop', 'api-1', 'app', 'Deployment', 'api', node];

/** A counter series: cumulative value and this batch's delta (the whole value: one batch). */
const c = (labels: string[], n: number): Series => ({ labels, value: n, delta: n });
/** A histogram series whose `n` observations fall into the buckets as `cumulative` says. */
const h = (labels: string[], cumulative: number[], n: number, sum: number): Series => ({
  labels,
  hist: { cumulative, count: n, sum },
  hist_delta: { cumulative, count: n, sum },
});

function counter(name: string, labels: string[], series: Series[]): Family {
  return { name, type: 'counter', help: name, labels: [...SUBJECT, ...PEER, 'side', ...labels], series };
}
function histogram(name: string, labels: string[], series: Series[]): Family {
  return { name, type: 'histogram', help: name, labels: [...SUBJECT, ...PEER, 'side', ...labels], buckets: L7_TEST_BUCKETS, series };
}

function envelope(node: string, instance: string, seq: number, time: number, families: Family[]): Batch {
  return {
    version: WIRE_VERSION,
    agent: { node, instance, version: '0.1.0', started: new Date(time - 60_000).toISOString(), cgroup_subtree: '/' },
    seq,
    time: new Date(time).toISOString(),
    status: { collectors: [{ name: 'l7', alternative: 'test', up: true }], capabilities: {}, kernel: 'test' },
    families,
    events: [],
    dropped: { batches: 0, events: 0, samples: 0 },
  };
}

/**
 * The client's batch: shop/web's requests to api (HTTP: 90 2xx, 4 4xx, 6 5xx, p50 10 ms, p99 98.2
 * ms; gRPC: 8 OK, 2 NOT_FOUND), db (SQL: 20 SELECTs, 1 INSERT failing with 23505) and cache (Redis:
 * 30 GETs, 3 SETs answered WRONGTYPE).
 */
export function l7ClientBatch(time: number, opts: { node?: string; instance?: string; seq?: number } = {}): Batch {
  const node = opts.node ?? 'client';
  const toApi = (...rest: string[]): string[] => [...web(node), 'pod', 'shop', 'api', 'api-1', '8080', 'client', ...rest];
  const toDb = (...rest: string[]): string[] => [...web(node), 'pod', 'shop', 'db', 'db-0', '5432', 'client', ...rest];
  const toCache = (...rest: string[]): string[] => [...web(node), 'pod', 'shop', 'cache', 'cache-0', '6379', 'client', ...rest];
  const route = '/users/{id}';
  return envelope(node, opts.instance ?? 'l7-client-1', opts.seq ?? 1, time, [
    counter('periscope_http_requests_total', ['method', 'route', 'status_class'], [c(toApi('GET', route, '2xx'), 90), c(toApi('GET', route, '4xx'), 4), c(toApi('GET', route, '5xx'), 6)]),
    // 50 in (1 ms, 10 ms], 50 in (10 ms, 100 ms]: p50 10 ms, p99 10 + 90 × 49/50 = 98.2 ms
    histogram('periscope_http_request_duration_seconds', ['method', 'route', 'status_class'], [h(toApi('GET', route, '2xx'), [0, 50, 100, 100], 100, 3)]),
    counter('periscope_grpc_requests_total', ['grpc_service', 'grpc_method', 'grpc_status'], [c(toApi('shop.Cart', 'Add', 'OK'), 8), c(toApi('shop.Cart', 'Add', 'NOT_FOUND'), 2)]),
    // 10 in (100 ms, 1 s]: p50 550 ms, p99 991 ms
    histogram('periscope_grpc_request_duration_seconds', ['grpc_service', 'grpc_method'], [h(toApi('shop.Cart', 'Add'), [0, 0, 0, 10], 10, 5)]),
    counter('periscope_sql_queries_total', ['operation', 'shape', 'error'], [c(toDb('SELECT', 'SELECT * FROM users WHERE id = ?', ''), 20), c(toDb('INSERT', 'INSERT INTO users VALUES (?, ?)', '23505'), 1)]),
    // 21 in (0, 1 ms]: p50 0.5 ms
    histogram('periscope_sql_query_duration_seconds', ['operation', 'shape'], [h(toDb('SELECT', 'SELECT * FROM users WHERE id = ?'), [20, 20, 20, 20], 20, 0.01), h(toDb('INSERT', 'INSERT INTO users VALUES (?, ?)'), [1, 1, 1, 1], 1, 0.0005)]),
    counter('periscope_redis_commands_total', ['command', 'error'], [c(toCache('GET', ''), 30), c(toCache('SET', 'WRONGTYPE'), 3)]),
    histogram('periscope_redis_command_duration_seconds', ['command'], [h(toCache('GET'), [30, 30, 30, 30], 30, 0.003), h(toCache('SET'), [3, 3, 3, 3], 3, 0.0003)]),
  ]);
}

/** The server's batch: shop/api answered web's HTTP requests (101 as it counted them) and 10 of 203.0.113.9 (8 2xx, 2 5xx). */
export function l7ServerBatch(time: number, opts: { node?: string; instance?: string; seq?: number } = {}): Batch {
  const node = opts.node ?? 'server';
  const fromWeb = (...rest: string[]): string[] => [...api(node), 'pod', 'shop', 'web', 'web-1', '', 'server', ...rest];
  const fromOutside = (...rest: string[]): string[] => [...api(node), 'external', '', '', '203.0.113.9', '', 'server', ...rest];
  const route = '/users/{id}';
  return envelope(node, opts.instance ?? 'l7-server-1', opts.seq ?? 1, time, [
    counter('periscope_http_requests_total', ['method', 'route', 'status_class'], [
      c(fromWeb('GET', route, '2xx'), 91),
      c(fromWeb('GET', route, '4xx'), 4),
      c(fromWeb('GET', route, '5xx'), 6),
      c(fromOutside('GET', route, '2xx'), 8),
      c(fromOutside('GET', route, '5xx'), 2),
    ]),
    histogram('periscope_http_request_duration_seconds', ['method', 'route', 'status_class'], [
      h(fromWeb('GET', route, '2xx'), [0, 51, 101, 101], 101, 3),
      // the outside client's 10 in (1 ms, 10 ms]: p50 5.5 ms, p99 9.91 ms
      h(fromOutside('GET', route, '2xx'), [0, 10, 10, 10], 10, 0.05),
    ]),
  ]);
}
