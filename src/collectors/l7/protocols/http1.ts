/**
 * HTTP/1.x on one connection: request and status lines and the headers that frame a message, bodies
 * skipped by `Content-Length` or chunked encoding, and responses matched to requests in order (a
 * FIFO of outstanding requests: keep-alive and pipelining; each final response pops the oldest).
 *
 * Bodies are skipped by their declared length whether their bytes were captured or not (the chunk's
 * `size` says how many went by). A chunk-size line, a head, or a chunk's closing CRLF that must be
 * read but fell in uncaptured bytes loses the message boundary: the direction is then desynchronized
 * and resumes at the first later chunk that starts with a request line (or a status line), the
 * message in progress recorded as partial and ended at the last chunk before that — except where a
 * call ends, uncaptured, exactly where a body's last chunk would: that is taken as the body's end
 * (servers write it with the last data, so nginx's chunked responses past the capture end so). Responses to
 * `HEAD`, 1xx, 204 and 304 have no body; 1xx other than 101 is interim and matches nothing; 101 and a
 * successful `CONNECT` turn the connection into a tunnel that is no longer parsed. A response that
 * has neither length nor chunking runs to the connection's end.
 *
 * Latency is request start (its first byte) to response end (its last byte); `responseStart` is the
 * response's first byte. A response is an error when its status is 5xx.
 */
import { decimal, hex, indexOfBlankLine, indexOfCrlf, startsWith, text } from './bytes.js';
import { isSecretHeader, sample } from './redact.js';
import { splitTarget, templatePath } from './route.js';
import { ByteStream } from './stream.js';
import { type Chunk, type ConnectionParser, type Direction, type HttpRecord, type ParserContext, requestDirection } from './types.js';

/** Methods recognised when classifying a connection or resynchronizing on one. */
export const HTTP_METHODS = new Set([
  'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH',
  'PROPFIND', 'PROPPATCH', 'MKCOL', 'COPY', 'MOVE', 'LOCK', 'UNLOCK', 'SEARCH', 'REPORT', 'PURGE',
]);

/** Does `b` start with `METHOD SP` for a known method followed by a target? */
export function looksLikeRequest(b: Uint8Array): boolean {
  const sp = b.indexOf(0x20);
  if (sp < 3 || sp > 9 || sp + 1 >= b.length) return false;
  if (!HTTP_METHODS.has(text(b, 0, sp))) return false;
  const t = b[sp + 1]!;
  return t === 0x2f || t === 0x2a || (t >= 0x61 && t <= 0x7a) || (t >= 0x41 && t <= 0x5a); // / * or a scheme/authority
}

/** Does `b` start with `HTTP/1.x NNN`? */
export function looksLikeResponse(b: Uint8Array): boolean {
  if (!startsWith(b, 'HTTP/1.') || b.length < 12) return false;
  return (b[7] === 0x30 || b[7] === 0x31) && b[8] === 0x20 && decimal(b, 9, 12) !== undefined;
}

/** The head of a message, as far as it was captured. */
interface Head {
  /** request: method; response: undefined */
  method?: string;
  target?: string;
  status?: number;
  host?: string;
  contentLength?: number;
  chunked: boolean;
  /** bytes of the head, start line to blank line */
  length: number;
}

/** Parses a start line and headers; `complete` false when the head was cut short at `b`'s end. */
function parseHead(b: Uint8Array, request: boolean, complete: boolean, length: number): Head | undefined {
  const lineEnd = indexOfCrlf(b, 0, 8192);
  const startLine = text(b, 0, lineEnd < 0 ? b.length : lineEnd, 8192);
  const head: Head = { chunked: false, length };
  if (request) {
    const m = /^([A-Z][A-Z0-9_-]{0,19}) (\S+)(?: HTTP\/1\.[01])?$/.exec(startLine) ?? (complete ? undefined : /^([A-Z][A-Z0-9_-]{0,19}) (\S+)/.exec(startLine));
    if (!m) return undefined;
    head.method = m[1]!;
    if (lineEnd >= 0 || m[2]!.length < startLine.length - m[1]!.length - 1) head.target = m[2]!;
  } else {
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(startLine);
    if (!m) return undefined;
    head.status = Number(m[1]);
  }
  if (lineEnd < 0) return head;
  let at = lineEnd + 2;
  while (at < b.length) {
    const end = indexOfCrlf(b, at);
    if (end === at) break;
    const stop = end < 0 ? b.length : end;
    if (end < 0 && complete) break;
    const colon = b.indexOf(0x3a, at);
    if (colon > at && colon < stop) {
      const name = text(b, at, colon, 64).toLowerCase();
      // a cut-off value cannot be trusted for lengths; secrets are never read
      if (end >= 0 && !isSecretHeader(name)) header(head, name, text(b, colon + 1, stop, 4096).trim());
    }
    if (end < 0) break;
    at = end + 2;
  }
  return head;
}

function header(head: Head, name: string, value: string): void {
  if (name === 'content-length') {
    const n = /^\d{1,15}$/.test(value) ? Number(value) : undefined;
    if (n !== undefined) head.contentLength = n;
  } else if (name === 'transfer-encoding') {
    head.chunked = /(^|,)\s*chunked\s*$/i.test(value);
  } else if (name === 'host') {
    head.host = value;
  }
}

interface PendingRequest {
  start: bigint;
  method: string | undefined;
  target: string | undefined;
  host: string | undefined;
  bytes: number;
  partial: boolean;
}

interface Response {
  req: PendingRequest | undefined;
  start: bigint;
  status: number | undefined;
  bytes: number;
  partial: boolean;
}

type State = 'head' | 'fixed' | 'chunk-size' | 'chunk-end' | 'trailers' | 'until-close' | 'desync' | 'tunnel';

interface Side {
  stream: ByteStream;
  state: State;
  /** the request being read (requests) or the response being read (responses) */
  bytesTarget: { bytes: number } | undefined;
}

export class Http1Parser implements ConnectionParser {
  private readonly reqDir: Direction;
  private readonly sides: Record<Direction, Side>;
  private readonly fifo: PendingRequest[] = [];
  private response: Response | undefined;
  /** whether any request head was seen: a response before the first one means the capture began mid-connection */
  private sawRequest = false;

  constructor(private readonly ctx: ParserContext) {
    this.reqDir = requestDirection(ctx.role);
    const side = (): Side => ({ stream: new ByteStream(ctx.options.maxBuffer), state: 'head', bytesTarget: undefined });
    this.sides = { egress: side(), ingress: side() };
  }

  push(chunk: Chunk): void {
    const side = this.sides[chunk.dir];
    if (side.state === 'tunnel') return;
    side.stream.push(chunk.data, chunk.size, chunk.time);
    this.drain(chunk.dir === this.reqDir, side);
  }

  buffered(): number {
    return this.sides.egress.stream.buffered + this.sides.ingress.stream.buffered;
  }

  close(time: bigint): void {
    if (this.response) this.finishResponse(time, true);
    for (const req of this.fifo.splice(0)) {
      this.ctx.stats.unansweredRequests++;
      this.emit(req, undefined, time);
    }
  }

  private drain(request: boolean, side: Side): void {
    const s = side.stream;
    for (;;) {
      if (s.skipping > 0 || side.state === 'tunnel') return;
      if (side.state === 'fixed') {
        this.endMessage(request, side);
        continue;
      }
      if (s.empty) return;
      if (side.state === 'desync') {
        const head = s.peekChunk();
        if (s.atChunkStart() && (request ? looksLikeRequest(head) : looksLikeResponse(head))) {
          if (!request && this.response) this.finishResponse(s.lastTime, true);
          side.bytesTarget = undefined;
          side.state = 'head';
          continue;
        }
        const n = s.dropChunk();
        this.ctx.stats.resyncSkippedBytes += n;
        if (side.bytesTarget) side.bytesTarget.bytes += n;
        continue;
      }
      if (side.state === 'until-close') {
        const n = s.dropChunk();
        if (side.bytesTarget) side.bytesTarget.bytes += n;
        continue;
      }
      if (!this.step(request, side)) return;
    }
  }

  /** One parsing step in states that read captured bytes; false when it must wait for more. */
  private step(request: boolean, side: Side): boolean {
    const s = side.stream;
    const b = s.peek();
    if (side.state === 'chunk-end') {
      if (b.length < 2 && !s.atGap() && !s.runEndsInGap()) return false;
      if (b.length >= 2 && (b[0] !== 0x0d || b[1] !== 0x0a)) return this.desync(side, request);
      s.skip(2); // a CRLF cut by the capture is skipped unseen: its length is known
      this.addBytes(side, 2);
      side.state = 'chunk-size';
      return true;
    }
    if (this.endsAsLastChunk(side)) {
      const rest = s.restOfChunk();
      s.skip(rest);
      this.addBytes(side, rest);
      this.endMessage(request, side);
      return true;
    }
    if (s.atGap()) return this.desync(side, request);
    if (side.state === 'head') return this.readHead(request, side, b);
    // chunk-size and trailers read one line
    const eol = indexOfCrlf(b, 0, 4096);
    if (eol < 0) return b.length < 4096 && !s.runEndsInGap() ? false : this.desync(side, request);
    s.skip(eol + 2);
    this.addBytes(side, eol + 2);
    if (side.state === 'trailers') {
      if (eol === 0) this.endMessage(request, side);
      return true;
    }
    const semi = b.subarray(0, eol).indexOf(0x3b);
    const size = hex(b, 0, semi >= 0 ? semi : eol);
    if (size === undefined) return this.desync(side, request);
    if (size === 0) {
      side.state = 'trailers';
    } else {
      s.skip(size);
      this.addBytes(side, size);
      side.state = 'chunk-end';
    }
    return true;
  }

  /**
   * Whether the head call ends, cut by the capture, exactly where a chunked body's last chunk would
   * (`0\r\n\r\n`, or the blank line after `0\r\n`), its captured bytes that end's start: taken as
   * that. A server writes a chunked body's end with its last data, so a response bigger than the
   * capture ends this way; a wrong guess ends the body early, and the next call, no message start,
   * desynchronizes as it would have.
   */
  private endsAsLastChunk(side: Side): boolean {
    const end = side.state === 'chunk-size' ? '0\r\n\r\n' : side.state === 'trailers' ? '\r\n' : undefined;
    if (end === undefined) return false;
    const s = side.stream;
    const seen = s.peekChunk();
    return s.restOfChunk() === end.length && seen.length < end.length && seen.every((c, i) => c === end.charCodeAt(i));
  }

  private readHead(request: boolean, side: Side, b: Uint8Array): boolean {
    const s = side.stream;
    const blank = indexOfBlankLine(b);
    const cut = blank < 0 && (s.runEndsInGap() || b.length >= this.ctx.options.maxBuffer);
    if (blank < 0 && !cut) return false;
    const length = blank < 0 ? b.length : blank + 4;
    const head = parseHead(b.subarray(0, length), request, !cut, length);
    if (!head) return this.desync(side, request);
    const time = s.headTime();
    s.skip(length);
    if (request) this.startRequest(head, time, cut, side);
    else if (!this.startResponse(head, time, cut, side)) return true;
    if (cut) return this.desync(side, request);
    const body = this.bodyOf(request, head);
    if (body === 'chunked') side.state = 'chunk-size';
    else if (body === 'close' || body === 'tunnel') side.state = body === 'close' ? 'until-close' : 'tunnel';
    else if (body > 0) {
      s.skip(body);
      this.addBytes(side, body);
      side.state = 'fixed';
    } else this.endMessage(request, side);
    if (side.state === 'tunnel') {
      this.finishResponse(time, false);
      this.sides[this.reqDir].state = 'tunnel';
      this.sides[this.reqDir].stream.clear();
      s.clear();
    }
    return true;
  }

  /** How the body after `head` is framed: a length (0 for none), chunked, to the connection's end, or a tunnel. */
  private bodyOf(request: boolean, head: Head): number | 'chunked' | 'close' | 'tunnel' {
    if (request) return head.chunked ? 'chunked' : (head.contentLength ?? 0);
    const status = head.status!;
    const method = this.response?.req?.method;
    if (status === 101 || (method === 'CONNECT' && status >= 200 && status < 300)) return 'tunnel';
    if (method === 'HEAD' || status < 200 || status === 204 || status === 304) return 0;
    if (head.chunked) return 'chunked';
    return head.contentLength ?? 'close';
  }

  private startRequest(head: Head, time: bigint, cut: boolean, side: Side): void {
    const req: PendingRequest = { start: time, method: head.method, target: head.target, host: head.host, bytes: head.length, partial: cut };
    if (this.fifo.length >= this.ctx.options.maxPending) {
      this.fifo.shift();
      this.ctx.stats.pendingOverflow++;
    }
    this.fifo.push(req);
    this.sawRequest = true;
    side.bytesTarget = req;
  }

  /** Starts reading a response; false for an interim (1xx) response, which matches no request. */
  private startResponse(head: Head, time: bigint, cut: boolean, side: Side): boolean {
    if (head.status! >= 100 && head.status! < 200 && head.status !== 101) {
      side.bytesTarget = undefined;
      return cut;
    }
    const req = this.fifo.shift();
    if (!req) this.ctx.stats.unmatchedResponses++;
    this.response = { req, start: time, status: head.status, bytes: head.length, partial: cut };
    side.bytesTarget = this.response;
    return true;
  }

  private endMessage(request: boolean, side: Side): void {
    side.state = 'head';
    side.bytesTarget = undefined;
    if (!request) this.finishResponse(side.stream.lastTime, false);
  }

  private addBytes(side: Side, n: number): void {
    if (side.bytesTarget) side.bytesTarget.bytes += n;
  }

  /** Loses the message boundaries: the rest of the chunk at the head is dropped (never read again as a start). */
  private desync(side: Side, request: boolean): boolean {
    this.ctx.stats.desyncs++;
    side.state = 'desync';
    const target = request ? this.fifo[this.fifo.length - 1] : this.response;
    if (target && side.bytesTarget === target) target.partial = true;
    const n = side.stream.dropChunk();
    this.ctx.stats.resyncSkippedBytes += n;
    if (side.bytesTarget) side.bytesTarget.bytes += n;
    return true;
  }

  private finishResponse(end: bigint, partial: boolean): void {
    const r = this.response;
    if (!r) return;
    this.response = undefined;
    r.partial ||= partial;
    this.emit(r.req, r, end);
  }

  private emit(req: PendingRequest | undefined, res: Response | undefined, end: bigint): void {
    const { options } = this.ctx;
    const target = req?.target !== undefined ? splitTarget(req.target) : undefined;
    const code = res?.status;
    const record: HttpRecord = {
      protocol: 'http1',
      conn: this.ctx.conn,
      role: this.ctx.role,
      start: req?.start ?? res!.start,
      responseStart: res?.start,
      end,
      requestBytes: req?.bytes ?? 0,
      responseBytes: res?.bytes ?? 0,
      status: code !== undefined ? String(code) : res ? 'unknown' : 'none',
      error: code !== undefined && code >= 500,
      requestPartial: req === undefined || req.partial,
      responsePartial: res === undefined || res.partial,
      midStream: req === undefined && !this.sawRequest,
      method: req?.method,
      path: target ? sample(options, target.path) : undefined,
      route: target ? templatePath(target.path) : undefined,
      host: sample(options, req?.host ?? target?.authority),
      statusCode: code,
    };
    this.ctx.stats.records++;
    this.ctx.emit(record);
  }
}
