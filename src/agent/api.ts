/**
 * The agent's HTTP face. It faces a cluster network, so no request may crash it, the API
 * authenticates, and every client gets a bounded share.
 *   GET /metrics                  Prometheus text format, read from the kernel at scrape time
 *   GET /api/v1/events            recent events as JSON: the newest `limit` (default 1000), or with
 *                                 `since=SEQ` the oldest after SEQ (paging forward); filters type
 *                                 (repeatable, or comma-separated), cgroup (prefix), namespace, pod,
 *                                 container, workload
 *   GET /api/v1/events/stream     live events as server-sent events (same filters; Last-Event-ID or
 *                                 `since` resumes)
 *   GET /api/v1/pods              pods of this node: IPs, network namespace inode, cgroups
 *   GET /api/v1/status            collectors, the alternative each took, what failed, the Kubernetes connection
 *   GET /api/v1/profiles          CPU, off-CPU and run-queue stacks of a time range, merged, as JSON, folded
 *                                 text or pprof (src/profiles/query.ts has the parameters)
 *   GET /api/v1/<path>            routes the running collectors declare
 *   GET /healthz                  liveness (never authenticated)
 * HEAD works wherever GET does; other methods get 405 with Allow. With a bearer token (--token-file)
 * every route but /healthz needs `Authorization: Bearer <token>`; /metrics may be left open for
 * Prometheus (--metrics-open). Errors are JSON: {"error", "hint"}.
 *
 * Shares: a client address holds at most maxConnectionsPerClient connections (past that, 429), the
 * server maxConnections; headers must arrive within 10 s; at most maxStreamClients live streams
 * (past that, 503 with Retry-After), each with a bounded backlog (src/server/http.ts holds what the agent and the hub share).
 */
import { type IncomingMessage, type ServerResponse } from 'node:http';
import { type Agent } from './agent.js';
import { CONTENT_TYPE } from './exposition.js';
import { EventStreams, HttpError, HttpFace, eventFilter, intParam, json, type FaceOptions, type Tls } from '../server/http.js';
import { parseProfileQuery, sendProfile } from '../profiles/query.js';

export interface ApiOptions extends FaceOptions {
  /** serve /metrics without the token */
  metricsOpen?: boolean;
  /** live-stream subscribers at once */
  maxStreamClients?: number;
  /** bytes a stream subscriber may have unsent before its events are dropped (and counted) */
  streamBufferBytes?: number;
  /** a subscriber that takes nothing for this long is disconnected, freeing its place (ms) */
  streamStallMs?: number;
  /** PEM certificate and key: serve HTTPS */
  tls?: Tls;
}

const MAX_LIMIT = 10_000;

export class Api extends HttpFace {
  private readonly agent: Agent;
  private readonly metricsOpen: boolean;
  private readonly streams: EventStreams;

  constructor(agent: Agent, opts: ApiOptions = {}) {
    super(opts, 'agent');
    this.agent = agent;
    this.metricsOpen = opts.metricsOpen ?? false;
    this.streams = new EventStreams(
      agent.events,
      { maxStreamClients: opts.maxStreamClients ?? 16, streamBufferBytes: opts.streamBufferBytes ?? 256 << 10, streamStallMs: opts.streamStallMs ?? 30_000 },
      this.refused,
    );
  }

  protected override open(path: string): boolean {
    return path === '/healthz' || (path === '/metrics' && this.metricsOpen);
  }

  protected route(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const path = url.pathname;
    const q = url.searchParams;
    switch (path) {
      case '/metrics': {
        const text = this.agent.scrape();
        res.writeHead(200, { 'content-type': CONTENT_TYPE, 'content-length': Buffer.byteLength(text) });
        res.end(text);
        return;
      }
      case '/api/v1/events': {
        this.agent.poll();
        const filter = eventFilter(q, this.agent.eventTypes);
        const since = intParam(q.get('since'), 'since', Number.MAX_SAFE_INTEGER);
        const limit = intParam(q.get('limit'), 'limit', MAX_LIMIT) ?? 1000;
        const log = this.agent.events;
        const events = since === undefined ? log.newest(limit, filter) : log.since(since, limit, filter);
        json(res, 200, { events, last: log.last, evicted: log.evicted });
        return;
      }
      case '/api/v1/events/stream':
        this.streams.serve(req, res, q, eventFilter(q, this.agent.eventTypes), 'agent');
        return;
      case '/api/v1/pods':
        json(res, 200, { pods: this.agent.podsView() });
        return;
      case '/api/v1/profiles': {
        const pq = parseProfileQuery(q, Date.now());
        sendProfile(res, this.agent.profile(pq), pq.format);
        return;
      }
      case '/api/v1/status':
        json(res, 200, { ...this.agent.status(), api: this.status() });
        return;
      case '/healthz':
        json(res, 200, { ok: true });
        return;
      default: {
        const extra = path.startsWith('/api/v1/') ? this.agent.route(path.slice('/api/v1/'.length)) : undefined;
        if (extra) {
          json(res, 200, extra(q));
          return;
        }
        throw new HttpError(404, `no such path ${path.slice(0, 200)}`, 'try /metrics, /api/v1/events, /api/v1/events/stream, /api/v1/pods, /api/v1/profiles or /api/v1/status');
      }
    }
  }

  /** What the API serves and refuses, for /api/v1/status. */
  status(): { streams: number; connections: { open: number; clients: number }; refused: Api['refused'] } {
    return { streams: this.streams.open, connections: this.connections(), refused: { ...this.refused } };
  }
}
