/**
 * The hub: every node's agent reports here; it stores what they ship and answers for the cluster.
 *   POST /api/v1/ingest          a batch from an agent (src/wire/ingest.ts): gzip or plain JSON,
 *                                at most 8 MiB on the wire and 64 MiB inflated, 200,000 profile
 *                                stacks; applied once per (instance, seq); 400/413/415 say what is
 *                                wrong and store nothing
 *   GET  /api/v1/nodes           each node's agent: version, last seen, capabilities, collectors
 *   GET  /api/v1/namespaces      namespaces with data in the range
 *   GET  /api/v1/workloads       workloads (or pods, or container cgroups) over a range: CPU, run-queue
 *                                latency p50/p99, context switches, execs, OOM kills, TCP totals
 *   GET  /api/v1/series          one metric over time, for a workload or anything the filters select
 *   GET  /api/v1/events          stored events, newest first, with filters
 *   GET  /api/v1/events/stream   events as they arrive, as server-sent events (as the agent serves them)
 *   GET  /api/v1/profiles        stacks of cpu, offcpu or runq profiles summed over every node and
 *                                window in the range, with filters: json, folded text or pprof
 *                                (src/profiles/query.ts; the agent answers the same)
 *   GET  /api/v1/network/map     the service map: edges merged from every node, both ends named,
 *                                with their requests per protocol (the l7 collector's)
 *   GET  /api/v1/requests        a workload's requests by route, gRPC method, SQL shape or Redis
 *                                command, as server and as client: rate, errors, p50/p99
 *   GET  /api/v1/overview        the workloads' numbers at a glance: how many, namespaces, the top
 *                                few by each sort key (what the UI's first page shows)
 *   GET  /api/v1/health          the hub itself: store, agents, ingest counts
 *   GET  /metrics                the hub's own metrics (Prometheus)
 *   GET  /healthz                liveness (never authenticated)
 *   GET  /, /assets/...          the web UI (src/web built into dist/web; web.ts), never authenticated
 * Shapes: src/wire/hub.ts; docs/API.md. With a token every route but /healthz and the UI's files
 * needs it (ingest too): the UI itself holds nothing, it asks the API with the token.
 */
import { gunzip } from 'node:zlib';
import { promisify } from 'node:util';
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { COLLECTORS } from '../collectors/registry.js';
import { type MetricDef } from '../collectors/contract.js';
import { EventLog } from '../agent/event-log.js';
import { CONTENT_TYPE, formatFamily, type Series } from '../agent/exposition.js';
import { VERSION } from '../agent/version.js';
import { EventStreams, HttpError, HttpFace, badQuery, eventFilter, json, listParam, type FaceOptions } from '../server/http.js';
import { checkBatch, MAX_BATCH_BYTES, MAX_BATCH_JSON_BYTES, type IngestReply } from '../wire/ingest.js';
import { type PeriscopeEvent } from '../wire/events.js';
import {
  L7_PROTOCOLS,
  WORKLOAD_GROUPS,
  WORKLOAD_SORT_KEYS,
  type EdgeEntry,
  type L7Protocol,
  type RequestsResponse,
  type HubHealth,
  type NodeEntry,
  type OverviewResponse,
  type SeriesResponse,
  type WorkloadEntry,
  type WorkloadGroup,
  type WorkloadSortKey,
  type WorkloadsResponse,
} from '../wire/hub.js';
import { Normalizer } from './ingest.js';
import { checkProfiles, toProfile } from './profiles.js';
import { parseProfileQuery, sendProfile } from '../profiles/query.js';
import { choice, limitParam, onlyParams, parseDuration, parseFilters, parseLabelFilters, parseRange, parseTime, singleParam } from './query.js';
import { L7_METRICS, L7_OUTCOME_COLUMNS, L7_QUERY_METRICS, REQUEST_GROUP_BY, RequestAcc, l7Metric, requestRows } from './l7.js';
import { COLUMNS, PRESENCE_METRIC, WORKLOAD_SUM_COLUMNS, WORKLOAD_SUM_FILTERS, type AggregateRow, type Column, type Filters, type Range, type Store } from './store.js';
import { sortWorkloads, summarizeWorkloads, WORKLOAD_GROUP_BY, WORKLOAD_METRICS, type SummaryRow } from './workloads.js';
import { WebAssets } from './web.js';

const inflate = promisify(gunzip);
/** what the hub reads and drops of a body past its limit before it cuts the connection */
const DRAIN_BYTES = 16 << 20;

export interface HubOptions extends FaceOptions {
  store: Store;
  /** compressed bytes of one batch */
  maxBatchBytes?: number;
  /** batches waiting to be applied; past that, 429 (agents retry) */
  maxPendingBatches?: number;
  maxStreamClients?: number;
  /** an agent not heard from for this long is not connected (ms) */
  staleMs?: number;
  /** how often rollups and retention run (ms) */
  maintainIntervalMs?: number;
  log?: (line: string) => void;
  now?: () => number;
  /** the built web UI (default: dist/web of the repository; see web.ts) */
  webDir?: string;
}

/** Every event type a registered collector declares: what /api/v1/events accepts in `type`. */
const EVENT_TYPES = [...new Set(COLLECTORS.flatMap((c) => c.events.map((e) => e.type)))];
/** Metric names of the registry (histograms as their _bucket, _sum and _count counters), with their types. */
const REGISTRY_TYPES = new Map<string, 'counter' | 'gauge'>(
  COLLECTORS.flatMap((c) => c.metrics).flatMap((m): [string, 'counter' | 'gauge'][] =>
    m.type === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => [m.name + s, 'counter']) : [[m.name, m.type]],
  ),
);
/** What says where a workload runs (the columns of store.ts's PlacementRow). */
const PLACEMENT_COLUMNS: readonly Column[] = ['namespace', 'workload_kind', 'workload', 'node', 'cgroup', 'pod', 'container'];
const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const HUB_METRICS = {
  batches: { type: 'counter', name: 'periscope_hub_batches_total', labels: ['result'], help: 'Batches received from agents: applied, duplicate (already applied: a replay) or rejected (malformed, too large, wrong version, unauthenticated, or the store failed).' },
  rejected: { type: 'counter', name: 'periscope_hub_batches_rejected_total', labels: ['reason'], help: 'Batches refused, by reason.' },
  samples: { type: 'counter', name: 'periscope_hub_samples_ingested_total', help: 'Samples stored (histograms count one per bucket, sum and count).' },
  events: { type: 'counter', name: 'periscope_hub_events_ingested_total', help: 'Events stored.' },
  stacks: { type: 'counter', name: 'periscope_hub_profile_stacks_ingested_total', help: 'Profile stacks stored (a row per stack of each shipped profile).' },
  bytes: { type: 'counter', name: 'periscope_hub_ingest_bytes_total', help: 'Bytes of applied batches as they arrived (compressed).' },
  agents: { type: 'gauge', name: 'periscope_hub_agents_connected', help: 'Agents heard from within the staleness window.' },
  store: { type: 'gauge', name: 'periscope_hub_store_bytes', labels: ['store'], help: 'Bytes the store takes, as of the last maintenance.' },
  maintenance: { type: 'counter', name: 'periscope_hub_maintenance_errors_total', help: 'Rollup and retention runs that failed.' },
  query: { type: 'histogram', name: 'periscope_hub_query_duration_seconds', labels: ['route'], buckets: LATENCY_BUCKETS, help: 'Time to answer an API query, by route.' },
} as const satisfies Record<string, MetricDef>;

class Latency {
  readonly counts = new Map<string, { cumulative: number[]; count: number; sum: number }>();
  observe(route: string, seconds: number): void {
    let h = this.counts.get(route);
    if (!h) this.counts.set(route, (h = { cumulative: LATENCY_BUCKETS.map(() => 0), count: 0, sum: 0 }));
    LATENCY_BUCKETS.forEach((b, i) => {
      if (seconds <= b) h.cumulative[i]!++;
    });
    h.count++;
    h.sum += seconds;
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();

export class Hub extends HttpFace {
  readonly store: Store;
  readonly events: EventLog;
  /** the web UI's files, read once */
  readonly web: WebAssets;
  private readonly streams: EventStreams;
  private readonly normalizer = new Normalizer();
  private readonly opts: Required<Omit<HubOptions, keyof FaceOptions | 'store' | 'webDir'>>;
  private pending = 0;
  /** the last batch given to the store (stop() waits for it: the store applies in order) */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly lastSeen = new Map<string, number>();
  private readonly latency = new Latency();
  private maintainTimer: NodeJS.Timeout | undefined;
  private storeBytes = 0;
  private lastMaintenance: number | null = null;
  private storeError: string | undefined;
  readonly counts = { applied: 0, duplicate: 0, rejected: new Map<string, number>(), samples: 0, events: 0, stacks: 0, bytes: 0, maintenanceErrors: 0 };

  constructor(opts: HubOptions) {
    super(opts, 'hub');
    this.store = opts.store;
    this.web = new WebAssets(opts.webDir);
    this.opts = {
      maxBatchBytes: opts.maxBatchBytes ?? MAX_BATCH_BYTES,
      maxPendingBatches: opts.maxPendingBatches ?? 64,
      maxStreamClients: opts.maxStreamClients ?? 16,
      staleMs: opts.staleMs ?? 60_000,
      maintainIntervalMs: opts.maintainIntervalMs ?? 60_000,
      log: opts.log ?? ((line) => process.stderr.write(`${line}\n`)),
      now: opts.now ?? Date.now,
    };
    this.tokenHint = 'send Authorization: Bearer <the token of the hub\'s --token-file>';
    this.events = new EventLog(10_000, EVENT_TYPES);
    this.streams = new EventStreams(this.events, { maxStreamClients: this.opts.maxStreamClients, streamBufferBytes: 256 << 10, streamStallMs: 30_000 }, this.refused);
  }

  /** Runs rollups and retention now and then on a timer. */
  async start(): Promise<void> {
    await this.maintain();
    this.maintainTimer = setInterval(() => void this.maintain(), this.opts.maintainIntervalMs);
    this.maintainTimer.unref();
  }

  async maintain(): Promise<void> {
    try {
      await this.store.maintain(this.opts.now());
      this.storeBytes = await this.store.size();
      this.lastMaintenance = this.opts.now();
    } catch (err) {
      this.counts.maintenanceErrors++;
      this.opts.log(`hub: maintenance failed: ${(err as Error).message}`);
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.maintainTimer);
    await this.queue.catch(() => undefined);
    await this.store.close();
  }

  protected override methods(path: string): readonly string[] {
    return path === '/api/v1/ingest' ? ['POST'] : ['GET', 'HEAD'];
  }

  /** /healthz and the web UI's files (`/` and the paths of its build): the API and /metrics need the token. */
  protected override open(path: string): boolean {
    return path === '/healthz' || this.web.knows(path);
  }

  private reject(reason: string, status: number, message: string, hint: string, headers: Record<string, string> = {}): HttpError {
    this.counts.rejected.set(reason, (this.counts.rejected.get(reason) ?? 0) + 1);
    return new HttpError(status, message, hint, headers);
  }

  protected async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const q = url.searchParams;
    if (path === '/api/v1/ingest') return this.ingest(req, res);
    if (path === '/healthz') return json(res, 200, { ok: true });
    if (path === '/metrics') {
      const text = this.metricsText();
      res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    if (path === '/api/v1/events/stream') return this.streams.serve(req, res, q, eventFilter(q, EVENT_TYPES), 'hub');
    const started = performance.now();
    if (path === '/api/v1/profiles') {
      // not JSON alone: the format is the query's (folded text, pprof)
      const pq = parseProfileQuery(q, this.opts.now());
      const stacks = await this.store.profile({ type: pq.type, range: { from: pq.from, to: pq.to }, filters: pq.filters, limit: pq.limit });
      this.latency.observe(path, (performance.now() - started) / 1e3);
      return sendProfile(res, toProfile(pq, stacks), pq.format);
    }
    let body: unknown;
    switch (path) {
      case '/api/v1/nodes':
        body = { nodes: await this.nodes() };
        break;
      case '/api/v1/namespaces': {
        const range = parseRange(q, this.opts.now());
        body = { from: iso(range.from), to: iso(range.to), namespaces: (await this.store.distinct('namespace', range, parseFilters(q))).filter(Boolean) };
        break;
      }
      case '/api/v1/workloads':
        body = await this.workloads(q);
        break;
      case '/api/v1/overview':
        body = await this.overview(q);
        break;
      case '/api/v1/series':
        body = await this.series(q);
        break;
      case '/api/v1/events':
        body = await this.storedEvents(q);
        break;
      case '/api/v1/network/map':
        body = await this.networkMap(q);
        break;
      case '/api/v1/requests':
        body = await this.requests(q);
        break;
      case '/api/v1/health':
        body = await this.health();
        break;
      default:
        if (this.web.serve(req, res, path)) return;
        throw new HttpError(
          404,
          `no such path ${path.slice(0, 200)}`,
          'try / (the web UI), /api/v1/nodes, /api/v1/workloads, /api/v1/overview, /api/v1/series, /api/v1/events, /api/v1/profiles, /api/v1/network/map, /api/v1/requests, /api/v1/health or /metrics',
        );
    }
    this.latency.observe(path, (performance.now() - started) / 1e3);
    json(res, 200, body);
  }

  /** Reads a request body, at most `max` bytes: a larger one is refused as soon as it is known. */
  private body(req: IncomingMessage, max: number): Promise<Buffer> {
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (declared > max) {
      req.resume();
      return Promise.reject(this.reject('too_large', 413, `the batch is ${declared} bytes, more than the ${max} the hub takes`, 'ship smaller batches (a shorter --hub-interval)', { connection: 'close' }));
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const tooLarge = (): HttpError => this.reject('too_large', 413, `the batch is more than the ${max} bytes the hub takes`, 'ship smaller batches (a shorter --hub-interval)', { connection: 'close' });
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size <= max) chunks.push(c);
        // past the limit the rest is read and dropped, so that the client reads the 413 rather than a
        // reset; a client that goes on much longer is cut off
        else if (size > max + DRAIN_BYTES) {
          req.destroy();
          reject(tooLarge());
        }
      });
      req.on('end', () => (size > max ? reject(tooLarge()) : resolve(Buffer.concat(chunks))));
      req.on('error', reject);
    });
  }

  private async ingest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type !== 'application/json') throw this.reject('content_type', 415, `a batch is application/json, not "${type.slice(0, 60)}"`, 'send Content-Type: application/json');
    const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
    if (encoding !== 'gzip' && encoding !== 'identity') throw this.reject('encoding', 415, `content encoding "${encoding.slice(0, 40)}" is not supported`, 'send gzip or no Content-Encoding');
    if (this.pending >= this.opts.maxPendingBatches) {
      req.resume();
      throw this.reject('busy', 429, `${this.pending} batches are waiting to be stored`, 'retry later: the agent keeps the batch', { 'retry-after': '1' });
    }
    const raw = await this.body(req, this.opts.maxBatchBytes);
    let text: Buffer = raw;
    if (encoding === 'gzip') {
      try {
        text = await inflate(raw, { maxOutputLength: MAX_BATCH_JSON_BYTES });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') throw this.reject('too_large', 413, `the batch inflates to more than ${MAX_BATCH_JSON_BYTES} bytes`, 'ship smaller batches (a shorter --hub-interval)');
        throw this.reject('malformed', 400, `the body is not gzip: ${(err as Error).message}`, 'compress the batch with gzip, or send it without Content-Encoding');
      }
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text.toString('utf8'));
    } catch (err) {
      throw this.reject('malformed', 400, `the batch is not JSON: ${(err as Error).message.slice(0, 200)}`, 'send the JSON of a batch (src/wire/ingest.ts)');
    }
    const checked = checkBatch(parsed);
    if (!checked.ok) {
      const version = checked.error.startsWith('wire version');
      throw this.reject(version ? 'version' : 'malformed', 400, checked.error, version ? 'run an agent and a hub of the same release' : 'this is a bug in the agent that sent it: report it with the message');
    }
    const batch = checked.batch;
    const refused = checkProfiles(batch.profiles);
    if (refused) throw this.reject(refused.reason, 400, refused.message, refused.hint);
    const received = this.opts.now();
    const rows = this.normalizer.rows(batch, received);
    this.pending++;
    // the store applies batches in the order given (an agent's in seq order), several in one write
    // when they wait together (store.ts)
    const applying = this.store.apply(rows);
    this.queue = applying.catch(() => undefined);
    let applied: boolean;
    try {
      applied = await applying;
      this.storeError = undefined;
    } catch (err) {
      this.storeError = (err as Error).message;
      this.opts.log(`hub: storing batch ${batch.seq} of ${batch.agent.node} failed: ${(err as Error).message}`);
      throw this.reject('store', 503, `the store failed: ${(err as Error).message}`, 'the agent retries; see the hub log', { 'retry-after': '5' });
    } finally {
      this.pending--;
    }
    this.lastSeen.set(batch.agent.node, received);
    if (applied) {
      this.counts.applied++;
      this.counts.samples += rows.samples.length;
      this.counts.events += rows.events.length;
      this.counts.stacks += rows.profiles?.length ?? 0;
      this.counts.bytes += raw.length;
      for (const e of batch.events) if (EVENT_TYPES.includes(e.type)) this.events.push({ ...(e as unknown as PeriscopeEvent), node: batch.agent.node });
    } else this.counts.duplicate++;
    const reply: IngestReply = { applied, seq: batch.seq };
    json(res, 200, reply);
  }

  private async nodes(): Promise<NodeEntry[]> {
    const now = this.opts.now();
    return (await this.store.nodes(undefined, now)).map((r) => {
      let status: Partial<{ collectors: NodeEntry['collectors']; capabilities: Record<string, boolean>; kernel: string; dropped: NodeEntry['dropped'] }> = {};
      try {
        status = JSON.parse(r.status) as typeof status;
      } catch {
        // a report written by another release: shown without its status
      }
      const age = Math.max(0, now - r.received);
      return {
        node: r.node,
        version: r.version,
        instance: r.instance,
        started: iso(r.started),
        last_seen: iso(r.received),
        age_seconds: Math.round(age / 100) / 10,
        connected: age < this.opts.staleMs,
        cgroup_subtree: r.cgroupSubtree,
        kernel: status.kernel ?? '',
        collectors: status.collectors ?? [],
        capabilities: status.capabilities ?? {},
        dropped: status.dropped ?? { batches: 0, events: 0, samples: 0 },
      };
    });
  }

  private async workloads(q: URLSearchParams): Promise<WorkloadsResponse> {
    const range = parseRange(q, this.opts.now());
    const group = choice<WorkloadGroup>(q, 'group', WORKLOAD_GROUPS, 'workload');
    const sort = choice<WorkloadSortKey>(q, 'sort', WORKLOAD_SORT_KEYS, 'cpu_seconds', { cpu: 'cpu_seconds' });
    const limit = limitParam(q, 100, 10_000);
    const workloads = await this.workloadEntries(range, parseFilters(q), group, sort, limit);
    return { from: iso(range.from), to: iso(range.to), group, sort, workloads };
  }

  /**
   * The entries of /api/v1/workloads: one per workload, pod or container (group) over the range,
   * sorted and cut (summarizeWorkloads). `where` false leaves out where known workloads run (their
   * node, nodes, pod and container: a row per pod to read), which the overview does not show.
   */
  private async workloadEntries(range: Range, filters: Filters, group: WorkloadGroup, sort: WorkloadSortKey, limit?: number, where = true): Promise<WorkloadEntry[]> {
    let rows: SummaryRow[];
    if (group === 'workload') {
      // Known workloads are summed in the store: from its per-workload tables where the filters allow
      // (a row per workload, metric and bucket, and one per pod for where it runs: store.ts), else
      // from every series grouped by workload. Pods without a workload come from every series.
      const known: Filters = { ...filters, nonEmpty: [...(filters.nonEmpty ?? []), 'workload'] };
      const bySums = Object.keys(filters).every((k) => (WORKLOAD_SUM_FILTERS as readonly string[]).includes(k));
      const [sums, placement, rest] = await Promise.all([
        bySums
          ? this.store.workloadSums({ ...range, metrics: WORKLOAD_METRICS, filters })
          : this.store.aggregate({ ...range, metrics: WORKLOAD_METRICS, filters: known, groupBy: WORKLOAD_SUM_COLUMNS }),
        !where
          ? []
          : bySums
            ? this.store.placement({ ...range, filters })
            : this.store.aggregate({ ...range, metrics: [PRESENCE_METRIC], filters: known, groupBy: PLACEMENT_COLUMNS }).then((rows) => rows.map((r) => r.group)),
        this.store.aggregate({ ...range, metrics: WORKLOAD_METRICS, filters: { ...filters, empty: [...(filters.empty ?? []), 'workload'] }, groupBy: WORKLOAD_GROUP_BY }),
      ]);
      rows = [...sums, ...placement.map((group) => ({ metric: PRESENCE_METRIC, group: { ...group }, delta: 0 })), ...rest];
    } else rows = await this.store.aggregate({ ...range, metrics: WORKLOAD_METRICS, filters, groupBy: WORKLOAD_GROUP_BY });
    return summarizeWorkloads(rows, { group, seconds: (range.to - range.from) / 1e3, sort, ...(limit === undefined ? {} : { limit }) });
  }

  /**
   * The workloads at a glance (group=workload, the filters of /api/v1/workloads): how many, in which
   * namespaces, and for each sort key the first `limit` of those with something to show (a value
   * that is neither 0 nor null: a "top by OOM kills" of workloads without one is noise). Known
   * workloads come without where they run (node, nodes, pod, container: /api/v1/workloads has it),
   * which halves the work of the cluster's first page.
   */
  private async overview(q: URLSearchParams): Promise<OverviewResponse> {
    const range = parseRange(q, this.opts.now());
    const limit = limitParam(q, 10, 100);
    const entries = await this.workloadEntries(range, parseFilters(q), 'workload', 'name', undefined, false);
    const top = Object.fromEntries(
      WORKLOAD_SORT_KEYS.filter((k) => k !== 'name').map((key) => [
        key,
        sortWorkloads(
          entries.filter((e) => e[key] !== 0 && e[key] !== null),
          key,
        ).slice(0, limit),
      ]),
    ) as OverviewResponse['top'];
    return {
      from: iso(range.from),
      to: iso(range.to),
      workloads: entries.length,
      namespaces: [...new Set(entries.map((e) => e.namespace).filter(Boolean))].sort(),
      top,
    };
  }

  private async series(q: URLSearchParams): Promise<SeriesResponse> {
    const metric = q.get('metric');
    if (!metric) throw badQuery('metric is missing', 'give metric=<name>, e.g. metric=periscope_cpu_seconds_total');
    const type = this.normalizer.types.get(metric) ?? REGISTRY_TYPES.get(metric);
    if (!type) throw badQuery(`unknown metric "${metric.slice(0, 100)}"`, `give a metric agents ship, e.g. ${[...REGISTRY_TYPES.keys()].slice(0, 3).join(', ')}`);
    const now = this.opts.now();
    const range = parseRange(q, now, 60 * 60_000);
    const span = range.to - range.from;
    const stepMs = q.has('step') ? parseDuration(q.get('step')!, 'step') : Math.max(10_000, Math.ceil(span / 300 / 10_000) * 10_000);
    if (stepMs < 1_000) throw badQuery('step is shorter than a second', 'give step=10s or more');
    if (span / stepMs > 11_000) throw badQuery(`the range holds ${Math.ceil(span / stepMs)} steps, more than 11,000`, 'give a longer step or a shorter range');
    const groupBy = listParam(q, 'by') as Column[];
    for (const c of groupBy) if (!COLUMNS.includes(c)) throw badQuery(`by="${c.slice(0, 60)}" is not a column`, `group by any of ${COLUMNS.join(', ')}`);
    const limit = limitParam(q, 20, 1_000);
    const lines = await this.store.series({ ...range, metric, stepMs, filters: { ...parseFilters(q), ...parseLabelFilters(q) }, groupBy, limit });
    const scale = type === 'counter' ? 1_000 / stepMs : 1;
    return {
      metric,
      type,
      unit: type === 'counter' ? 'per_second' : 'value',
      from: iso(range.from),
      to: iso(range.to),
      step_seconds: stepMs / 1e3,
      lines: lines.map((l) => ({ labels: l.group, points: l.points.map(([t, v]): [string, number] => [iso(t), v * scale]) })),
    };
  }

  private async storedEvents(q: URLSearchParams): Promise<unknown> {
    const types = listParam(q, 'type');
    for (const t of types) if (!EVENT_TYPES.includes(t)) throw badQuery(`unknown event type "${t.slice(0, 100)}"; use one of ${EVENT_TYPES.join(', ')}`);
    const range = parseRange(q, this.opts.now(), 60 * 60_000);
    const limit = limitParam(q, 1000, 10_000);
    const rows = await this.store.events({ ...range, types, filters: parseFilters(q), limit });
    return { from: iso(range.from), to: iso(range.to), events: rows.map((r) => JSON.parse(r.body) as unknown) };
  }

  /**
   * The service map. A connection between two nodes' workloads is seen twice: by the client's agent
   * as outbound to a peer with a port, and by the server's agent as inbound from a peer (no port: the
   * client's is ephemeral). Both become one edge, client → server:port, counted from the client's
   * side when it was seen there (the server's numbers are the same bytes the other way round).
   */
  private async networkMap(q: URLSearchParams): Promise<unknown> {
    const range = parseRange(q, this.opts.now());
    const limit = limitParam(q, 500, 10_000);
    const filters = parseFilters(q);
    const ends: Column[] = ['node', 'namespace', 'workload', 'pod', 'cgroup', 'peer_kind', 'peer_namespace', 'peer_workload', 'peer', 'peer_port'];
    const [rows, l7] = await Promise.all([
      this.store.aggregate({
        ...range,
        metrics: ['periscope_tcp_connections_total', 'periscope_tcp_bytes_sent_total', 'periscope_tcp_bytes_received_total', 'periscope_tcp_retransmits_total'],
        filters,
        groupBy: [...ends, 'direction', 'result'],
      }),
      // the l7 collector's requests: by how they ended, and the duration histograms' buckets
      this.store.aggregate({ ...range, metrics: L7_QUERY_METRICS, filters, groupBy: [...ends, ...L7_OUTCOME_COLUMNS] }),
    ]);
    return { from: iso(range.from), to: iso(range.to), edges: mergeEdges(rows, l7, (range.to - range.from) / 1e3).slice(0, limit) };
  }

  /**
   * A workload's requests as the l7 collector counted them, on both of its sides: as the server
   * (the routes, methods, shapes and commands it answered) and as the client (what it asked of
   * others), a row per protocol, side and name over the range. Every parameter is checked; an unknown
   * one is a 400.
   */
  private async requests(q: URLSearchParams): Promise<RequestsResponse> {
    onlyParams(q, ['namespace', 'workload', 'protocol', 'side', 'since', 'from', 'to', 'limit']);
    const namespace = singleParam(q, 'namespace', 253);
    const workload = singleParam(q, 'workload', 253);
    if (!namespace) throw badQuery('namespace is missing', 'give namespace=<the workload\'s namespace>');
    if (!workload) throw badQuery('workload is missing', 'give workload=<the workload\'s name>');
    const protocols = listParam(q, 'protocol');
    if (protocols.length > L7_PROTOCOLS.length) throw badQuery(`protocol lists ${protocols.length} values`, `give at most ${L7_PROTOCOLS.length}: ${L7_PROTOCOLS.join(', ')}`);
    for (const p of protocols) if (!(L7_PROTOCOLS as readonly string[]).includes(p)) throw badQuery(`protocol="${p.slice(0, 60)}" is not one of ${L7_PROTOCOLS.join(', ')}`, `give protocol=${L7_PROTOCOLS.join('|')}`);
    const side = choice<'client' | 'server' | ''>(q, 'side', ['client', 'server'], '');
    const since = singleParam(q, 'since', 64);
    const now = this.opts.now();
    // a duration back from now (15m, 3600), or any time `from` takes (-15m, RFC 3339)
    const from = since === undefined ? undefined : /^\d/.test(since) && !/^\d{4}-/.test(since) ? now - parseDuration(since, 'since') : parseTime(since, now, 'since');
    if (from !== undefined && q.has('from')) throw badQuery('since and from are both given', 'give one of them: since=15m (a duration back from now) or from=<a time>');
    const range = parseRange(q, now, 15 * 60_000, from);
    const limit = limitParam(q, 200, 2_000);
    const chosen = (protocols.length ? protocols : L7_PROTOCOLS) as readonly L7Protocol[];
    const metrics = chosen.flatMap((p) => [L7_METRICS[p].counter, L7_METRICS[p].bucket]);
    const rows = await this.store.aggregate({ ...range, metrics, filters: { namespace, workload, ...(side ? { side } : {}) }, groupBy: REQUEST_GROUP_BY });
    return { from: iso(range.from), to: iso(range.to), namespace, workload, rows: requestRows(rows, (range.to - range.from) / 1e3).slice(0, limit) };
  }

  private async health(): Promise<HubHealth> {
    let ok = true;
    let error = this.storeError;
    try {
      await this.store.lastSeq('health-check');
    } catch (err) {
      ok = false;
      error = (err as Error).message;
    }
    return {
      status: ok && !this.storeError ? 'ok' : 'degraded',
      version: VERSION,
      store: { kind: this.store.kind, location: this.store.location, ok, ...(error ? { error } : {}), bytes: this.storeBytes },
      agents_connected: this.agentsConnected(),
      batches_applied: this.counts.applied,
      batches_duplicate: this.counts.duplicate,
      batches_rejected: [...this.counts.rejected.values()].reduce((a, b) => a + b, 0),
      samples_ingested: this.counts.samples,
      last_maintenance: this.lastMaintenance === null ? null : iso(this.lastMaintenance),
    };
  }

  private agentsConnected(): number {
    const now = this.opts.now();
    let n = 0;
    for (const t of this.lastSeen.values()) if (now - t < this.opts.staleMs) n++;
    return n;
  }

  private metricsText(): string {
    const one = (value: number, labels: Record<string, string> = {}): Series => ({ labels, value });
    const rejected = [...this.counts.rejected.values()].reduce((a, b) => a + b, 0) + this.refused.unauthenticated;
    const M = HUB_METRICS;
    return [
      formatFamily(M.batches, M.batches.labels, [one(this.counts.applied, { result: 'applied' }), one(this.counts.duplicate, { result: 'duplicate' }), one(rejected, { result: 'rejected' })]),
      formatFamily(M.rejected, M.rejected.labels, [...[...this.counts.rejected].map(([reason, n]) => one(n, { reason })), one(this.refused.unauthenticated, { reason: 'unauthenticated' })]),
      formatFamily(M.samples, [], [one(this.counts.samples)]),
      formatFamily(M.events, [], [one(this.counts.events)]),
      formatFamily(M.stacks, [], [one(this.counts.stacks)]),
      formatFamily(M.bytes, [], [one(this.counts.bytes)]),
      formatFamily(M.agents, [], [one(this.agentsConnected())]),
      formatFamily(M.store, M.store.labels, [one(this.storeBytes, { store: this.store.kind })]),
      formatFamily(M.maintenance, [], [one(this.counts.maintenanceErrors)]),
      formatFamily(M.query, M.query.labels, [...this.latency.counts].map(([route, h]) => ({ labels: { route }, value: { ...h, cumulative: [...h.cumulative] } }))),
    ].join('');
  }
}

/**
 * Edges client → server:port from the connection and byte counters of every node, and the requests
 * of the l7 collector's rows (`l7`, grouped by the edge's columns and L7_OUTCOME_COLUMNS) over a range
 * of `seconds` (see networkMap).
 */
export function mergeEdges(rows: readonly AggregateRow[], l7: readonly AggregateRow[] = [], seconds = 0): EdgeEntry[] {
  interface Side {
    connections: number;
    failed: number;
    sent: number;
    received: number;
    retransmits: number;
    nodes: Set<string>;
  }
  interface Edge {
    source: EdgeEntry['source'];
    target: EdgeEntry['target'];
    client?: Side;
    server?: Side;
    /** requests per protocol as each side counted them */
    requests: Map<L7Protocol, { client?: RequestAcc; server?: RequestAcc }>;
    l7nodes: Set<string>;
  }
  const edges = new Map<string, Edge>();
  const selfOf = (g: Record<string, string>): EdgeEntry['source'] => ({
    kind: g.pod ? 'pod' : 'cgroup',
    namespace: g.namespace ?? '',
    workload: g.workload ?? '',
    name: g.workload || g.pod || g.cgroup || '',
  });
  const peerOf = (g: Record<string, string>): EdgeEntry['source'] => ({ kind: g.peer_kind ?? '', namespace: g.peer_namespace ?? '', workload: g.peer_workload ?? '', name: g.peer_workload || g.peer || '' });
  const id = (e: EdgeEntry['source']): string => `${e.kind}\u0000${e.namespace}\u0000${e.name}`;
  // inbound rows do not know the server's port: they join the outbound edge of the same pair, if any
  const ports = new Map<string, string>();
  const outbound = (g: Record<string, string>, metric: string): boolean =>
    metric === 'periscope_tcp_connections_total' ? g.direction === 'outbound' : l7Metric(metric) ? g.side === 'client' : (g.peer_port ?? '') !== '';
  for (const r of [...rows, ...l7]) {
    if (outbound(r.group, r.metric)) ports.set(`${id(selfOf(r.group))}\u0001${id(peerOf(r.group))}`, r.group.peer_port ?? '');
  }
  const edgeOf = (g: Record<string, string>, out: boolean): Edge => {
    const source = out ? selfOf(g) : peerOf(g);
    const server = out ? peerOf(g) : selfOf(g);
    const pair = `${id(source)}\u0001${id(server)}`;
    const port = out ? (g.peer_port ?? '') : (ports.get(pair) ?? '');
    const key = `${pair}\u0001${port}`;
    let e = edges.get(key);
    if (!e) edges.set(key, (e = { source, target: { ...server, port }, requests: new Map(), l7nodes: new Set() }));
    return e;
  };
  for (const r of rows) {
    if (r.delta === 0) continue;
    const g = r.group;
    const out = outbound(g, r.metric);
    const e = edgeOf(g, out);
    const side = out ? (e.client ??= { connections: 0, failed: 0, sent: 0, received: 0, retransmits: 0, nodes: new Set() }) : (e.server ??= { connections: 0, failed: 0, sent: 0, received: 0, retransmits: 0, nodes: new Set() });
    side.nodes.add(g.node ?? '');
    switch (r.metric) {
      case 'periscope_tcp_connections_total':
        if (g.result === 'success' || !g.result) side.connections += r.delta;
        else side.failed += r.delta;
        break;
      case 'periscope_tcp_bytes_sent_total':
        side.sent += r.delta;
        break;
      case 'periscope_tcp_bytes_received_total':
        side.received += r.delta;
        break;
      case 'periscope_tcp_retransmits_total':
        side.retransmits += r.delta;
        break;
    }
  }
  for (const r of l7) {
    const m = l7Metric(r.metric);
    const g = r.group;
    // a bucket without observations still bounds the next one's from below
    if (!m || (r.delta === 0 && !m.histogram) || (g.side !== 'client' && g.side !== 'server')) continue;
    const e = edgeOf(g, g.side === 'client');
    e.l7nodes.add(g.node ?? '');
    let p = e.requests.get(m.protocol);
    if (!p) e.requests.set(m.protocol, (p = {}));
    (p[g.side] ??= new RequestAcc()).add(m.protocol, r);
  }
  return [...edges.values()]
    .map((e): EdgeEntry | undefined => {
      const c = e.client;
      const s = e.server;
      const requests: EdgeEntry['requests'] = {};
      for (const protocol of L7_PROTOCOLS) {
        const p = e.requests.get(protocol);
        // each request once: the client's count where the client was observed, else the server's
        const side = p?.client && p.client.requests > 0 ? 'client' : p?.server && p.server.requests > 0 ? 'server' : undefined;
        if (side) requests[protocol] = { ...p![side]!.stats(seconds), side };
      }
      // an edge of empty buckets alone (requests before the range) is no edge
      if (!c && !s && Object.keys(requests).length === 0) return undefined;
      return {
        source: e.source,
        target: e.target,
        connections: c ? c.connections : (s?.connections ?? 0),
        failed: c ? c.failed : (s?.failed ?? 0),
        // the server's received bytes are what the client sent
        bytes_sent: c ? c.sent : (s?.received ?? 0),
        bytes_received: c ? c.received : (s?.sent ?? 0),
        retransmits: (c?.retransmits ?? 0) + (s?.retransmits ?? 0),
        observed_by: [...new Set([...(c?.nodes ?? []), ...(s?.nodes ?? []), ...e.l7nodes])].sort(),
        requests,
      };
    })
    .filter((e): e is EdgeEntry => e !== undefined)
    .sort((a, b) => b.bytes_sent + b.bytes_received - (a.bytes_sent + a.bytes_received) || b.connections - a.connections || totalRequests(b) - totalRequests(a));
}

const totalRequests = (e: EdgeEntry): number => Object.values(e.requests).reduce((n, r) => n + r.requests, 0);
