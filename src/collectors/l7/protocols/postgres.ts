/**
 * The PostgreSQL frontend/backend protocol, version 3, on one connection. The startup phase is
 * skipped (startup message, authentication, parameter statuses); an SSLRequest answered `N` goes on
 * in the clear, one answered `S` is TLS and parsing stops.
 *
 * One record per simple query (`Q`, ended by ReadyForQuery `Z`, whatever statements it held: the
 * last CommandComplete tag, the first error) and one per extended-protocol Execute (`E`, ended by its
 * CommandComplete, EmptyQueryResponse or PortalSuspended), its start the first message of its group
 * (`P`/`B`/`D` before it). Named prepared statements are remembered per connection (statement →
 * query text, at most `maxStatements`, the least recently used forgotten), portals likewise, so an
 * Execute of a statement prepared long before is named; one prepared before the capture began is
 * recorded with an unknown query. Pipelined groups are answered in order: a FIFO of sent messages
 * that expect an answer. An ErrorResponse in extended mode fails the group's first Execute (or its
 * Parse, when there is none) and the server skips to the Sync, as the protocol says.
 *
 * Messages are skipped by their declared lengths whether captured or not; a query text cut by the
 * capture is kept as far as it goes (`requestPartial`). A message header in uncaptured bytes (a
 * large result read past the capture) loses the message boundaries: the result in progress is
 * recorded as partial, and the direction resumes at a call that starts with plausible messages once
 * the client has sent something after the loss, as in `redis.ts`.
 *
 * Query text becomes a shape (`sql.ts`: literals `?`, lists collapsed) and, in samples mode, a sample
 * with string literals masked. Password messages (`p`) are skipped unread.
 */
import { text, u32 } from './bytes.js';
import { sample } from './redact.js';
import { maskSql, normalizeSql, sqlVerb, tagVerb } from './sql.js';
import { ByteStream } from './stream.js';
import { type Chunk, type ConnectionParser, type Direction, type ParserContext, type PostgresRecord, requestDirection } from './types.js';

export const PROTOCOL_3 = 196608;
export const SSL_REQUEST = 80877103;
export const GSSENC_REQUEST = 80877104;
export const CANCEL_REQUEST = 80877102;
const HEADER = 5;
const MAX_MESSAGE = 1 << 30;

const CLIENT_TYPES = new Set('QPBEDCSHXFdcfp');
const SERVER_TYPES = new Set('RSKZTDCENA123ntIsGHWdcVv');
/** Types only a client sends, and only a server sends: what tells a connection's sides apart. */
const CLIENT_ONLY = new Set('QPBXFfp');
const SERVER_ONLY = new Set('RKZTNA123ntIsGWVv');
/** Messages whose length is fixed. */
const FIXED_LENGTH: Record<string, number> = { S: 4, H: 4, X: 4, c: 4, Z: 5, '1': 4, '2': 4, '3': 4, n: 4, I: 4, s: 4, K: 12 };

/** Is a message header of this side plausible: a type it sends and a length that type can have? */
function plausible(type: string, length: number, client: boolean): boolean {
  if (!(client ? CLIENT_TYPES : SERVER_TYPES).has(type) || length < 4 || length > 1 << 24) return false;
  const fixed = FIXED_LENGTH[type];
  if (fixed === undefined) return true;
  // S and H mean other things on the server's side (ParameterStatus, CopyOutResponse)
  if (!client && (type === 'S' || type === 'H')) return true;
  return length === fixed;
}

/**
 * Walks the typed messages at the start of `b` as one side's: true when every header seen is
 * plausible (the last message may run past `b`) and at least one is whole enough to be checked.
 */
export function looksLikeMessages(b: Uint8Array, client: boolean): boolean {
  let at = 0;
  let seen = 0;
  while (at + HEADER <= b.length && seen < 64) {
    const type = String.fromCharCode(b[at]!);
    const length = u32(b, at + 1);
    if (!plausible(type, length, client)) return false;
    if (type === 'Z' && at + HEADER < b.length && !'ITE'.includes(String.fromCharCode(b[at + HEADER]!))) return false;
    at += 1 + length;
    seen++;
  }
  return seen > 0;
}

/** Which side sent `b`, when its first bytes say so: an untyped startup-phase message, or typed messages of one side only. */
export function postgresSender(b: Uint8Array): 'client' | 'server' | undefined {
  if (b.length >= 8) {
    const length = u32(b, 0);
    const code = u32(b, 4);
    if (length === 8 && (code === SSL_REQUEST || code === GSSENC_REQUEST)) return 'client';
    if (length === 16 && code === CANCEL_REQUEST) return 'client';
    if (code === PROTOCOL_3 && length >= 9 && length < 10000 && (b.length < length || b[length - 1] === 0)) return 'client';
  }
  if (b.length < HEADER) return undefined;
  const first = String.fromCharCode(b[0]!);
  if (CLIENT_ONLY.has(first) && looksLikeMessages(b, true)) return 'client';
  if (SERVER_ONLY.has(first) && looksLikeMessages(b, false)) return 'server';
  return undefined;
}

type OpKind = 'query' | 'parse' | 'bind' | 'describe' | 'execute' | 'close' | 'sync';

interface Op {
  kind: OpKind;
  start: bigint;
  bytes: number;
  seq: number;
  query?: string;
  queryCut?: boolean;
  statement?: string;
  /** answers so far */
  responseStart?: bigint;
  responseBytes: number;
  rows: number;
  tag?: string;
  sqlstate?: string;
  message?: string;
}

interface Side {
  stream: ByteStream;
  /** the next message is untyped: the client's startup phase, or the server's one-byte answer to SSLRequest ('maybe': not known yet) */
  untyped: boolean | 'maybe';
  desynced: boolean;
}

/** A bounded map whose least recently used entry goes first when it is full. */
class Lru<V> {
  private readonly map = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.map.delete(k);
    if (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    this.map.set(k, v);
  }
  delete(k: string): void {
    this.map.delete(k);
  }
}

interface Prepared {
  query: string | undefined;
  cut: boolean;
  statement: string;
}

export class PostgresParser implements ConnectionParser {
  private readonly clientDir: Direction;
  private readonly sides: Record<Direction, Side>;
  private readonly fifo: Op[] = [];
  private readonly statements: Lru<Prepared>;
  private readonly portals: Lru<Prepared>;
  /** the first message of the extended-protocol group being sent, and its bytes so far */
  private group: { start: bigint; bytes: number } | undefined;
  private seq = 0;
  private resumeSeq = 0;
  private tls = false;
  private sawClient = false;

  constructor(private readonly ctx: ParserContext) {
    this.clientDir = requestDirection(ctx.role);
    const side = (): Side => ({ stream: new ByteStream(ctx.options.maxBuffer), untyped: false, desynced: false });
    this.sides = { egress: side(), ingress: side() };
    this.statements = new Lru(ctx.options.maxStatements);
    this.portals = new Lru(Math.min(ctx.options.maxStatements, 64));
  }

  push(chunk: Chunk): void {
    if (this.tls) return;
    const client = chunk.dir === this.clientDir;
    const side = this.sides[chunk.dir];
    if (client && !this.sawClient) {
      this.sawClient = true;
      side.untyped = 'maybe';
    }
    side.stream.push(chunk.data, chunk.size, chunk.time);
    this.drain(side, client);
  }

  buffered(): number {
    return this.sides.egress.stream.buffered + this.sides.ingress.stream.buffered;
  }

  close(time: bigint): void {
    for (const op of this.fifo.splice(0)) {
      if (op.kind !== 'query' && op.kind !== 'execute') continue;
      this.ctx.stats.unansweredRequests++;
      this.emit(op, time, op.responseStart === undefined ? 'none' : 'unknown', true);
    }
  }

  private drain(side: Side, client: boolean): void {
    const s = side.stream;
    for (;;) {
      if (s.skipping > 0 || s.empty || this.tls) return;
      if (side.desynced) {
        const resume = s.atChunkStart() && looksLikeMessages(s.peekChunk(), client) && (client || this.fifo.some((o) => o.seq >= this.resumeSeq));
        if (resume) {
          side.desynced = false;
          if (!client) this.dropBefore(this.resumeSeq, s.lastTime);
        } else this.ctx.stats.resyncSkippedBytes += s.dropChunk();
        continue;
      }
      if (s.atGap()) {
        this.lose(side, client);
        continue;
      }
      if (side.untyped === 'maybe') {
        // the client's very first bytes: an untyped startup-phase message, or typed ones when joined mid-stream
        const b = s.peek(8);
        if (b.length < 8 && !s.runEndsInGap()) return;
        side.untyped = b.length >= 8 && postgresSender(b) === 'client' && !CLIENT_TYPES.has(String.fromCharCode(b[0]!));
        continue;
      }
      if (side.untyped) {
        if (!this.untyped(side, client)) return;
        continue;
      }
      const b = s.peek();
      if (b.length < HEADER) {
        if (s.runEndsInGap()) this.lose(side, client);
        else return;
        continue;
      }
      const type = String.fromCharCode(b[0]!);
      const length = u32(b, 1);
      if (!(client ? CLIENT_TYPES : SERVER_TYPES).has(type) || length < 4 || length > MAX_MESSAGE) {
        this.lose(side, client);
        continue;
      }
      // the body is read for the messages that say something; others are skipped by length
      const wants = client ? 'QPBEDC'.includes(type) : 'CEZ'.includes(type);
      const need = Math.min(1 + length, this.ctx.options.maxBuffer);
      if (wants && b.length < need && !s.runEndsInGap()) return;
      const body = b.subarray(HEADER, Math.min(b.length, 1 + length));
      const cut = body.length < length - 4;
      const time = s.headTime();
      s.skip(1 + length);
      if (client) this.clientMessage(type, body, cut, 1 + length, time);
      else this.serverMessage(type, body, 1 + length, time, s.lastTime);
    }
  }

  /** The startup phase's untyped messages; false to wait for more. */
  private untyped(side: Side, client: boolean): boolean {
    const s = side.stream;
    const b = s.peek(8);
    if (!client) {
      // the answer to SSLRequest or GSSENCRequest: one byte
      side.untyped = false;
      if (b[0] === 0x53 || b[0] === 0x47) this.tls = true;
      else s.skip(1);
      return true;
    }
    if (b.length < 8) return s.runEndsInGap() ? (this.lose(side, client), true) : false;
    const length = u32(b, 0);
    const code = u32(b, 4);
    if (length < 8 || length > MAX_MESSAGE) return (this.lose(side, client), true);
    s.skip(length);
    if (code === SSL_REQUEST || code === GSSENC_REQUEST) this.sides[this.clientDir === 'egress' ? 'ingress' : 'egress'].untyped = true;
    else side.untyped = false; // the startup message (or a cancel request): typed messages follow
    return true;
  }

  private lose(side: Side, client: boolean): void {
    this.ctx.stats.desyncs++;
    side.desynced = true;
    side.untyped = false;
    this.ctx.stats.resyncSkippedBytes += side.stream.dropChunk(); // never read again as a start
    if (!client) {
      this.resumeSeq = this.seq;
      const head = this.fifo.find((o) => o.kind === 'query' || o.kind === 'execute');
      if (head?.responseStart !== undefined) {
        this.fifo.splice(this.fifo.indexOf(head), 1);
        this.emit(head, side.stream.lastTime, 'unknown', true);
      }
    }
  }

  /** Records the queries and executes sent before `seq` whose answers were in bytes not seen. */
  private dropBefore(seq: number, time: bigint): void {
    while (this.fifo.length > 0 && this.fifo[0]!.seq < seq) {
      const op = this.fifo.shift()!;
      if (op.kind === 'query' || op.kind === 'execute') this.emit(op, time, 'unknown', true);
    }
  }

  private op(kind: OpKind, start: bigint, bytes: number): Op {
    return { kind, start, bytes, seq: this.seq++, responseBytes: 0, rows: 0 };
  }

  private queue(op: Op): void {
    if (this.fifo.length >= this.ctx.options.maxPending) {
      this.fifo.shift();
      this.ctx.stats.pendingOverflow++;
    }
    this.fifo.push(op);
  }

  private clientMessage(type: string, body: Uint8Array, cut: boolean, bytes: number, time: bigint): void {
    const cstr = (at: number): { value: string; next: number; whole: boolean } => {
      const end = body.indexOf(0, at);
      return end < 0 ? { value: text(body, at, body.length, this.ctx.options.maxBuffer), next: body.length, whole: false } : { value: text(body, at, end, this.ctx.options.maxBuffer), next: end + 1, whole: true };
    };
    switch (type) {
      case 'Q': {
        const q = cstr(0);
        const op = this.op('query', time, bytes);
        op.query = q.value;
        op.queryCut = cut && !q.whole;
        this.queue(op);
        this.group = undefined;
        return;
      }
      case 'P': {
        const name = cstr(0);
        const q = cstr(name.next);
        const prepared: Prepared = { query: q.value, cut: cut && !q.whole, statement: name.value };
        if (name.whole) this.statements.set(name.value, prepared);
        this.grouped(time, bytes);
        const op = this.op('parse', time, bytes);
        op.query = prepared.query;
        op.queryCut = prepared.cut;
        op.statement = prepared.statement;
        this.queue(op);
        return;
      }
      case 'B': {
        const portal = cstr(0);
        const statement = cstr(portal.next);
        if (portal.whole && statement.whole) this.portals.set(portal.value, this.statements.get(statement.value) ?? { query: undefined, cut: false, statement: statement.value });
        this.grouped(time, bytes);
        this.queue(this.op('bind', time, bytes));
        return;
      }
      case 'D':
        this.grouped(time, bytes);
        this.queue(this.op('describe', time, bytes));
        return;
      case 'C': {
        const name = cstr(1);
        if (name.whole) (body[0] === 0x53 ? this.statements : this.portals).delete(name.value);
        this.grouped(time, bytes);
        this.queue(this.op('close', time, bytes));
        return;
      }
      case 'E': {
        const portal = cstr(0);
        const prepared = portal.whole ? this.portals.get(portal.value) : undefined;
        const op = this.op('execute', this.group?.start ?? time, (this.group?.bytes ?? 0) + bytes);
        this.group = undefined;
        if (prepared) {
          op.query = prepared.query;
          op.queryCut = prepared.cut;
          op.statement = prepared.statement;
        }
        this.queue(op);
        return;
      }
      case 'S':
        this.group = undefined;
        this.queue(this.op('sync', time, bytes));
        return;
      default: // Flush, Terminate, copy data, function calls, passwords: nothing to match
        return;
    }
  }

  private grouped(time: bigint, bytes: number): void {
    if (this.group) this.group.bytes += bytes;
    else this.group = { start: time, bytes };
  }

  /** The op the server is answering: the oldest query or execute (parse, bind and the like before it are answered first). */
  private current(): Op | undefined {
    return this.fifo.find((o) => o.kind === 'query' || o.kind === 'execute');
  }

  private serverMessage(type: string, body: Uint8Array, bytes: number, start: bigint, end: bigint): void {
    const head = this.fifo[0];
    const answering = this.current() ?? head;
    if (answering && type !== 'A' && type !== 'N' && type !== 'S') {
      answering.responseStart ??= start;
      answering.responseBytes += bytes;
    }
    switch (type) {
      case '1':
      case '2':
      case '3':
      case 'n':
        if (head && head.kind !== 'query' && head.kind !== 'execute' && head.kind !== 'sync') this.fifo.shift();
        return;
      case 'T':
        if (head?.kind === 'describe') this.fifo.shift();
        return;
      case 'D': {
        const op = this.current();
        if (op) op.rows++;
        return;
      }
      case 'C':
      case 'I':
      case 's': {
        let op = head?.kind === 'query' || head?.kind === 'execute' ? head : undefined;
        if (!op) {
          // the result of a statement whose Execute was not seen (past the capture, or before it began): counted, query unknown
          this.ctx.stats.unmatchedResponses++;
          op = this.op('execute', start, 0);
          op.responseStart = start;
          op.responseBytes = bytes;
          this.fifo.unshift(op);
        }
        if (type === 'C') op.tag = text(body, 0, Math.max(0, body.indexOf(0) >= 0 ? body.indexOf(0) : body.length), 64);
        if (op.kind === 'execute') {
          this.fifo.shift();
          this.emit(op, end, undefined, false);
        }
        return;
      }
      case 'E':
        this.error(body, end, start);
        return;
      case 'Z':
        this.ready(end);
        return;
      case 'A':
      case 'N':
        this.ctx.stats.asyncMessages++;
        return;
      default: // authentication, parameter status, key data, copy: part of whatever is in progress
        return;
    }
  }

  private error(body: Uint8Array, end: bigint, start: bigint): void {
    const fields: Record<string, string> = {};
    for (let at = 0; at < body.length && body[at] !== 0; ) {
      const code = String.fromCharCode(body[at]!);
      const stop = body.indexOf(0, at + 1);
      fields[code] = text(body, at + 1, stop < 0 ? body.length : stop, 512);
      if (stop < 0) break;
      at = stop + 1;
    }
    const head = this.fifo[0];
    if (!head) {
      // before any query (authentication failed) or joined mid-stream: recorded with the query unknown
      this.ctx.stats.unmatchedResponses++;
      const op = this.op('query', start, 0);
      op.responseStart = start;
      op.sqlstate = fields.C ?? 'unknown';
      op.message = fields.M;
      this.emit(op, end, undefined, false);
      return;
    }
    if (head.kind === 'query') {
      head.sqlstate ??= fields.C ?? 'unknown';
      head.message ??= fields.M;
      return;
    }
    // extended protocol: the server discards everything up to the Sync; the group's execute (or parse) fails
    const skipped: Op[] = [];
    while (this.fifo.length > 0 && this.fifo[0]!.kind !== 'sync') skipped.push(this.fifo.shift()!);
    const failed = skipped.find((o) => o.kind === 'execute') ?? skipped.find((o) => o.kind === 'parse') ?? skipped[0];
    if (!failed) return;
    failed.sqlstate = fields.C ?? 'unknown';
    failed.message = fields.M;
    failed.responseStart ??= start;
    if (failed.kind !== 'execute') failed.start = skipped[0]!.start;
    this.emit(failed, end, undefined, false);
  }

  /** ReadyForQuery: a simple query or a Sync is answered; anything still before it was lost. */
  private ready(end: bigint): void {
    while (this.fifo.length > 0) {
      const op = this.fifo.shift()!;
      if (op.kind === 'query') {
        this.emit(op, end, undefined, false);
        return;
      }
      if (op.kind === 'sync') return;
      if (op.kind === 'execute') this.emit(op, end, 'unknown', true);
    }
  }

  private emit(op: Op, end: bigint, outcome: 'none' | 'unknown' | undefined, partial: boolean): void {
    const { options } = this.ctx;
    const query = op.query;
    const record: PostgresRecord = {
      protocol: 'postgres',
      conn: this.ctx.conn,
      role: this.ctx.role,
      start: op.start,
      responseStart: op.responseStart,
      end,
      requestBytes: op.bytes,
      responseBytes: op.responseBytes,
      status: op.sqlstate ?? outcome ?? 'ok',
      error: op.sqlstate !== undefined,
      requestPartial: query === undefined || op.queryCut === true,
      responsePartial: partial,
      midStream: query === undefined && op.bytes === 0,
      command: op.tag !== undefined ? tagVerb(op.tag) : query !== undefined ? sqlVerb(query) : undefined,
      shape: query !== undefined ? normalizeSql(query, options.maxText) : undefined,
      query: query !== undefined ? sample(options, maskSql(query, options.maxText)) : undefined,
      tag: op.tag,
      rows: op.rows,
    };
    if (op.statement !== undefined && options.payload === 'samples') record.statement = op.statement;
    if (op.message !== undefined && options.payload === 'samples') record.errorMessage = op.message;
    this.ctx.stats.records++;
    this.ctx.emit(record);
  }
}
