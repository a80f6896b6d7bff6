/**
 * What the agent's API and the hub have in common as HTTP servers facing a cluster network: no request
 * crashes them, they authenticate, and every client gets a bounded share.
 *   - Shares: a client address holds at most maxConnectionsPerClient connections (past that, 429),
 *     the server maxConnections; headers must arrive within 10 s and a whole request within 30 s.
 *   - A bearer token (constant-time compare), with paths a subclass leaves open (/healthz, ...).
 *   - Errors are JSON: {"error", "hint"}; a handler that throws (or rejects) gets a 4xx/5xx, never a crash.
 *   - Live events as server-sent events over an EventLog (EventStreams), each subscriber with a
 *     bounded backlog.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createHash, timingSafeEqual } from 'node:crypto';
import { type Socket } from 'node:net';
import { BadRequest } from '../collectors/contract.js';
import { type EventLog } from '../agent/event-log.js';
import { type PeriscopeEvent } from '../wire/events.js';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly hint: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export const badQuery = (message: string, hint = 'fix the query string'): HttpError => new HttpError(400, message, hint);

export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** Every value of a parameter, comma lists split: `type=exec&type=exit,oom_kill`. */
export function listParam(q: URLSearchParams, name: string): string[] {
  return q.getAll(name).flatMap((v) => v.split(',')).filter(Boolean);
}

export function intParam(raw: string | null | undefined, name: string, max: number): number | undefined {
  if (raw === null || raw === undefined) return undefined;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(n) || n < 0) throw badQuery(`${name} must be a non-negative integer, not "${raw.slice(0, 40)}"`);
  return Math.min(n, max);
}

/** Events matching `type` (declared types only), `cgroup` (a prefix) and exact namespace, pod, container, workload and node. */
export function eventFilter(q: URLSearchParams, known: readonly string[]): (e: PeriscopeEvent) => boolean {
  const types = listParam(q, 'type');
  for (const t of types) if (!known.includes(t)) throw badQuery(`unknown event type "${t.slice(0, 100)}"; use one of ${known.join(', ')}`);
  const cgroup = q.get('cgroup') ?? undefined;
  const exact = (['namespace', 'pod', 'container', 'workload', 'node'] as const).flatMap((k) => {
    const v = q.get(k);
    return v === null ? [] : [[k, v] as const];
  });
  return (e) => (types.length === 0 || types.includes(e.type)) && (!cgroup || e.cgroup.startsWith(cgroup)) && exact.every(([k, v]) => e[k] === v);
}

/** Compares tokens in constant time, whatever their lengths. */
export function sameToken(a: string, b: string): boolean {
  const h = (s: string): Buffer => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

/** One TCP connection among those open: the client's address and port. The same for a TLS socket and the TCP socket under it. */
const connectionKey = (s: Socket): string => `${s.remoteAddress} ${s.remotePort}`;
const MAX_HEADER_BYTES = 16 << 10;
/** how long a connection past its client's share may stay without sending a request (ms) */
const REFUSED_IDLE_MS = 1_000;

export interface FaceOptions {
  /** the bearer token requests must carry (none: no authentication) */
  token?: string;
  /** connections at once, in all and from one address */
  maxConnections?: number;
  maxConnectionsPerClient?: number;
}

export type Tls = { cert: string | Buffer; key: string | Buffer };

/**
 * An HTTP server with shares and a bearer token. Subclasses route: `route()` may return a promise,
 * whose rejection is answered like a throw.
 */
export abstract class HttpFace {
  /** open connections by client address */
  private readonly perClient = new Map<string, number>();
  /** connections past their client's share, by connectionKey */
  private readonly overShare = new Set<string>();
  /** requests refused, by reason */
  readonly refused = { unauthenticated: 0, streams: 0, connections: 0 };
  protected readonly face: Required<Omit<FaceOptions, 'token'>> & Pick<FaceOptions, 'token'>;

  constructor(
    opts: FaceOptions,
    /** "agent" or "hub", for messages */
    protected readonly what: string,
  ) {
    this.face = { maxConnections: opts.maxConnections ?? 256, maxConnectionsPerClient: opts.maxConnectionsPerClient ?? 32, ...(opts.token ? { token: opts.token } : {}) };
  }

  /** Methods a path answers (405 with Allow for the others). */
  protected methods(_path: string): readonly string[] {
    return ['GET', 'HEAD'];
  }

  /** Paths served without the token. */
  protected open(path: string): boolean {
    return path === '/healthz';
  }

  /** What the token file flag is called, for the 401's hint. */
  protected tokenHint = 'send Authorization: Bearer <the token of --token-file>';

  protected abstract route(req: IncomingMessage, res: ServerResponse, url: URL): void | Promise<void>;

  /** The request handler: never throws, whatever arrives. */
  handle = (req: IncomingMessage, res: ServerResponse): void => {
    try {
      if (this.overShare.has(connectionKey(req.socket))) {
        throw new HttpError(429, `too many connections from ${req.socket.remoteAddress}`, 'reuse connections (keep-alive) or open fewer at once', {
          connection: 'close',
          'retry-after': '1',
        });
      }
      let url: URL;
      try {
        url = new URL(req.url ?? '/', `http://${this.what}`);
      } catch {
        throw new HttpError(400, 'the request target is not a valid URL path', 'send a path such as /metrics');
      }
      const allow = this.methods(url.pathname);
      if (!allow.includes(req.method ?? '')) throw new HttpError(405, `method ${req.method} not allowed`, `use ${allow.join(' or ')}`, { allow: allow.join(', ') });
      this.authorize(req, url.pathname);
      const pending = this.route(req, res, url);
      if (pending) pending.catch((err: unknown) => this.fail(res, err));
    } catch (err) {
      this.fail(res, err);
    }
  };

  protected fail(res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof HttpError) json(res, err.status, { error: err.message, hint: err.hint }, err.headers);
    else if (err instanceof BadRequest) json(res, 400, { error: err.message, hint: err.hint });
    else json(res, 500, { error: (err as Error)?.message ?? String(err), hint: `see the ${this.what} log` });
  }

  private authorize(req: IncomingMessage, path: string): void {
    const { token } = this.face;
    if (!token || this.open(path)) return;
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (m && sameToken(m[1]!, token)) return;
    this.refused.unauthenticated++;
    throw new HttpError(401, m ? 'the bearer token is wrong' : `this ${this.what} needs a bearer token`, this.tokenHint, {
      'www-authenticate': m ? 'Bearer realm="periscope", error="invalid_token"' : 'Bearer realm="periscope"',
    });
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
    if (n >= this.face.maxConnectionsPerClient) {
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

  /** Connections open now, and from how many clients. */
  connections(): { open: number; clients: number } {
    let open = 0;
    for (const n of this.perClient.values()) open += n;
    return { open, clients: this.perClient.size };
  }

  /** Listens on host:port (HTTPS with tls); resolves with the server once it listens. */
  listen(host: string, port: number, tls?: Tls): Promise<Server> {
    const limits = {
      maxHeaderSize: MAX_HEADER_BYTES,
      // a client gets 10 s to send its headers and 30 s for its whole request, checked every second
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      connectionsCheckingInterval: 1_000,
      keepAliveTimeout: 5_000,
    };
    const server: Server = tls ? createHttpsServer({ ...limits, cert: tls.cert, key: tls.key, handshakeTimeout: 10_000 }, this.handle) : createHttpServer(limits, this.handle);
    server.maxConnections = this.face.maxConnections;
    // raw TCP for both: under TLS this comes before the handshake
    server.on('connection', this.accept);
    // CONNECT is not a request Node routes: without this it would be dropped without a word
    server.on('connect', (_req: IncomingMessage, socket: Socket) => {
      socket.on('error', () => socket.destroy());
      socket.end(`HTTP/1.1 405 Method Not Allowed\r\nallow: GET, HEAD\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
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

export interface StreamOptions {
  /** live-stream subscribers at once */
  maxStreamClients: number;
  /** bytes a stream subscriber may have unsent before its events are dropped (and counted) */
  streamBufferBytes: number;
  /** a subscriber that takes nothing for this long is disconnected, freeing its place (ms) */
  streamStallMs: number;
}

/** Most events replayed to a client that resumes. */
export const MAX_REPLAY = 1_000;

/**
 * Server-sent events from an EventLog. A subscriber holds at most streamBufferBytes of unsent events
 * (past that, its events are dropped and counted by the log), and one that takes nothing for
 * streamStallMs is disconnected. Memory is the point: each event is encoded once for all subscribers
 * and written without chunked framing (the stream ends with its connection), which cut the garbage of
 * a storm with 16 subscribers, and the RSS it leaves behind, by three quarters
 * (test/e2e/stream-storm.test.ts).
 */
export class EventStreams {
  open = 0;
  private framed: { event: PeriscopeEvent; bytes: Buffer } | undefined;

  constructor(
    private readonly log: EventLog,
    private readonly opts: StreamOptions,
    private readonly refused: { streams: number },
    /** the flag that raises maxStreamClients, for the 503's hint */
    private readonly flag = '--max-stream-clients',
  ) {}

  /** An event as a server-sent event, encoded once for every subscriber that takes it. */
  private frame(e: PeriscopeEvent): Buffer {
    if (this.framed?.event !== e) this.framed = { event: e, bytes: Buffer.from(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`) };
    return this.framed.bytes;
  }

  serve(req: IncomingMessage, res: ServerResponse, q: URLSearchParams, filter: (e: PeriscopeEvent) => boolean, what: string): void {
    const header = req.headers['last-event-id'];
    const resume = intParam(typeof header === 'string' ? header : undefined, 'Last-Event-ID', Number.MAX_SAFE_INTEGER) ?? intParam(q.get('since'), 'since', Number.MAX_SAFE_INTEGER);
    const head = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };
    if (req.method === 'HEAD') {
      res.writeHead(200, head);
      res.end();
      return;
    }
    if (this.open >= this.opts.maxStreamClients) {
      this.refused.streams++;
      throw new HttpError(503, `${this.open} live streams are open, the most this ${what} serves`, `retry later, or raise ${this.flag}`, { 'retry-after': '10' });
    }
    this.open++;
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
    if (resume !== undefined) for (const e of this.log.since(resume, MAX_REPLAY, filter)) send(e);
    const unsubscribe = this.log.subscribe({ filter, send });
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
      this.open--;
    };
    res.on('close', end);
    res.on('error', end);
  }
}
