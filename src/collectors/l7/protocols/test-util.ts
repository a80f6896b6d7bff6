/**
 * Helpers for the protocol tests: calls as a process makes them (a direction and the bytes of one
 * read or write), turned into chunks whole, split at random points (as a reader with a smaller buffer
 * would see them), or cut to a capture limit with their true size. A seeded generator keeps every
 * random run reproducible.
 */
import { type Chunk, type ConnectionParser, DEFAULT_OPTIONS, type Direction, type L7Record, type L7Stats, newStats, type ParserContext, type ParserOptions, type Role } from './types.js';

export interface Call {
  dir: Direction;
  data: Uint8Array;
}

const enc = new TextEncoder();

export const bytes = (...parts: (string | Uint8Array | number[])[]): Uint8Array => {
  const arrays = parts.map((p) => (typeof p === 'string' ? enc.encode(p) : p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
};

export const out = (...parts: (string | Uint8Array | number[])[]): Call => ({ dir: 'egress', data: bytes(...parts) });
export const inn = (...parts: (string | Uint8Array | number[])[]): Call => ({ dir: 'ingress', data: bytes(...parts) });

/** A small seeded generator (mulberry32): the same seed gives the same run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Shuffles `items` in place (Fisher-Yates) with `random` (e.g. rng(seed)); returns it. */
export function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

/** One chunk per call, the i-th call at time (i + 1) * 1000 ns, captured up to `cap` bytes. */
export function chunks(calls: readonly Call[], cap = Infinity, conn: bigint | string = 1n): Chunk[] {
  return calls.map((c, i) => ({ conn, dir: c.dir, time: BigInt((i + 1) * 1000), data: c.data.subarray(0, Math.min(cap, c.data.length)), size: c.data.length }));
}

/** The same chunks with each call split at random points into several, all at the call's time. */
export function splitChunks(list: readonly Chunk[], random: () => number): Chunk[] {
  const res: Chunk[] = [];
  for (const c of list) {
    let at = 0;
    while (at < c.size) {
      const n = Math.max(1, Math.floor(random() * Math.min(c.size - at, 1 + random() * 64)) + (random() < 0.3 ? c.size : 0));
      const end = Math.min(c.size, at + n);
      const data = c.data.subarray(Math.min(at, c.data.length), Math.min(end, c.data.length));
      res.push({ ...c, data, size: end - at });
      at = end;
    }
  }
  return res;
}

export function context(role: Role, records: L7Record[], options: Partial<ParserOptions> = {}, stats: L7Stats = newStats()): ParserContext {
  return { conn: 1n, role, options: { ...DEFAULT_OPTIONS, ...options }, stats, emit: (r) => records.push(r) };
}

/** Feeds chunks to a new parser and closes it one tick after the last; returns the records and the counters. */
export function run(
  make: (ctx: ParserContext) => ConnectionParser,
  list: readonly Chunk[],
  role: Role = 'client',
  options: Partial<ParserOptions> = {},
): { records: L7Record[]; stats: L7Stats } {
  const records: L7Record[] = [];
  const stats = newStats();
  const parser = make(context(role, records, options, stats));
  for (const c of list) parser.push(c);
  parser.close(list.reduce((t, c) => (c.time > t ? c.time : t), 0n) + 1_000_000n);
  return { records, stats };
}

/** HPACK integer with an `n`-bit prefix, the first byte's high bits set to `flags`. */
export function hpackInt(value: number, n: number, flags: number): number[] {
  const max = (1 << n) - 1;
  if (value < max) return [flags | value];
  const out = [flags | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/**
 * An HPACK encoder as common clients and servers behave: exact matches indexed, other fields
 * literal with incremental indexing (so later requests refer to the dynamic table), credentials
 * never indexed, strings Huffman-coded when that is shorter.
 */
export class HpackEncoder {
  private table: [string, string][] = [];
  private size = 0;

  constructor(
    private readonly staticTable: readonly (readonly [string, string])[],
    private readonly huffman: (b: Uint8Array) => Uint8Array,
    private readonly max = 4096,
  ) {}

  encode(fields: readonly (readonly [string, string])[]): Uint8Array {
    const out: number[] = [];
    for (const [name, value] of fields) {
      const all = [...this.staticTable, ...this.table];
      const exact = all.findIndex(([n, v]) => n === name && v === value);
      if (exact >= 0) {
        out.push(...hpackInt(exact + 1, 7, 0x80));
        continue;
      }
      const named = all.findIndex(([n]) => n === name);
      const secret = name === 'authorization' || name === 'cookie';
      if (secret) out.push(...hpackInt(named + 1, 4, 0x10));
      else out.push(...hpackInt(named + 1, 6, 0x40));
      if (named < 0) out.push(...this.string(name));
      out.push(...this.string(value));
      if (!secret) this.insert(name, value);
    }
    return Uint8Array.from(out);
  }

  private string(s: string): number[] {
    const raw = new TextEncoder().encode(s);
    const h = this.huffman(raw);
    return h.length < raw.length ? [...hpackInt(h.length, 7, 0x80), ...h] : [...hpackInt(raw.length, 7, 0), ...raw];
  }

  private insert(name: string, value: string): void {
    const size = name.length + value.length + 32;
    this.table.unshift([name, value]);
    this.size += size;
    while (this.size > this.max) {
      const [n, v] = this.table.pop()!;
      this.size -= n.length + v.length + 32;
    }
  }
}

/** An HTTP/2 frame. */
export function h2frame(type: number, flags: number, stream: number, payload: Uint8Array | number[] | string = []): Uint8Array {
  const p = bytes(payload);
  return bytes([(p.length >> 16) & 0xff, (p.length >> 8) & 0xff, p.length & 0xff, type, flags, (stream >>> 24) & 0x7f, (stream >> 16) & 0xff, (stream >> 8) & 0xff, stream & 0xff], p);
}
