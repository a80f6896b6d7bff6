/**
 * Redis (RESP2 and RESP3) on one connection. Requests are arrays of bulk strings (or inline commands,
 * `PING\r\n`); the command is the first element uppercased, with the subcommand for container
 * commands (`CLIENT SETNAME`, `CONFIG GET`). Replies of every type are followed: simple strings,
 * errors, integers, bulk strings, arrays, and RESP3's null, boolean, double, big number, blob error,
 * verbatim string, map, set, attribute (a prefix that is not itself the reply) and push.
 *
 * Matching is a FIFO: each reply pops the oldest outstanding command (pipelining: `-P 16` writes 16
 * commands in one call and reads 16 replies in one). Pushes are not replies and pop nothing: RESP3
 * `>` messages, and in RESP2 the `message`/`pmessage`/`smessage` arrays of a subscribed connection;
 * `(un)subscribe` confirmations are the replies of the command that asked for them, one per channel,
 * and the command's record is made at the last one.
 *
 * Bulk data is skipped by its declared length whether captured or not. What cannot be followed is
 * counted as well as it can be:
 * - a reply with an element header in uncaptured bytes (a long array read past the capture) is counted
 *   as the reply to the oldest command, partial, and the reply direction waits: it resumes at a call
 *   that starts with a reply header, once a command has been written after the loss. Commands still
 *   queued from before that are recorded with an unknown response (their replies were in the lost
 *   bytes);
 * - a command whose header fell in uncaptured bytes (a pipeline written past the capture) is lost;
 *   the request direction resumes at a call that starts with a command, and replies finding no command
 *   are recorded with an unknown command (`unmatchedResponses`), so that replies are still counted
 *   one by one. A client that writes more commands before reading the replies to lost ones would have
 *   those replies matched to its later commands;
 * - nesting past `maxDepth`, an aggregate of more than 2^31 elements, a line past 4 KiB or RESP3
 *   streamed aggregates are not followed (counted in `truncatedReplies` or as a desync).
 * The FIFO holds at most `maxPending` commands; the oldest is dropped past it (`pendingOverflow`).
 *
 * With `aggregateUnder` set, a pipeline is counted once rather than command by command: consecutive
 * records alike in command, outcome and the calls that carried them (start, response start and end
 * times, partial flags) become one record with a `count`, its bytes the run's total and its arguments
 * the first command's. Errors and commands that took `aggregateUnder` or longer (those the collector
 * makes events of, each with its own arguments and message) are never in a run. A run is handed over
 * at the end of the `push` or `close` that made it, so records still come out in order.
 */
import { clip, decimal, indexOfCrlf, signedDecimal, text } from './bytes.js';
import { maskRedisArgs, sample } from './redact.js';
import { ByteStream } from './stream.js';
import { type Chunk, type ConnectionParser, type Direction, type ParserContext, type RedisRecord, requestDirection } from './types.js';

const MAX_LINE = 4096;
const MAX_ARGS = 8;
const MAX_ARG_TEXT = 64;
const MAX_ELEMENTS = 2 ** 31;

/** Commands whose first argument is a subcommand that names what they do. */
const CONTAINERS = new Set(['ACL', 'CLIENT', 'CLUSTER', 'COMMAND', 'CONFIG', 'DEBUG', 'FUNCTION', 'LATENCY', 'MEMORY', 'MODULE', 'OBJECT', 'PUBSUB', 'SCRIPT', 'SLOWLOG', 'XGROUP', 'XINFO']);
const SUBSCRIBES = new Set(['SUBSCRIBE', 'PSUBSCRIBE', 'SSUBSCRIBE', 'UNSUBSCRIBE', 'PUNSUBSCRIBE', 'SUNSUBSCRIBE']);
const MESSAGES = new Set(['message', 'pmessage', 'smessage']);
/** Inline commands recognised when classifying a connection (anything is parsed once it is Redis). */
export const INLINE_COMMANDS = new Set(['PING', 'AUTH', 'HELLO', 'SELECT', 'INFO', 'QUIT', 'GET', 'SET', 'DEL', 'EXISTS', 'KEYS', 'MONITOR', 'CLIENT', 'CONFIG', 'FLUSHALL', 'DBSIZE', 'ECHO']);

const REPLY_TYPES = new Set('+-:$*_#,(!=%~>|'.split('').map((c) => c.charCodeAt(0)));

/** Does `b` start with a reply header: a RESP type byte and a well-formed first line? */
export function looksLikeReply(b: Uint8Array): boolean {
  if (b.length < 3 || !REPLY_TYPES.has(b[0]!)) return false;
  const eol = indexOfCrlf(b, 1, 256);
  if (eol < 0) return false;
  switch (String.fromCharCode(b[0]!)) {
    case '$': case '*': case '%': case '~': case '>': case '|': case '!': case '=':
      return signedDecimal(b, 1, eol) !== undefined;
    case ':':
      return signedDecimal(b, 1, eol) !== undefined;
    case '_':
      return eol === 1;
    case '#':
      return eol === 2 && (b[1] === 0x74 || b[1] === 0x66);
    default:
      for (let i = 1; i < eol; i++) if (b[i]! < 0x20) return false;
      return true;
  }
}

/** Does `b` start with a command: `*N\r\n$` or an inline command known to Redis? */
export function looksLikeCommand(b: Uint8Array): boolean {
  if (b[0] === 0x2a) {
    const eol = indexOfCrlf(b, 1, 16);
    const n = eol > 0 ? decimal(b, 1, eol) : undefined;
    return n !== undefined && n > 0 && (b.length <= eol + 2 || b[eol + 2] === 0x24);
  }
  const eol = indexOfCrlf(b, 0, 256);
  if (eol <= 0) return false;
  const word = text(b, 0, eol).split(' ')[0]!.toUpperCase();
  return INLINE_COMMANDS.has(word);
}

interface Command {
  start: bigint;
  bytes: number;
  /** the command name as sent, then arguments (at most MAX_ARGS + 1, each clipped) */
  words: (string | undefined)[];
  partial: boolean;
  /** sequence number, to tell commands written after a loss from those before */
  seq: number;
  /** replies it still expects: one per channel for (un)subscribe */
  replies: number;
  responseStart?: bigint;
  responseBytes: number;
}

interface RequestState {
  cmd: Command;
  remaining: number;
}

interface Frame {
  remaining: number;
  attribute: boolean;
}

interface ReplyState {
  start: bigint;
  bytes: number;
  /** the root frame (one value) and the aggregates open inside it */
  stack: Frame[];
  type: number;
  error?: string;
  /** the first element of a top-level array or push, when a bulk or simple string */
  first?: string;
  partial: boolean;
}

export class RedisParser implements ConnectionParser {
  private readonly reqDir: Direction;
  private readonly streams: Record<Direction, ByteStream>;
  private readonly fifo: Command[] = [];
  private request: RequestState | undefined;
  private reply: ReplyState | undefined;
  /** bytes of a bulk's data and CRLF still to skip per direction are in the stream; this is the CRLF after */
  private crlf: Record<Direction, boolean> = { egress: false, ingress: false };
  private desynced: Record<Direction, boolean> = { egress: false, ingress: false };
  private seq = 0;
  /** commands numbered at or past this were written after the reply direction lost its place */
  private resumeSeq = 0;
  private subscribed = false;
  private sawCommand = false;
  /** the run being counted (aggregateUnder): handed over when a record unlike it comes, or the call ends */
  private run: RedisRecord | undefined;

  constructor(private readonly ctx: ParserContext) {
    this.reqDir = requestDirection(ctx.role);
    this.streams = { egress: new ByteStream(ctx.options.maxBuffer), ingress: new ByteStream(ctx.options.maxBuffer) };
  }

  push(chunk: Chunk): void {
    this.streams[chunk.dir].push(chunk.data, chunk.size, chunk.time);
    if (chunk.dir === this.reqDir) this.drainRequests();
    else this.drainReplies();
    this.flush();
  }

  buffered(): number {
    return this.streams.egress.buffered + this.streams.ingress.buffered;
  }

  close(time: bigint): void {
    if (this.reply) this.endReply(time, true);
    for (const cmd of this.fifo.splice(0)) {
      this.ctx.stats.unansweredRequests++;
      this.emit(cmd, time, undefined);
    }
    this.flush();
  }

  // --- commands ---------------------------------------------------------------------------------

  private drainRequests(): void {
    const dir = this.reqDir;
    const s = this.streams[dir];
    for (;;) {
      if (s.skipping > 0) return;
      if (this.crlf[dir]) {
        if (s.empty) return;
        s.skip(2); // its length is known: skipped unseen when it was not captured
        this.crlf[dir] = false;
        this.request!.cmd.bytes += 2;
      }
      if (this.request && this.request.remaining === 0) {
        this.queue(this.request.cmd);
        this.request = undefined;
      }
      if (s.empty) return;
      if (this.desynced[dir]) {
        if (s.atChunkStart() && looksLikeCommand(s.peekChunk())) this.desynced[dir] = false;
        else this.ctx.stats.resyncSkippedBytes += s.dropChunk();
        continue;
      }
      if (!this.commandStep(s)) return;
    }
  }

  private lostRequest(): boolean {
    this.ctx.stats.desyncs++;
    this.desynced[this.reqDir] = true;
    if (this.request) {
      this.request.cmd.partial = true;
      this.queue(this.request.cmd);
      this.request = undefined;
    }
    this.crlf[this.reqDir] = false;
    this.ctx.stats.resyncSkippedBytes += this.streams[this.reqDir].dropChunk(); // never read again as a start
    return true;
  }

  /** Reads one header (an array's, a bulk's, or an inline command); false to wait for more. */
  private commandStep(s: ByteStream): boolean {
    if (s.atGap()) return this.lostRequest();
    const b = s.peek(MAX_LINE + 2);
    const eol = indexOfCrlf(b, 0, MAX_LINE);
    if (eol < 0) return b.length > MAX_LINE || s.runEndsInGap() ? this.lostRequest() : false;
    const time = s.headTime();
    if (!this.request) {
      if (b[0] === 0x2a) {
        const n = decimal(b, 1, eol);
        if (n === undefined || n > MAX_ELEMENTS) return this.lostRequest();
        s.skip(eol + 2);
        if (n > 0) this.request = { cmd: this.command(time, eol + 2, []), remaining: n };
        return true;
      }
      const words = text(b, 0, eol).trim().split(/\s+/).filter(Boolean);
      if (words.length === 0 || !/^[A-Za-z]/.test(words[0]!)) return this.lostRequest();
      s.skip(eol + 2);
      this.queue(this.command(time, eol + 2, words.slice(0, MAX_ARGS + 1).map((w) => clip(w, MAX_ARG_TEXT))));
      return true;
    }
    if (b[0] !== 0x24) return this.lostRequest();
    const len = decimal(b, 1, eol);
    if (len === undefined) return this.lostRequest();
    const cmd = this.request.cmd;
    if (cmd.words.length <= MAX_ARGS) {
      // the argument's text as far as it was captured, up to MAX_ARG_TEXT; undefined when not captured whole that far
      const want = Math.min(len, MAX_ARG_TEXT);
      const captured = b.subarray(eol + 2, eol + 2 + want);
      if (captured.length < want && !s.runEndsInGap() && b.length < MAX_LINE + 2) return false; // the rest is coming
      cmd.words.push(captured.length < want ? undefined : text(captured) + (len > want ? '…' : ''));
    }
    s.skip(eol + 2 + len);
    cmd.bytes += eol + 2 + len; // and the CRLF after, when skipped
    this.request.remaining--;
    this.crlf[this.reqDir] = true;
    return true;
  }

  private command(start: bigint, bytes: number, words: string[]): Command {
    return { start, bytes, words, partial: false, seq: this.seq++, replies: 1, responseBytes: 0 };
  }

  private queue(cmd: Command): void {
    const name = commandName(cmd.words);
    if (name !== undefined && SUBSCRIBES.has(name)) {
      cmd.replies = Math.max(1, cmd.words.length - 1);
      if (!name.startsWith('UN') && !name.startsWith('PUN') && !name.startsWith('SUN')) this.subscribed = true;
    }
    if (this.fifo.length >= this.ctx.options.maxPending) {
      this.fifo.shift();
      this.ctx.stats.pendingOverflow++;
    }
    this.fifo.push(cmd);
    this.sawCommand = true;
  }

  // --- replies ----------------------------------------------------------------------------------

  private drainReplies(): void {
    const dir = this.reqDir === 'egress' ? 'ingress' : 'egress';
    const s = this.streams[dir];
    for (;;) {
      if (s.skipping > 0) return;
      if (this.crlf[dir]) {
        if (s.empty) return;
        s.skip(2);
        this.crlf[dir] = false;
        if (this.reply) {
          this.reply.bytes += 2;
          this.elementDone(s);
        }
      }
      if (s.empty) return;
      if (this.desynced[dir]) {
        if (s.atChunkStart() && looksLikeReply(s.peekChunk()) && this.fifo.some((c) => c.seq >= this.resumeSeq)) {
          this.desynced[dir] = false;
          // commands queued before the loss were answered in bytes that were not seen
          while (this.fifo.length > 0 && this.fifo[0]!.seq < this.resumeSeq) this.emit(this.fifo.shift(), s.lastTime, 'unknown');
        } else this.ctx.stats.resyncSkippedBytes += s.dropChunk();
        continue;
      }
      if (!this.replyStep(s)) return;
    }
  }

  private lostReply(s: ByteStream): boolean {
    this.ctx.stats.desyncs++;
    this.desynced[this.reqDir === 'egress' ? 'ingress' : 'egress'] = true;
    this.resumeSeq = this.seq;
    this.crlf[this.reqDir === 'egress' ? 'ingress' : 'egress'] = false;
    this.ctx.stats.resyncSkippedBytes += s.dropChunk(); // never read again as a start
    if (this.reply) this.endReply(s.lastTime, true);
    return true;
  }

  /** Reads one value header; false to wait for more. */
  private replyStep(s: ByteStream): boolean {
    if (s.atGap()) return this.lostReply(s);
    const b = s.peek(MAX_LINE + 2);
    const eol = indexOfCrlf(b, 0, MAX_LINE);
    if (eol < 0) return b.length > MAX_LINE || s.runEndsInGap() ? this.lostReply(s) : false;
    const type = b[0]!;
    if (!REPLY_TYPES.has(type)) return this.lostReply(s);
    const ch = String.fromCharCode(type);
    const depth = this.reply?.stack.length ?? 1;
    const top = depth === 1;
    const firstOfTop = depth === 2 && this.reply!.first === undefined && !this.reply!.stack[1]!.attribute;
    if (ch === '$' || ch === '!' || ch === '=') {
      // text kept from a bulk (a blob error's message, a top-level array's first element): wait for it while it is coming
      const len = signedDecimal(b, 1, eol) ?? 0;
      const want = Math.min(Math.max(len, 0), 256);
      if (((top && ch === '!') || firstOfTop) && b.length - eol - 2 < want && !s.runEndsInGap() && b.length < MAX_LINE + 2) return false;
    }
    if (!this.reply) {
      this.reply = { start: s.headTime(), bytes: 0, stack: [{ remaining: 1, attribute: false }], type, partial: false };
      if (type === 0x7c) this.reply.type = 0; // an attribute first: the reply's type is the next value's
    } else if (this.reply.type === 0 && this.reply.stack.length === 1) this.reply.type = type;
    const r = this.reply;
    r.bytes += eol + 2;
    if (ch === '$' || ch === '!' || ch === '=') {
      const len = signedDecimal(b, 1, eol);
      if (len === undefined) return this.lostReply(s);
      if (len < 0) {
        s.skip(eol + 2);
        this.elementDone(s);
        return true;
      }
      const captured = b.subarray(eol + 2, eol + 2 + Math.min(len, 256));
      if (top && ch === '!') r.error = text(captured, 0, captured.length, 256);
      if (firstOfTop) r.first = text(captured, 0, captured.length, 16);
      s.skip(eol + 2 + len);
      r.bytes += len;
      this.crlf[this.reqDir === 'egress' ? 'ingress' : 'egress'] = true;
      return true;
    }
    if (ch === '*' || ch === '~' || ch === '>' || ch === '%' || ch === '|') {
      const n = signedDecimal(b, 1, eol);
      if (n === undefined || n > MAX_ELEMENTS) return this.lostReply(s);
      s.skip(eol + 2);
      const count = ch === '%' || ch === '|' ? n * 2 : n;
      if (count <= 0) {
        if (ch === '|') return true; // an empty attribute: the value follows
        this.elementDone(s);
        return true;
      }
      if (r.stack.length > this.ctx.options.maxDepth) {
        this.ctx.stats.truncatedReplies++;
        return this.lostReply(s);
      }
      r.stack.push({ remaining: count, attribute: ch === '|' });
      return true;
    }
    // a line: + - : _ # , (
    if (top && ch === '-') r.error = text(b, 1, eol, 256);
    if (firstOfTop && ch === '+') r.first = text(b, 1, eol, 16);
    s.skip(eol + 2);
    this.elementDone(s);
    return true;
  }

  /** One value finished: count it in its parent, close finished aggregates, end the reply at the root. */
  private elementDone(s: ByteStream): void {
    const r = this.reply!;
    for (;;) {
      const frame = r.stack[r.stack.length - 1]!;
      frame.remaining--;
      if (frame.remaining > 0) return;
      if (r.stack.length === 1) {
        this.endReply(s.lastTime, false);
        return;
      }
      r.stack.pop();
      if (frame.attribute) return; // an attribute is not a value of its parent
    }
  }

  private endReply(end: bigint, partial: boolean): void {
    const r = this.reply!;
    this.reply = undefined;
    const kind = r.first?.toUpperCase();
    const confirms = (r.type === 0x3e || r.type === 0x2a) && kind !== undefined && SUBSCRIBES.has(kind);
    const head = this.fifo[0];
    if (confirms && head && commandName(head.words) === kind) {
      // one confirmation per channel: the command's record is made at the last
      if (--head.replies > 0) {
        head.responseStart ??= r.start;
        head.responseBytes += r.bytes;
        return;
      }
    } else if (r.type === 0x3e || (this.subscribed && r.type === 0x2a && r.first !== undefined && (MESSAGES.has(r.first) || confirms))) {
      this.ctx.stats.asyncMessages++; // a push: a published message, or a confirmation no command asked for
      return;
    }
    this.fifo.shift();
    if (!head) this.ctx.stats.unmatchedResponses++;
    this.emit(head, end, r, partial);
  }

  private emit(cmd: Command | undefined, end: bigint, reply: ReplyState | 'unknown' | undefined, partial = false): void {
    const { options } = this.ctx;
    this.ctx.stats.records++;
    const name = cmd ? commandName(cmd.words) : undefined;
    const r = typeof reply === 'object' ? reply : undefined;
    const prefix = r?.error !== undefined ? errorPrefix(r.error) : undefined;
    const start = cmd?.start ?? r!.start;
    const responseStart = cmd?.responseStart ?? r?.start;
    const status = prefix ?? (r ? 'ok' : reply === 'unknown' ? 'unknown' : 'none');
    const requestPartial = cmd === undefined || cmd.partial;
    const responsePartial = r === undefined || partial;
    const midStream = cmd === undefined && !this.sawCommand;
    const requestBytes = cmd?.bytes ?? 0;
    const responseBytes = (cmd?.responseBytes ?? 0) + (r?.bytes ?? 0);
    const run = this.run;
    if (
      run &&
      prefix === undefined &&
      run.command === name &&
      run.status === status &&
      run.start === start &&
      run.responseStart === responseStart &&
      run.end === end &&
      run.requestPartial === requestPartial &&
      run.responsePartial === responsePartial &&
      run.midStream === midStream
    ) {
      // one more of the run: its arguments are not even read
      run.count++;
      run.requestBytes += requestBytes;
      run.responseBytes += responseBytes;
      return;
    }
    this.flush();
    const args = cmd && name !== undefined ? maskRedisArgs(name, cmd.words.slice(name.includes(' ') ? 2 : 1).map((w) => w ?? '?')) : undefined;
    const record: RedisRecord = {
      protocol: 'redis',
      conn: this.ctx.conn,
      role: this.ctx.role,
      start,
      responseStart,
      end,
      requestBytes,
      responseBytes,
      status,
      error: prefix !== undefined,
      requestPartial,
      responsePartial,
      midStream,
      command: name,
      args: sample(options, args),
      count: 1,
    };
    if (r?.error !== undefined && options.payload === 'samples') record.errorMessage = r.error;
    // a record that may start a run: no event will be made of it (not an error, not slow)
    if (prefix === undefined && end - start < options.aggregateUnder) this.run = record;
    else this.ctx.emit(record);
  }

  /** Hands over the run being counted, if any. */
  private flush(): void {
    const run = this.run;
    if (!run) return;
    this.run = undefined;
    this.ctx.emit(run);
  }
}

/** The command uppercased, with its subcommand for container commands; undefined when its name was not captured. */
export function commandName(words: readonly (string | undefined)[]): string | undefined {
  const first = words[0];
  if (first === undefined || !/^[A-Za-z][\w.|-]{0,31}$/.test(first)) return undefined;
  const name = first.toUpperCase();
  const sub = words[1];
  return CONTAINERS.has(name) && sub !== undefined && /^[A-Za-z][\w-]{0,31}$/.test(sub) ? `${name} ${sub.toUpperCase()}` : name;
}

/** The error's code: its first word when it is one in capitals (`WRONGTYPE`, `MOVED`), else `ERR`. */
export function errorPrefix(line: string): string {
  const word = line.split(' ')[0]!;
  return /^[A-Z][A-Z0-9_]{0,31}$/.test(word) ? word : 'ERR';
}
