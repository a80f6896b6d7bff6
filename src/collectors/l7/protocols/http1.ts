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
export interface Head {
  /** request: method; response: undefined */
  method: string | undefined;
  target: string | undefined;
  status: number | undefined;
  host: string | undefined;
  contentLength: number | undefined;
  chunked: boolean;
  /** bytes of the head, start line to blank line */
  length: number;
}

/** A head with nothing read yet: every head has all the fields, in this order (one shape for the engine). */
const newHead = (length: number): Head => ({ method: undefined, target: undefined, status: undefined, host: undefined, contentLength: undefined, chunked: false, length });

/**
 * Parses a start line and headers; `complete` false when the head was cut short at `b`'s end. The
 * general reader: every head `quickHead` leaves, and the reference that `quickHead` must agree with.
 */
export function parseHead(b: Uint8Array, request: boolean, complete: boolean, length: number): Head | undefined {
  const lineEnd = indexOfCrlf(b, 0, 8192);
  const startLine = text(b, 0, lineEnd < 0 ? b.length : lineEnd, 8192);
  const head = newHead(length);
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

/**
 * The common head read in place: a request line `METHOD SP target SP HTTP/1.x` or a status line,
 * headers whose names are compared as bytes (any case), and only the strings a record keeps made
 * (the target, the host; a known method is the one string of its name). It reads only a head whose
 * blank line is in `b` and whose start line is plain (a method of capitals, a target of printable
 * ASCII, HTTP/1.0 or 1.1); anything else is left to `parseHead` (undefined), whose result it must
 * equal wherever it gives one: the tests hold the two to it. Keep-alive traffic is almost all heads
 * like these, and `parseHead` makes a string of every name and value and runs regexes per head.
 */
export function quickHead(b: Uint8Array, request: boolean, from = 0, to = b.length, knownHost?: string): Head | undefined {
  const lineEnd = request ? requestLineEnd(b, from, to) : statusLineEnd(b, from, to);
  if (lineEnd < 0) return undefined;
  const head = newHead(0);
  if (request) {
    let sp = from + 1;
    while (b[sp] !== SP) sp++; // requestLineEnd saw it within 20 bytes
    head.method = methodName(b, from, sp);
    head.target = text(b, sp + 1, lineEnd - 9);
  } else head.status = decimal(b, from + 9, from + 12);
  let at = lineEnd + 2;
  for (;;) {
    if (at + 1 >= to) return undefined; // no blank line here: parseHead decides whether to wait
    if (b[at] === CR && b[at + 1] === LF) break;
    const end = crlfBefore(b, at, to);
    if (end < 0) return undefined;
    quickHeader(head, b, at, end, knownHost);
    at = end + 2;
  }
  head.length = at + 2 - from;
  return head;
}

const CR = 0x0d;
const LF = 0x0a;
const SP = 0x20;
const COLON = 0x3a;

/**
 * Where the first CRLF at or after `at` is, its LF before `to`; -1 if none. It looks at every other
 * byte: a CRLF's two bytes cannot both fall between two it looks at, and at a CR or an LF it looks
 * at the byte beside it (the first found is the first there is: the next one starts two bytes later
 * at least). Half the reads of looking at each byte, in the loop every header line goes through.
 */
export function crlfBefore(b: Uint8Array, at: number, to: number): number {
  for (let i = at + 1; i < to; i += 2) {
    const c = b[i];
    if (c === LF) {
      if (b[i - 1] === CR) return i - 1;
    } else if (c === CR && i + 1 < to && b[i + 1] === LF) return i;
  }
  return -1;
}

/** Where a plain request line at `from` has its CRLF (`METHOD SP target SP HTTP/1.[01]`, under 8 KiB), or -1. */
function requestLineEnd(b: Uint8Array, from: number, to: number): number {
  const first = from < to ? b[from]! : 0;
  if (first < 0x41 || first > 0x5a) return -1;
  let sp = from + 1;
  for (; sp < to && sp - from <= 20; sp++) {
    const c = b[sp]!;
    if (c === SP) break;
    if (!((c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c === 0x2d)) return -1;
  }
  if (sp - from > 20 || sp >= to) return -1;
  let t = sp + 1;
  while (t < to && b[t]! > SP && b[t]! < 0x7f) t++;
  if (t === sp + 1 || t + 10 >= to || t + 9 - from > 8191) return -1;
  // ` HTTP/1.0` or ` HTTP/1.1`, then CRLF
  if (b[t] !== SP || !startsWith(b, 'HTTP/1.', t + 1) || (b[t + 8] !== 0x30 && b[t + 8] !== 0x31) || b[t + 9] !== CR || b[t + 10] !== LF) return -1;
  return t + 9;
}

/** Where a status line at `from` has its CRLF (`HTTP/1.[01] NNN` and anything to the line's end, under 8 KiB), or -1. */
function statusLineEnd(b: Uint8Array, from: number, to: number): number {
  if (to - from < 14 || !startsWith(b, 'HTTP/1.', from) || (b[from + 7] !== 0x30 && b[from + 7] !== 0x31) || b[from + 8] !== SP) return -1;
  if (decimal(b, from + 9, from + 12) === undefined) return -1;
  const stop = Math.min(to - 1, from + 8192);
  for (let i = from + 12; i < stop; i++) if (b[i] === CR && b[i + 1] === LF) return i;
  return -1;
}

/** The known methods, each as the one string of its name (`methodName` compares bytes to them). */
const METHOD_NAMES = [...HTTP_METHODS];

/** The method in `b[from, end)`: a known one's interned name, else its text. */
function methodName(b: Uint8Array, from: number, end: number): string {
  for (const m of METHOD_NAMES) if (m.length === end - from && startsWith(b, m, from)) return m;
  return text(b, from, end);
}

/** `text(b, from, to)`, which is `known` when the bytes are its characters (a connection's requests name one host). */
function textOr(b: Uint8Array, from: number, to: number, known: string | undefined): string {
  if (known === undefined || known.length !== to - from) return text(b, from, to);
  for (let i = from; i < to; i++) if (b[i] !== known.charCodeAt(i - from)) return text(b, from, to);
  return known; // text maps a byte to the character of its code wherever that character is one it makes
}

/** Is `b[at, at + name.length)` the lowercase ASCII `name`, in any case? */
function isName(b: Uint8Array, at: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const want = name.charCodeAt(i);
    const c = b[at + i]!;
    if (c !== want && !(want >= 0x61 && want <= 0x7a && c === want - 0x20)) return false;
  }
  return true;
}

/** Whitespace that `String.prototype.trim` takes off a `text` value: space and NBSP (controls became `?`). */
const isTrimmed = (c: number): boolean => c === SP || c === 0xa0;

/**
 * One header line (`at` to `end`) for the headers that frame a message or name its host, as
 * `header` reads them: the value as far as `text` would take it (4096 bytes), trimmed. A name of
 * interest is found by where its colon must be (4, 14 or 17 bytes in: `isName` then sees no colon
 * and no line end before it); other headers, credentials among them, are not read at all.
 */
function quickHeader(head: Head, b: Uint8Array, at: number, end: number, knownHost: string | undefined): void {
  const len = b[at + 4] === COLON ? 4 : b[at + 14] === COLON ? 14 : b[at + 17] === COLON ? 17 : 0;
  if (len === 0 || at + len >= end) return;
  const colon = at + len;
  let from = colon + 1;
  let to = Math.min(end, from + 4096);
  while (from < to && isTrimmed(b[from]!)) from++;
  while (to > from && isTrimmed(b[to - 1]!)) to--;
  if (len === 14 && isName(b, at, 'content-length')) {
    const n = decimal(b, from, to);
    if (n !== undefined) head.contentLength = n;
  } else if (len === 17 && isName(b, at, 'transfer-encoding')) {
    head.chunked = to - from === 7 && isName(b, from, 'chunked') ? true : /(^|,)\s*chunked\s*$/i.test(text(b, from, to));
  } else if (len === 4 && isName(b, at, 'host')) {
    head.host = textOr(b, from, to, knownHost);
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
  /** the last request's Host: the next one's is most likely the same string */
  private lastHost: string | undefined;

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
    if (side.state === 'chunk-end') return this.chunkEnd(request, side);
    if (this.endsAsLastChunk(side)) {
      const rest = s.restOfChunk();
      s.skip(rest);
      this.addBytes(side, rest);
      this.endMessage(request, side);
      return true;
    }
    if (s.atGap()) return this.desync(side, request);
    if (side.state === 'head') return this.readHead(request, side);
    return this.readLine(request, side);
  }

  /**
   * How many of `peek()`'s bytes the head chunk holds from `headPos()` (its first `window` bytes are
   * the head chunk's own): what is decided within them is read in place, with no view or copy made.
   * A chunked body's steps are each a few bytes; a view per step cost more than reading them.
   */
  private window(s: ByteStream): number {
    const data = s.headData();
    return data ? Math.min(data.length - s.headPos(), this.ctx.options.maxBuffer) : 0;
  }

  /** The CRLF after a chunk's data. */
  private chunkEnd(request: boolean, side: Side): boolean {
    const s = side.stream;
    let b: Uint8Array;
    let at = 0;
    if (this.window(s) >= 2) {
      b = s.headData()!;
      at = s.headPos();
    } else {
      b = s.peek();
      if (b.length < 2 && !s.atGap() && !s.runEndsInGap()) return false;
    }
    if (b.length - at >= 2 && (b[at] !== CR || b[at + 1] !== LF)) return this.desync(side, request);
    s.skip(2); // a CRLF cut by the capture is skipped unseen: its length is known
    this.addBytes(side, 2);
    side.state = 'chunk-size';
    return true;
  }

  /** chunk-size and trailers read one line (at most 4 KiB), in place where the head chunk holds it whole. */
  private readLine(request: boolean, side: Side): boolean {
    const s = side.stream;
    const data = s.headData()!;
    const pos = s.headPos();
    const stop = pos + Math.min(this.window(s) - 1, 4096);
    for (let i = pos; i < stop; i++) if (data[i] === CR && data[i + 1] === LF) return this.line(request, side, data, pos, i - pos);
    const b = s.peek();
    const eol = indexOfCrlf(b, 0, 4096);
    if (eol < 0) return b.length < 4096 && !s.runEndsInGap() ? false : this.desync(side, request);
    return this.line(request, side, b, 0, eol);
  }

  /** The line `b[at, at + eol)` and its CRLF, at the stream's head: a chunk's size, or a trailer. */
  private line(request: boolean, side: Side, b: Uint8Array, at: number, eol: number): boolean {
    const s = side.stream;
    s.skip(eol + 2);
    this.addBytes(side, eol + 2);
    if (side.state === 'trailers') {
      if (eol === 0) this.endMessage(request, side);
      return true;
    }
    let end = at + eol;
    for (let i = at; i < at + eol; i++) {
      if (b[i] === 0x3b) {
        end = i; // chunk extensions
        break;
      }
    }
    const size = hex(b, at, end);
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
    // the common answers, without a view of the chunk
    if (s.restOfChunk() !== end.length || s.headData()!.length - s.headPos() >= end.length) return false;
    const seen = s.peekChunk();
    return seen.length < end.length && seen.every((c, i) => c === end.charCodeAt(i));
  }

  private readHead(request: boolean, side: Side): boolean {
    const s = side.stream;
    // in place where the head chunk holds the head, else from what peek joins
    const window = this.window(s);
    const pos = s.headPos();
    let head = quickHead(s.headData()!, request, pos, pos + window, this.lastHost);
    let cut = false;
    if (!head) {
      const b = s.peek();
      if (b.length > window) head = quickHead(b, request, 0, b.length, this.lastHost);
      if (!head) {
        const blank = indexOfBlankLine(b);
        cut = blank < 0 && (s.runEndsInGap() || b.length >= this.ctx.options.maxBuffer);
        if (blank < 0 && !cut) return false;
        const length = blank < 0 ? b.length : blank + 4;
        head = parseHead(b.subarray(0, length), request, !cut, length);
        if (!head) return this.desync(side, request);
      }
    }
    const length = head.length;
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
    if (head.host !== undefined) this.lastHost = head.host;
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
