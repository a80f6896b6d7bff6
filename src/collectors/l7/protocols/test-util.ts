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
