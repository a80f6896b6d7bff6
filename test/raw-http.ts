/**
 * HTTP spoken by hand over a TCP (or TLS) socket, for tests that send what no HTTP client would:
 * malformed request lines, requests split byte by byte, pipelines, clients that never finish. An
 * exchange ends when the server closes, when every expected response has arrived in full, or when
 * the time is up (then `hung` says so); the responses it got are parsed as far as they go.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface Exchange {
  responses: RawResponse[];
  /** every byte the server sent */
  raw: string;
  /** the server closed the connection (rather than the test giving up or finishing) */
  closedByServer: boolean;
  /** nothing settled the exchange before timeoutMs */
  hung: boolean;
  /** the connection failed (refused, reset ...) */
  error?: string;
  ms: number;
}

export interface ExchangeOptions {
  host?: string;
  port: number;
  /** the client's address (any 127.0.0.0/8 address on loopback), to appear as another client */
  localAddress?: string;
  /** wait between chunks (ms) */
  delayMs?: number;
  /** settle once this many complete responses have arrived (default: when the server closes) */
  responses?: number;
  /** responses to HEAD carry no body */
  head?: boolean;
  timeoutMs?: number;
  /** speak TLS, trusting this CA */
  tls?: { ca: string | Buffer; servername?: string };
  /** half-close after sending */
  end?: boolean;
}

/** Responses complete in `raw` so far, and whether the last one is cut short. */
export function parseResponses(raw: Buffer, head = false): { responses: RawResponse[]; partial: boolean } {
  const responses: RawResponse[] = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf('\r\n\r\n', at);
    if (end < 0) return { responses, partial: true };
    const lines = raw.subarray(at, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]!);
    if (!m) return { responses, partial: true };
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const status = Number(m[1]);
    let bodyEnd = end + 4;
    if (status === 100) {
      at = bodyEnd;
      continue;
    }
    if (!head && headers['content-length'] !== undefined) {
      bodyEnd += Number(headers['content-length']);
      if (bodyEnd > raw.length) return { responses, partial: true };
    } else if (!head && headers['transfer-encoding'] === 'chunked') {
      const last = raw.indexOf('\r\n0\r\n\r\n', end);
      if (last < 0) return { responses, partial: true };
      bodyEnd = last + 7;
    } else if (!head && status !== 204 && status !== 304) {
      // no length: the body runs to the close
      bodyEnd = raw.length;
    }
    responses.push({ status, headers, body: raw.subarray(end + 4, bodyEnd).toString('utf8') });
    at = bodyEnd;
  }
  return { responses, partial: false };
}

/** Sends `chunks` and collects what comes back. */
export function exchange(chunks: (string | Buffer)[] | string | Buffer, opts: ExchangeOptions): Promise<Exchange> {
  const list = Array.isArray(chunks) ? chunks : [chunks];
  const started = Date.now();
  const host = opts.host ?? '127.0.0.1';
  return new Promise((resolve) => {
    const received: Buffer[] = [];
    let settled = false;
    let closedByServer = false;
    let error: string | undefined;
    const socket: Socket = opts.tls
      ? tlsConnect({ host, port: opts.port, ca: opts.tls.ca, servername: opts.tls.servername ?? 'localhost', ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) })
      : tcpConnect({ host, port: opts.port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) });
    const finish = (hung: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(received);
      resolve({ responses: parseResponses(raw, opts.head).responses, raw: raw.toString('latin1'), closedByServer, hung, ...(error ? { error } : {}), ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(true), opts.timeoutMs ?? 5_000);
    socket.on('data', (d: Buffer) => {
      received.push(d);
      if (opts.responses !== undefined) {
        const { responses, partial } = parseResponses(Buffer.concat(received), opts.head);
        if (responses.length >= opts.responses && !partial) finish(false);
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.on('close', () => {
      closedByServer = !settled;
      finish(false);
    });
    socket.once(opts.tls ? 'secureConnect' : 'connect', () => {
      void (async () => {
        for (const c of list) {
          if (socket.destroyed) return;
          socket.write(c);
          if (opts.delayMs) await new Promise((r) => setTimeout(r, opts.delayMs));
        }
        if (opts.end) socket.end();
      })();
    });
  });
}

/** A request as bytes: `GET /path HTTP/1.1` with a Host header and the given extra header lines. */
export function request(target: string, headers: string[] = [], method = 'GET'): string {
  return `${method} ${target} HTTP/1.1\r\nHost: agent\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
}
