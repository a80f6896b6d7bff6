/**
 * The shapes of the hub's query API (/api/v1/, documented in docs/API.md). The CLI and the UI read
 * these; the hub's tests hold its answers to them. Times are RFC 3339 strings; byte and second counts
 * are numbers in base units.
 */

/** GET /api/v1/nodes */
export interface NodeEntry {
  node: string;
  /** agent version and instance (a restart makes a new instance) */
  version: string;
  instance: string;
  started: string;
  last_seen: string;
  /** seconds since last_seen; an agent silent for 3 intervals is not `connected` */
  age_seconds: number;
  connected: boolean;
  cgroup_subtree: string;
  kernel: string;
  collectors: { name: string; alternative: string; up: boolean; error?: string }[];
  capabilities: Record<string, boolean>;
  /** what its shipper dropped since it started */
  dropped: { batches: number; events: number; samples: number };
}
export interface NodesResponse {
  nodes: NodeEntry[];
}

/** GET /api/v1/namespaces */
export interface NamespacesResponse {
  from: string;
  to: string;
  namespaces: string[];
}

/** One row of GET /api/v1/workloads: a workload (or pod, or container cgroup: `group`) over the range. */
export interface WorkloadEntry {
  /** the node it ran on (the first, when it ran on several) and all of them */
  node: string;
  nodes: string[];
  namespace: string;
  workload_kind: string;
  workload: string;
  pod: string;
  container: string;
  /** the cgroup path (the first, when the entry groups several) */
  cgroup: string;
  /** CPU time used in the range, and the same as cores on average */
  cpu_seconds: number;
  cpu_cores: number;
  /** run-queue (scheduling) latency over the range; null without samples */
  runqueue_latency_p50_seconds: number | null;
  runqueue_latency_p99_seconds: number | null;
  context_switches: number;
  execs: number;
  /** processes that exited (their last thread ended), by any means */
  exits: number;
  oom_kills: number;
  tcp_connections: number;
  tcp_bytes_sent: number;
  tcp_bytes_received: number;
  tcp_retransmits: number;
}
export const WORKLOAD_SORT_KEYS = [
  'cpu_seconds',
  'runqueue_latency_p99_seconds',
  'context_switches',
  'execs',
  'exits',
  'oom_kills',
  'tcp_connections',
  'tcp_bytes_sent',
  'tcp_bytes_received',
  'tcp_retransmits',
  'name',
] as const;
export type WorkloadSortKey = (typeof WORKLOAD_SORT_KEYS)[number];
export const WORKLOAD_GROUPS = ['workload', 'pod', 'container'] as const;
export type WorkloadGroup = (typeof WORKLOAD_GROUPS)[number];
export interface WorkloadsResponse {
  from: string;
  to: string;
  group: WorkloadGroup;
  sort: WorkloadSortKey;
  workloads: WorkloadEntry[];
}

/**
 * GET /api/v1/overview: the workloads (group=workload) over the range at a glance. `top` holds, for
 * each sort key, the first entries as /api/v1/workloads sorts them, leaving out those whose value
 * for the key is 0 or null.
 */
export interface OverviewResponse {
  from: string;
  to: string;
  /** how many workload entries the range holds */
  workloads: number;
  /** their namespaces: distinct, sorted, none empty */
  namespaces: string[];
  top: Record<Exclude<WorkloadSortKey, 'name'>, WorkloadEntry[]>;
}

/** GET /api/v1/series */
export interface SeriesResponse {
  metric: string;
  type: 'counter' | 'gauge';
  /** counters: `rate` per second over each step; gauges: the value */
  unit: 'per_second' | 'value';
  from: string;
  to: string;
  step_seconds: number;
  lines: { labels: Record<string, string>; points: [string, number][] }[];
}

/** The request protocols the l7 collector tells apart (HTTP/1 and HTTP/2 are both http; PostgreSQL is sql). */
export const L7_PROTOCOLS = ['http', 'grpc', 'sql', 'redis'] as const;
export type L7Protocol = (typeof L7_PROTOCOLS)[number];

/**
 * Requests of one protocol over the range (an edge's, or one route's): how many, the rate, the
 * failed ones (errors: HTTP 5xx or no response, gRPC not OK, SQL and Redis error replies or no
 * reply) and the client's mistakes (client_errors: HTTP 4xx, gRPC over an HTTP 4xx), and latency
 * quantiles from the duration histogram (null without observations).
 */
export interface RequestStats {
  requests: number;
  /** requests per second over the range */
  rate: number;
  errors: number;
  client_errors: number;
  p50_seconds: number | null;
  p99_seconds: number | null;
}

/** An edge's requests of a protocol, and which end's series they are: the client's where it was observed, else the server's. */
export interface EdgeRequests extends RequestStats {
  side: 'client' | 'server';
}

/** GET /api/v1/network/map: the service map, both ends named, merged from every node. */
export interface EdgeEntry {
  /** the client side */
  source: { kind: string; namespace: string; workload: string; name: string };
  /** the server side, and its port */
  target: { kind: string; namespace: string; workload: string; name: string; port: string };
  connections: number;
  failed: number;
  bytes_sent: number;
  bytes_received: number;
  retransmits: number;
  /** which nodes saw it: the client's, the server's, or both */
  observed_by: string[];
  /** what the l7 collector saw on it, per protocol (only those with requests; {} without any) */
  requests: Partial<Record<L7Protocol, EdgeRequests>>;
}
export interface NetworkMapResponse {
  from: string;
  to: string;
  edges: EdgeEntry[];
}

/**
 * One row of GET /api/v1/requests: a workload's requests of one kind, as the server that answered
 * them or the client that sent them (`side`).
 */
export interface RequestRow extends RequestStats {
  protocol: L7Protocol;
  side: 'client' | 'server';
  /** the HTTP method or SQL operation; "" for gRPC and Redis */
  operation: string;
  /** the route template, "service/method" of gRPC, the SQL shape or the Redis command */
  name: string;
  /** errors / requests (0 without requests) */
  error_ratio: number;
  /** requests by outcome: the HTTP status class, gRPC status, SQL or Redis error ("ok" for success) */
  statuses: Record<string, number>;
}
export interface RequestsResponse {
  from: string;
  to: string;
  namespace: string;
  workload: string;
  rows: RequestRow[];
}

/** GET /api/v1/health: the hub itself. */
export interface HubHealth {
  status: 'ok' | 'degraded';
  version: string;
  store: { kind: string; location: string; ok: boolean; error?: string; bytes: number };
  agents_connected: number;
  batches_applied: number;
  batches_duplicate: number;
  batches_rejected: number;
  samples_ingested: number;
  last_maintenance: string | null;
}
