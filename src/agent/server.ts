/**
 * The agent's HTTP face:
 *   GET /metrics                  Prometheus text format, read from the kernel at scrape time
 *   GET /api/v1/events            recent events as JSON (?since=SEQ&limit=N&type=exec,exit&cgroup=PREFIX
 *                                 &namespace=NS&pod=NAME&container=NAME&workload=NAME)
 *   GET /api/v1/events/stream     live events as server-sent events (same filters; Last-Event-ID resumes)
 *   GET /api/v1/pods              pods of this node: IPs, network namespace inode, cgroups
 *   GET /api/v1/status            collectors, the alternative each took, what failed
 *   GET /healthz                  liveness
 * Errors are JSON: {"error": what happened, "hint": what to do}.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type Agent } from './agent.js';
import { EVENT_TYPES, type EventType, type PeriscopeEvent } from '../wire/events.js';

/** Bytes one SSE client may have unsent before new events are dropped for it (and counted). */
const MAX_STREAM_BYTES = 1 << 20;
/** Most events replayed to a client that resumes. */
const MAX_REPLAY = 1_000;

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

class BadRequest extends Error {}

function eventFilter(q: URLSearchParams): (e: PeriscopeEvent) => boolean {
  const types = q.get('type')?.split(',').filter(Boolean);
  for (const t of types ?? []) {
    if (!EVENT_TYPES.includes(t as EventType)) throw new BadRequest(`unknown event type "${t}"; use one of ${EVENT_TYPES.join(', ')}`);
  }
  const cgroup = q.get('cgroup') ?? undefined;
  const exact = (['namespace', 'pod', 'container', 'workload'] as const).flatMap((k) => {
    const v = q.get(k);
    return v === null ? [] : [[k, v] as const];
  });
  return (e) => (!types || types.includes(e.type)) && (!cgroup || e.cgroup.startsWith(cgroup)) && exact.every(([k, v]) => e[k] === v);
}

function intParam(q: URLSearchParams, name: string, dflt: number, max: number): number {
  const raw = q.get(name);
  if (raw === null) return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new BadRequest(`${name} must be a non-negative integer, not "${raw}"`);
  return Math.min(n, max);
}

function stream(agent: Agent, req: IncomingMessage, res: ServerResponse, q: URLSearchParams): void {
  const filter = eventFilter(q);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  res.write('retry: 2000\n\n');
  const send = (e: PeriscopeEvent): boolean => {
    if (res.writableLength > MAX_STREAM_BYTES) return false;
    res.write(`id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`);
    return true;
  };
  // resume after the last event the client saw, if it says so
  const lastId = Number(req.headers['last-event-id'] ?? q.get('since') ?? NaN);
  if (Number.isInteger(lastId)) for (const e of agent.events.since(lastId, MAX_REPLAY, filter)) send(e);
  const unsubscribe = agent.events.subscribe({ filter, send });
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  req.on('close', () => {
    clearInterval(heartbeat);
    unsubscribe();
  });
}

export function handler(agent: Agent): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    const q = url.searchParams;
    const route = async (): Promise<void> => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        json(res, 405, { error: `method ${req.method} not allowed`, hint: 'use GET' });
        return;
      }
      switch (url.pathname) {
        case '/metrics': {
          agent.refresh();
          const text = await agent.registry.metrics();
          res.writeHead(200, { 'content-type': agent.registry.contentType });
          res.end(text);
          return;
        }
        case '/api/v1/events': {
          agent.poll();
          const filter = eventFilter(q);
          const since = intParam(q, 'since', 0, Number.MAX_SAFE_INTEGER);
          const limit = intParam(q, 'limit', 1000, 10_000);
          const events = agent.events.since(since, limit, filter);
          json(res, 200, { events, last: agent.events.last, evicted: agent.events.evicted });
          return;
        }
        case '/api/v1/events/stream':
          stream(agent, req, res, q);
          return;
        case '/api/v1/pods':
          json(res, 200, { pods: agent.podsView() });
          return;
        case '/api/v1/status':
          json(res, 200, agent.status());
          return;
        case '/healthz':
          json(res, 200, { ok: true });
          return;
        default:
          json(res, 404, { error: `no such path ${url.pathname}`, hint: 'try /metrics, /api/v1/events, /api/v1/events/stream or /api/v1/status' });
      }
    };
    route().catch((err: unknown) => {
      if (err instanceof BadRequest) json(res, 400, { error: err.message, hint: 'fix the query string' });
      else if (!res.headersSent) json(res, 500, { error: (err as Error).message, hint: 'see the agent log' });
      else res.destroy(err as Error);
    });
  };
}

export function listen(agent: Agent, host: string, port: number): Promise<Server> {
  const server = createServer(handler(agent));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}
