/**
 * Connections and their parsers: the entry point of the protocol layer. Chunks go in (`push`), in
 * time order per connection; records come out through `onRecord`. A connection is classified once,
 * from the first chunk that holds bytes (`classify.ts`), and gets the parser of its protocol; one
 * that matches nothing is remembered as unknown so that it is not classified again, and `push`
 * returns false for it so that the caller can stop capturing it.
 *
 * The traced process's role is the kernel's when it says (connect or accept), else what the first
 * bytes say, else client (a guess, counted as mid-stream). The table holds at most `maxConnections`
 * connections, least recently used first out; an evicted connection's outstanding requests are
 * recorded as partial, as at `close`, and counted in `evictedConnections`. Everything dropped or
 * guessed is counted in `stats`.
 */
import { classify, roleFrom } from './classify.js';
import { Http1Parser } from './http1.js';
import { LruMap } from './lru.js';
import { Http2Parser } from './http2.js';
import { PostgresParser } from './postgres.js';
import { RedisParser } from './redis.js';
import { type Chunk, type ConnectionParser, type ConnId, type ConnProtocol, DEFAULT_OPTIONS, type L7Record, type L7Stats, newStats, type ParserContext, type ParserOptions, type Role } from './types.js';

export interface TrackerOptions extends Partial<ParserOptions> {
  /** connections tracked at once (default 4096) */
  maxConnections?: number;
  onRecord: (record: L7Record) => void;
}

const PARSERS: Record<ConnProtocol, (ctx: ParserContext) => ConnectionParser> = {
  http1: (ctx) => new Http1Parser(ctx),
  http2: (ctx) => new Http2Parser(ctx),
  postgres: (ctx) => new PostgresParser(ctx),
  redis: (ctx) => new RedisParser(ctx),
};

interface Entry {
  protocol: ConnProtocol | 'unknown';
  parser: ConnectionParser | undefined;
  last: bigint;
}

export class L7Tracker {
  readonly stats: L7Stats = newStats();
  private readonly conns = new LruMap<ConnId, Entry>();
  private readonly options: ParserOptions;
  private readonly max: number;
  private readonly onRecord: (record: L7Record) => void;

  constructor(opts: TrackerOptions) {
    const { maxConnections, onRecord, ...parser } = opts;
    this.options = { ...DEFAULT_OPTIONS, ...parser };
    this.max = maxConnections ?? 4096;
    this.onRecord = onRecord;
  }

  get size(): number {
    return this.conns.size;
  }

  /** The protocol a connection was classified as, if it is tracked. */
  protocolOf(conn: ConnId): ConnProtocol | 'unknown' | undefined {
    return this.conns.get(conn)?.protocol;
  }

  /** Feeds one chunk; false when the connection is not parsed (unknown protocol), so its capture can stop. */
  push(chunk: Chunk): boolean {
    this.stats.chunks++;
    let entry = this.conns.use(chunk.conn); // now the most recently used
    if (!entry) {
      if (chunk.data.length === 0) return true; // nothing to classify yet
      entry = this.open(chunk);
    }
    entry.last = chunk.time;
    if (!entry.parser) return false;
    try {
      entry.parser.push(chunk);
    } catch {
      // parsers do not throw on any input (the fuzz tests hold them to it); were one to, the connection is dropped, not the agent
      this.stats.desyncs++;
      entry.parser = undefined;
      entry.protocol = 'unknown';
      return false;
    }
    return true;
  }

  /** The connection ended (its socket closed) at `time`: outstanding requests are recorded, the state goes. */
  close(conn: ConnId, time?: bigint): void {
    const entry = this.conns.get(conn);
    if (!entry) return;
    this.conns.delete(conn);
    entry.parser?.close(time ?? entry.last);
  }

  /** Closes connections that have seen nothing since `before` (a close the caller never got). */
  sweep(before: bigint): number {
    let n = 0;
    for (const [conn, entry] of this.conns) {
      if (entry.last >= before) continue;
      this.close(conn);
      n++;
    }
    return n;
  }

  private open(chunk: Chunk): Entry {
    if (this.conns.size >= this.max) {
      const [oldest, entry] = this.conns.oldest()!;
      this.conns.delete(oldest);
      this.stats.evictedConnections++;
      entry.parser?.close(entry.last);
    }
    const c = classify(chunk.data);
    let entry: Entry;
    if (c.protocol === 'unknown') {
      this.stats.unknownConnections++;
      entry = { protocol: 'unknown', parser: undefined, last: chunk.time };
    } else {
      const role: Role = chunk.role ?? (c.sender ? roleFrom(chunk.dir, c.sender) : 'client');
      // the client speaks first in these protocols: a first chunk from the server means the start was missed
      if (c.protocol !== 'http2' && c.sender === 'server') this.stats.midStreamConnections++;
      const ctx: ParserContext = { conn: chunk.conn, role, options: this.options, stats: this.stats, emit: this.onRecord };
      entry = { protocol: c.protocol, parser: PARSERS[c.protocol](ctx), last: chunk.time };
    }
    this.conns.set(chunk.conn, entry);
    return entry;
  }
}
