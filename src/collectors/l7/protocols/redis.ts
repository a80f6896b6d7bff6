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
 *
 * The common case is read in place: a command that is an array of bulk strings held whole in one
 * chunk's captured bytes and named by a command of `KNOWN` (`fastCommand`), and a reply that is a
 * simple string, an integer or a bulk string held whole in one (`fastReply`), are read with offsets
 * into the chunk, with no view, no text and no regular expression; the name is the table's interned
 * string and the arguments are read only when a record keeps them. Anything else, or anything cut,
 * goes the general way, which starts over as if the fast path had not looked. Commands read in place
 * hold their chunk until answered; when a new chunk's commands come, the arguments of those still
 * waiting are read out of it, so that a connection holds one chunk at most that its stream does not.
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

/**
 * Commands read in place (`fastCommand`): the common ones, letters only. Container and (un)subscribe
 * commands are not among them (their names and replies need their arguments), nor anything unknown:
 * those go the general way. Each is found by a hash of its bytes uppercased, then compared.
 */
const KNOWN_NAMES = `GET SET SETNX SETEX PSETEX GETSET GETDEL GETEX GETRANGE SETRANGE MGET MSET MSETNX APPEND STRLEN INCR INCRBY
  INCRBYFLOAT DECR DECRBY DEL UNLINK EXISTS EXPIRE EXPIREAT PEXPIRE PEXPIREAT PERSIST TTL PTTL TYPE RENAME RENAMENX KEYS SCAN
  RANDOMKEY TOUCH DUMP RESTORE COPY MOVE HGET HSET HSETNX HMGET HMSET HGETALL HDEL HEXISTS HINCRBY HINCRBYFLOAT HKEYS HVALS HLEN
  HSCAN HSTRLEN HRANDFIELD LPUSH RPUSH LPUSHX RPUSHX LPOP RPOP LRANGE LLEN LINDEX LSET LREM LTRIM LINSERT LPOS LMOVE BLPOP BRPOP
  BLMOVE RPOPLPUSH BRPOPLPUSH LMPOP BLMPOP SADD SREM SMEMBERS SISMEMBER SMISMEMBER SCARD SPOP SRANDMEMBER SINTER SUNION SDIFF
  SINTERSTORE SUNIONSTORE SDIFFSTORE SMOVE SSCAN SINTERCARD ZADD ZREM ZRANGE ZREVRANGE ZRANGEBYSCORE ZREVRANGEBYSCORE ZRANGEBYLEX
  ZSCORE ZMSCORE ZINCRBY ZCARD ZCOUNT ZRANK ZREVRANK ZPOPMIN ZPOPMAX BZPOPMIN BZPOPMAX ZREMRANGEBYSCORE ZREMRANGEBYRANK ZSCAN
  ZUNIONSTORE ZINTERSTORE ZRANGESTORE ZLEXCOUNT ZRANDMEMBER XADD XREAD XREADGROUP XRANGE XREVRANGE XLEN XACK XDEL XTRIM XCLAIM
  XAUTOCLAIM XPENDING PFADD PFCOUNT PFMERGE GEOADD GEODIST GEOPOS GEOSEARCH GEORADIUS SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD
  PING ECHO AUTH HELLO SELECT INFO DBSIZE FLUSHDB FLUSHALL TIME LASTSAVE SAVE BGSAVE WAIT QUIT RESET MULTI EXEC DISCARD WATCH
  UNWATCH PUBLISH SPUBLISH EVAL EVALSHA EVALRO EVALSHARO FCALL FCALLRO`
  .split(/\s+/)
  .filter((n) => /^[A-Z]{1,24}$/.test(n) && !CONTAINERS.has(n) && !SUBSCRIBES.has(n));

/** A name's hash as `knownCommand` computes it from bytes: letters folded to upper case. */
function nameHash(b: ArrayLike<number>, at: number, len: number): number {
  let h = len;
  for (let i = at; i < at + len; i++) h = (Math.imul(h, 31) + (b[i]! & 0xdf)) | 0;
  return h;
}

/** KNOWN_NAMES by hash (a name whose hash another has is left to the general way). */
const KNOWN = new Map<number, string>();
for (const n of KNOWN_NAMES) {
  const h = nameHash(Array.from(n, (c) => c.charCodeAt(0)), 0, n.length);
  if (!KNOWN.has(h)) KNOWN.set(h, n);
}
/** the interned names, to give the general way's names the same strings */
const INTERNED = new Map<string, string>(KNOWN_NAMES.map((n) => [n, n]));
const intern = (name: string | undefined): string | undefined => (name === undefined ? undefined : (INTERNED.get(name) ?? name));

/** The known command whose name (any case) is the bytes `[at, at + len)`, as its interned upper-case string. */
function knownCommand(b: Uint8Array, at: number, len: number): string | undefined {
  if (len === 0 || len > 24) return undefined;
  const name = KNOWN.get(nameHash(b, at, len));
  if (name === undefined || name.length !== len) return undefined;
  // a byte folded to a letter of the name is that letter in either case
  for (let i = 0; i < len; i++) if ((b[at + i]! & 0xdf) !== name.charCodeAt(i)) return undefined;
  return name;
}

/** The words of a command read in place, all of them in its chunk: one array for all (frozen: never added to). */
const IN_SRC = Object.freeze([]) as unknown as string[];

/** Where the header `readCount` last read ends (past its CRLF): its second result, without an object per call. */
let afterCount = 0;

/** The count of a header whose digits start at `p` and end at a CRLF (as `decimal` reads one: at most 15 digits), or -1. */
function readCount(b: Uint8Array, p: number): number {
  let n = 0;
  let i = p;
  for (; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x30 || c > 0x39) break;
    n = n * 10 + (c - 0x30);
  }
  if (i === p || i - p > 15 || b[i] !== 0x0d || b[i + 1] !== 0x0a) return -1;
  afterCount = i + 2;
  return n;
}

/** The texts of `count` bulk strings from `at` (their headers read before), each clipped as `commandStep` clips an argument. */
function bulkTexts(b: Uint8Array, at: number, count: number): string[] {
  const out: string[] = [];
  let p = at;
  for (let i = 0; i < count; i++) {
    const len = readCount(b, p + 1);
    const from = afterCount;
    out.push(text(b, from, from + Math.min(len, MAX_ARG_TEXT)) + (len > MAX_ARG_TEXT ? '…' : ''));
    p = from + len + 2;
  }
  return out;
}

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
  /** the command name as sent, then arguments (at most MAX_ARGS + 1, each clipped); empty while `src` holds them */
  words: (string | undefined)[];
  /** commandName, interned (made when queued) */
  name: string | undefined;
  /** read in place: the chunk holding its arguments, the offset of the first one's header and how many there are */
  src: Uint8Array | undefined;
  at: number;
  argc: number;
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
  /** commands in the FIFO whose arguments are still in their chunk (`src`), which is this one */
  private lazy = 0;
  private lazySrc: Uint8Array | undefined;
  /** the reply `fastReply` read, handed to `emit` (which keeps nothing of it) */
  private readonly fastState: ReplyState = { start: 0n, bytes: 0, stack: [], type: 0, partial: false };

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
    this.lazy = 0;
    this.lazySrc = undefined;
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
      if (!this.request && this.fastCommand(s)) continue;
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

  /**
   * A whole command in one step, read in place (see the header): an array of bulk strings in the head
   * chunk's captured bytes, named by a known command. False, having consumed nothing, for anything else.
   */
  private fastCommand(s: ByteStream): boolean {
    const b = s.headData();
    const from = s.headPos();
    if (b === undefined || b[from] !== 0x2a) return false;
    const n = readCount(b, from + 1);
    if (n < 1 || b[afterCount] !== 0x24) return false;
    const len = readCount(b, afterCount + 1);
    const nameAt = afterCount;
    if (len < 0 || nameAt + len > b.length) return false;
    const name = knownCommand(b, nameAt, len);
    if (name === undefined) return false;
    const argsAt = nameAt + len + 2;
    let p = argsAt;
    for (let i = 1; i < n; i++) {
      if (b[p] !== 0x24) return false;
      const l = readCount(b, p + 1);
      if (l < 0) return false;
      p = afterCount + l + 2;
    }
    if (p > b.length) return false; // the last argument, or its CRLF, was not captured: the general way follows it
    const cmd = this.command(s.headTime(), p - from, IN_SRC);
    cmd.name = name;
    cmd.src = b;
    cmd.at = argsAt;
    cmd.argc = n - 1;
    s.skip(p - from);
    this.queue(cmd);
    return true;
  }

  private command(start: bigint, bytes: number, words: string[]): Command {
    return { start, bytes, words, name: undefined, src: undefined, at: 0, argc: 0, partial: false, seq: this.seq++, replies: 1, responseBytes: 0 };
  }

  private queue(cmd: Command): void {
    if (cmd.src === undefined) cmd.name = intern(commandName(cmd.words));
    else {
      if (this.lazy > 0 && cmd.src !== this.lazySrc) this.settle();
      this.lazySrc = cmd.src;
      this.lazy++;
    }
    const name = cmd.name;
    if (name !== undefined && SUBSCRIBES.has(name)) {
      cmd.replies = Math.max(1, cmd.words.length - 1);
      if (!name.startsWith('UN') && !name.startsWith('PUN') && !name.startsWith('SUN')) this.subscribed = true;
    }
    if (this.fifo.length >= this.ctx.options.maxPending) {
      this.shift();
      this.ctx.stats.pendingOverflow++;
    }
    this.fifo.push(cmd);
    this.sawCommand = true;
  }

  /** The oldest command, out of the FIFO. */
  private shift(): Command | undefined {
    const cmd = this.fifo.shift();
    if (cmd?.src !== undefined && --this.lazy === 0) this.lazySrc = undefined; // the chunk is let go once answered
    return cmd;
  }

  /** Reads the arguments of the commands still holding their chunk out of it: a new chunk's commands are coming. */
  private settle(): void {
    for (const cmd of this.fifo) {
      if (cmd.src === undefined) continue;
      cmd.words = [cmd.name, ...bulkTexts(cmd.src, cmd.at, Math.min(cmd.argc, MAX_ARGS))];
      cmd.src = undefined;
    }
    this.lazy = 0;
    this.lazySrc = undefined;
  }

  /** The command's arguments after its name (and subcommand), `?` for one not captured. */
  private argsOf(cmd: Command): string[] {
    if (cmd.src !== undefined) return bulkTexts(cmd.src, cmd.at, Math.min(cmd.argc, MAX_ARGS));
    return cmd.words.slice(cmd.name?.includes(' ') ? 2 : 1).map((w) => w ?? '?');
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
          while (this.fifo.length > 0 && this.fifo[0]!.seq < this.resumeSeq) this.emit(this.shift(), s.lastTime, 'unknown');
        } else this.ctx.stats.resyncSkippedBytes += s.dropChunk();
        continue;
      }
      if (!this.reply && this.fastReply(s)) continue;
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

  /**
   * A whole reply in one step, read in place (see the header): a simple string, an integer or a bulk
   * string (not null) in the head chunk's captured bytes. None of those is a push or a subscribe
   * confirmation: it answers the oldest command. False, having consumed nothing, for anything else.
   */
  private fastReply(s: ByteStream): boolean {
    const b = s.headData();
    const from = s.headPos();
    if (b === undefined) return false;
    const type = b[from];
    let end: number;
    if (type === 0x2b || type === 0x3a) {
      const eol = indexOfCrlf(b, from, MAX_LINE);
      if (eol < 0) return false;
      end = eol + 2;
    } else if (type === 0x24) {
      const len = readCount(b, from + 1);
      if (len < 0) return false;
      end = afterCount + len + 2;
      if (end > b.length) return false;
    } else return false;
    const r = this.fastState;
    r.start = s.headTime();
    r.bytes = end - from;
    r.type = type;
    s.skip(end - from);
    const head = this.shift();
    if (!head) this.ctx.stats.unmatchedResponses++;
    this.emit(head, s.lastTime, r);
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
    if (confirms && head && head.name === kind) {
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
    this.shift();
    if (!head) this.ctx.stats.unmatchedResponses++;
    this.emit(head, end, r, partial);
  }

  private emit(cmd: Command | undefined, end: bigint, reply: ReplyState | 'unknown' | undefined, partial = false): void {
    const { options } = this.ctx;
    this.ctx.stats.records++;
    const name = cmd?.name;
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
    // arguments are read only where a record keeps them
    const args = options.payload === 'samples' && cmd && name !== undefined ? maskRedisArgs(name, this.argsOf(cmd)) : undefined;
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
