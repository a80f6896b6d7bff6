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
 *   GET /api/v1/<path>            routes the running collectors declare
 *   GET /healthz                  liveness (never authenticated)
 * HEAD works wherever GET does; other methods get 405 with Allow. With a bearer token (--token-file)
 * every route but /healthz needs `Authorization: Bearer <token>`; /metrics may be left open for
 * Prometheus (--metrics-open). Errors are JSON: {"error", "hint"}.
 *
 * Shares: a client address holds at most maxConnectionsPerClient connections (past that, 429), the
 * server maxConnections; headers must arrive within 10 s; at most maxStreamClients live streams
 * (past that, 503 with Retry-After), each with a bounded backlog (see stream()).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createHash, timingSafeEqual } from 'node:crypto';
import { type Socket } from 'node:net';
import { type Agent } from './agent.js';
import { CONTENT_TYPE } from './exposition.js';
import { type PeriscopeEvent } from '../wire/events.js';
import { BadRequest } from '../collectors/contract.js';

export interface ApiOptions {
  /** the bearer token every request but /healthz must carry; none: no authentication */
  token?: string;
  /** serve /metrics without the token */
  metricsOpen?: boolean;
  /** live-stream subscribers at once */
  maxStreamClients?: number;
  /** bytes a stream subscriber may have unsent before its events are dropped (and counted) */
  streamBufferBytes?: number;
  /** a subscriber that takes nothing for this long is disconnected, freeing its place (ms) */
  streamStallMs?: number;
  /** connections at once, in all and from one address */
  maxConnections?: number;
  maxConnectionsPerClient?: number;
  /** PEM certificate and key: serve HTTPS */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

const ALLOW = 'GET, HEAD';
const MAX_HEADER_BYTES = 16 << 10;
/** how long a connection past its client's share may stay without sending a request (ms) */
const REFUSED_IDLE_MS = 1_000;

/** One TCP connection among those open: the client's address and port. The same for a TLS socket and the TCP socket under it. */
const connectionKey = (s: Socket): string => `${s.remoteAddress} ${s.remotePort}`;

/** Most events replayed to a client that resumes. */
const MAX_REPLAY = 1_000;
const MAX_LIMIT = 10_000;

const DEFAULTS = {
  maxStreamClients: 16,
  streamBufferBytes: 256 << 10,
  streamStallMs: 30_000,
  maxConnections: 256,
  maxConnectionsPerClient: 32,
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly hint: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const badQuery = (message: string): HttpError => new HttpError(400, message, 'fix the query string');

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Every value of a parameter, comma lists split: `type=exec&type=exit,oom_kill`. */
function listParam(q: URLSearchParams, name: string): string[] {
  return q.getAll(name).flatMap((v) => v.split(',')).filter(Boolean);
}

function eventFilter(q: URLSearchParams, known: readonly string[]): (e: PeriscopeEvent) => boolean {
  const types = listParam(q, 'type');
  for (const t of types) if (!known.includes(t)) throw badQuery(`unknown event type "${t}"; use one of ${known.join(', ')}`);
  const cgroup = q.get('cgroup') ?? undefined;
  const exact = (['namespace', 'pod', 'container', 'workload'] as const).flatMap((k) => {
    const v = q.get(k);
    return v === null ? [] : [[k, v] as const];
  });
  return (e) => (types.length === 0 || types.includes(e.type)) && (!cgroup || e.cgroup.startsWith(cgroup)) && exact.every(([k, v]) => e[k] === v);
}

function intParam(raw: string | null | undefined, name: string, max: number): number | undefined {
  if (raw === null || raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < 0) throw badQuery(`${name} must be a non-negative integer, not "${raw.slice(0, 40)}"`);
  return Math.min(n, max);
}

/** Compares tokens in constant time, whatever their lengths. */
function sameToken(a: string, b: string): boolean {
  const h = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

export class Api {
  private readonly agent: Agent;
  private readonly opts: typeof DEFAULTS & Pick<ApiOptions, 'token' | 'metricsOpen'>;
  private streams = 0;
  private framed: { event: PeriscopeEvent; bytes: Buffer } | undefined;
  /** open connections by client address */
  private readonly perClient = new Map<string, number>();
  /** connections past their client's share, by connectionKey */
  private readonly overShare = new Set<string>();
  /** requests refused, by reason: exposed on /api/v1/status */
  readonly refused = { unauthenticated: 0, streams: 0, connections: 0 };

  constructor(agent: Agent, opts: ApiOptions = {}) {
    this.agent = agent;
    const defined = Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined));
    this.opts = { ...DEFAULTS, ...defined };
  }

  /** The request handler: never throws, whatever arrives. */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    try {
      if (this.overShare.has(connectionKey(req.socket))) {
        throw new HttpError(429, `too many connections from ${req.socket.remoteAddress}`, 'reuse connections (keep-alive) or open fewer at once', {
          connection: 'close',
          'retry-after': '1',
        });
      }
      this.route(req, res);
    } catch (err) {
      this.fail(res, err);
    }
  };

  private fail(res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HttpError) json(res, err.status, { error: err.message, hint: err.hint }, err.headers);
    else if (err instanceof BadRequest) json(res, 400, { error: err.message, hint: err.hint });
    else json(res, 500, { error: (err as Error)?.message ?? String(err), hint: 'see the agent log' });
  }

  private authorize(req: IncomingMessage, path: string): void {
    const { token } = this.opts;
    if (!token || path === '/healthz' || (path === '/metrics' && this.opts.metricsOpen)) return;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (m && sameToken(m[1]!, token)) return;
    this.refused.unauthenticated++;
    throw new HttpError(401, m ? 'the bearer token is wrong' : 'this agent needs a bearer token', 'send Authorization: Bearer <the token of --token-file>', {
      'www-authenticate': m ? 'Bearer realm="periscope", error="invalid_token"' : 'Bearer realm="periscope"',
    });
  }

  private route(req: IncomingMessage, res: ServerResponse): void {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://agent');
    } catch {
      throw new HttpError(400, 'the request target is not a valid URL path', 'send a path such as /metrics');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new HttpError(405, `method ${req.method} not allowed`, 'use GET', { allow: ALLOW });
    const path = url.pathname;
    this.authorize(req, path);
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
        this.stream(req, res, q);
        return;
      case '/api/v1/pods':
        json(res, 200, { pods: this.agent.podsView() });
        return;
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
        throw new HttpError(404, `no such path ${path.slice(0, 200)}`, 'try /metrics, /api/v1/events, /api/v1/events/stream, /api/v1/pods or /api/v1/status');
      }
    }
  }

  /**
   * An event as a server-sent event, encoded once for every subscriber that takes it: the log hands
   * the same event to each in turn. A storm times 16 subscribers is otherwise a storm of garbage.
   */
  private frame(e: PeriscopeEvent): Buffer {
    if (this.framed?.event !== e) this.framed = { event: e, bytes: Buffer.from(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`) };
    return this.framed.bytes;
  }

  /**
   * Server-sent events. A subscriber holds at most streamBufferBytes of unsent events (past that, its
   * events are dropped and counted), and one that takes nothing for streamStallMs is disconnected.
   * Memory is the point: each event is encoded once for all subscribers and written without chunked
   * framing (the stream ends with its connection), which cut the garbage of a storm with 16
   * subscribers, and the RSS it leaves behind, by three quarters (test/e2e/stream-storm.test.ts).
   */
  private stream(req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
    const filter = eventFilter(q, this.agent.eventTypes);
    const header = req.headers['last-event-id'];
    const resume = intParam(typeof header === 'string' ? header : undefined, 'Last-Event-ID', Number.MAX_SAFE_INTEGER) ?? intParam(q.get('since'), 'since', Number.MAX_SAFE_INTEGER);
    const head = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };
    if (req.method === 'HEAD') {
      res.writeHead(200, head);
      res.end();
      return;
    }
    if (this.streams >= this.opts.maxStreamClients) {
      this.refused.streams++;
      throw new HttpError(503, `${this.streams} live streams are open, the most this agent serves`, 'retry later, or raise --max-stream-clients', { 'retry-after': '10' });
    }
    this.streams++;
    // no chunked framing: a stream ends only when its connection does, and each event is one write
    res.removeHeader('transfer-encoding');
    res.writeHead(200, { ...head, connection: 'close' });
    res.write('retry: 2000\n\n');
    let stalledSince: number | undefined;
    const { streamBufferBytes, streamStallMs } = this.opts;
    const close = (): void => void res.destroy();
    const send = (e: PeriscopeEvent): boolean => {
      if (res.writableLength > streamBufferBytes || res.destroyed) {
        stalledSince ??= Date.now();
        if (Date.now() - stalledSince > streamStallMs) close();
        return false;
      }
      stalledSince = undefined;
      res.write(this.frame(e));
      return true;
    };
    if (resume !== undefined) for (const e of this.agent.events.since(resume, MAX_REPLAY, filter)) send(e);
    const unsubscribe = this.agent.events.subscribe({ filter, send });
    // also the stall check while no events flow
    const heartbeat = setInterval(() => {
      if (res.writableLength > streamBufferBytes) {
        stalledSince ??= Date.now();
        if (Date.now() - stalledSince > streamStallMs) close();
      } else res.write(': keep-alive\n\n');
    }, Math.min(15_000, streamStallMs));
    let done = false;
    const end = (): void => {
      if (done) return;
      done = true;
      clearInterval(heartbeat);
      unsubscribe();
      this.streams--;
    };
    res.on('close', end);
    res.on('error', end);
  }

  /**
   * Counts a new TCP connection against its client's share. Counting happens before any TLS
   * handshake, so connections that never finish one count too. A connection past the share is not
   * served: its first request is answered 429 (over TLS when the port speaks TLS, as a client can read
   * nothing else) without reaching a route, and one that sends nothing is closed after a second.
   */
  private accept = (socket: Socket): void => {
    const who = socket.remoteAddress ?? '';
    const n = this.perClient.get(who) ?? 0;
    if (n >= this.opts.maxConnectionsPerClient) {
      this.refused.connections++;
      const conn = connectionKey(socket);
      this.overShare.add(conn);
      socket.setTimeout(REFUSED_IDLE_MS, () => socket.destroy());
      socket.once('close', () => this.overShare.delete(conn));
      return;
    }
    this.perClient.set(who, n + 1);
    socket.once('close', () => {
      const left = (this.perClient.get(who) ?? 1) - 1;
      if (left <= 0) this.perClient.delete(who);
      else this.perClient.set(who, left);
    });
  };

  /** What the API serves and refuses, for /api/v1/status. */
  status(): { streams: number; connections: { open: number; clients: number }; refused: Api['refused'] } {
    let open = 0;
    for (const n of this.perClient.values()) open += n;
    return { streams: this.streams, connections: { open, clients: this.perClient.size }, refused: { ...this.refused } };
  }

  /** Listens on host:port (HTTPS with opts.tls); resolves with the server once it listens. */
  listen(host: string, port: number, tls?: ApiOptions['tls']): Promise<Server> {
    const limits = {
      maxHeaderSize: MAX_HEADER_BYTES,
      // a client gets 10 s to send its headers and 30 s for its whole request, checked every second
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      connectionsCheckingInterval: 1_000,
      keepAliveTimeout: 5_000,
    };
    const server: Server = tls ? createHttpsServer({ ...limits, cert: tls.cert, key: tls.key, handshakeTimeout: 10_000 }, this.handle) : createHttpServer(limits, this.handle);
    server.maxConnections = this.opts.maxConnections;
    // raw TCP for both: under TLS this comes before the handshake
    server.on('connection', this.accept);
    // CONNECT is not a request Node routes: without this it would be dropped without a word
    server.on('connect', (_req: IncomingMessage, socket: Socket) => {
      socket.on('error', () => socket.destroy());
      socket.end(`HTTP/1.1 405 Method Not Allowed\r\nallow: ${ALLOW}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve(server);
      });
    });
  }
}
