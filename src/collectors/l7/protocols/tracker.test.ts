import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Http1Parser } from './http1.js';
import { FLAG, FRAME, Http2Parser, PREFACE } from './http2.js';
import { STATIC_TABLE } from './hpack.js';
import { huffmanEncode } from './huffman.js';
import { PostgresParser } from './postgres.js';
import { RedisParser } from './redis.js';
import { L7Tracker } from './tracker.js';
import { bytes, context, h2frame, HpackEncoder, rng } from './test-util.js';
import { type Chunk, type ConnectionParser, type Direction, type L7Record, newStats, type ParserContext } from './types.js';

const chunk = (conn: bigint, dir: Direction, time: number, data: Uint8Array | string, size?: number): Chunk => {
  const d = bytes(data);
  return { conn, dir, time: BigInt(time), data: d, size: size ?? d.length };
};

test('interleaved connections of four protocols are classified once each and their records kept apart', () => {
  const records: L7Record[] = [];
  const t = new L7Tracker({ onRecord: (r) => records.push(r) });
  const enc = new HpackEncoder(STATIC_TABLE, huffmanEncode);
  const feed: Chunk[] = [
    chunk(1n, 'egress', 1, 'GET /health HTTP/1.1\r\nHost: a\r\n\r\n'),
    chunk(2n, 'egress', 2, '*2\r\n$3\r\nGET\r\n$1\r\nk\r\n'),
    chunk(3n, 'ingress', 3, bytes('Q', [0, 0, 0, 13], 'SELECT 1\0')), // a server: it reads the query
    chunk(4n, 'egress', 4, bytes(PREFACE, h2frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, enc.encode([[':method', 'GET'], [':scheme', 'http'], [':path', '/x'], [':authority', 'b']])))),
    chunk(2n, 'ingress', 5, '$1\r\nv\r\n'),
    chunk(4n, 'ingress', 6, h2frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, [0x88])),
    chunk(1n, 'ingress', 7, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'),
    chunk(3n, 'egress', 8, bytes('C', [0, 0, 0, 13], 'SELECT 1\0', 'Z', [0, 0, 0, 5], 'I')),
    chunk(5n, 'egress', 9, 'SSH-2.0-OpenSSH_9.2\r\n'),
    chunk(5n, 'ingress', 10, 'SSH-2.0-OpenSSH_9.6\r\n'),
  ];
  const wanted = feed.map((c) => t.push(c));
  assert.deepEqual(wanted, [true, true, true, true, true, true, true, true, false, false]);
  assert.deepEqual(records.map((r) => `${r.conn} ${r.protocol} ${r.role} ${r.status}`), ['2 redis client ok', '4 http2 client 200', '1 http1 client 200', '3 postgres server ok']);
  assert.equal(t.protocolOf(5n), 'unknown');
  assert.equal(t.stats.unknownConnections, 1);
  assert.equal(t.stats.records, 4);
});

test('the kernel’s role wins over the bytes; an evicted connection’s outstanding request is recorded, counted', () => {
  const records: L7Record[] = [];
  const t = new L7Tracker({ maxConnections: 2, onRecord: (r) => records.push(r) });
  t.push({ ...chunk(1n, 'egress', 1, 'GET /a HTTP/1.1\r\n\r\n'), role: 'client' });
  t.push(chunk(2n, 'egress', 2, 'GET /b HTTP/1.1\r\n\r\n'));
  t.push(chunk(1n, 'ingress', 3, 'HTTP/1.1 204 No Content\r\n\r\n'));
  t.push(chunk(3n, 'egress', 4, 'GET /c HTTP/1.1\r\n\r\n')); // evicts 2, the least recently used
  assert.equal(t.stats.evictedConnections, 1);
  assert.equal(t.size, 2);
  assert.deepEqual(records.map((r) => `${r.conn} ${r.status}`), ['1 204', '2 none']);
  t.close(3n, 10n);
  assert.deepEqual(records.map((r) => `${r.conn} ${r.status}`), ['1 204', '2 none', '3 none']);
  assert.equal(records[2]!.end, 10n);
  assert.equal(t.sweep(100n), 1);
  assert.equal(t.size, 0);
});

/** Valid streams of each protocol to mutate: what a fuzzer starting from real traffic would do. */
function seeds(): { make: (ctx: ParserContext) => ConnectionParser; calls: [Direction, Uint8Array][] }[] {
  const enc = new HpackEncoder(STATIC_TABLE, huffmanEncode);
  return [
    {
      make: (ctx) => new Http1Parser(ctx),
      calls: [
        ['egress', bytes('POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n')],
        ['ingress', bytes('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabcHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 500 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n')],
      ],
    },
    {
      make: (ctx) => new Http2Parser(ctx),
      calls: [
        ['egress', bytes(PREFACE, h2frame(FRAME.SETTINGS, 0, 0, [0, 1, 0, 0, 0x10, 0]), h2frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM | FLAG.PADDED, 1, bytes([2], enc.encode([[':method', 'GET'], [':path', '/p'], ['content-type', 'application/grpc']]), [0, 0])))],
        ['ingress', bytes(h2frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, [0x88]), h2frame(FRAME.CONTINUATION, FLAG.END_HEADERS, 1, [0x40, 1, 0x61, 1, 0x62]), h2frame(FRAME.DATA, FLAG.END_STREAM, 1, 'xyz'), h2frame(FRAME.RST_STREAM, 0, 3, [0, 0, 0, 1]))],
      ],
    },
    {
      make: (ctx) => new PostgresParser(ctx),
      calls: [
        ['egress', bytes([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f], 'P', [0, 0, 0, 16], 's\0SELECT $1\0', [0, 0], 'B', [0, 0, 0, 12], '\0s\0', [0, 0, 0, 0, 0, 0], 'E', [0, 0, 0, 9], '\0', [0, 0, 0, 0], 'S', [0, 0, 0, 4])],
        ['ingress', bytes('N1', [0, 0, 0, 4], '2', [0, 0, 0, 4], 'D', [0, 0, 0, 6, 0, 0], 'C', [0, 0, 0, 13], 'SELECT 1\0', 'E', [0, 0, 0, 10], 'C42P01\0\0', 'Z', [0, 0, 0, 5], 'I')],
      ],
    },
    {
      make: (ctx) => new RedisParser(ctx),
      calls: [
        ['egress', bytes('*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\nSUBSCRIBE c\r\n')],
        ['ingress', bytes('|1\r\n+a\r\n:1\r\n$1\r\nv\r\n%1\r\n~1\r\n#t\r\n*2\r\n_\r\n,1.5\r\n>2\r\n+x\r\n+y\r\n-ERR no\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n')],
      ],
    },
  ];
}

test('hostile input: random and mutated bytes never throw, and what is held stays bounded', () => {
  const random = rng(1234);
  const maxBuffer = 4096;
  const byte = (): number => Math.floor(random() * 256);
  let records = 0;
  for (let i = 0; i < 2000; i++) {
    for (const seed of seeds()) {
      const stats = newStats();
      const out: L7Record[] = [];
      const parser = seed.make(context(random() < 0.5 ? 'client' : 'server', out, { maxBuffer, maxPending: 32, maxDepth: 8 }, stats));
      let time = 0;
      for (let k = 0; k < 6; k++) {
        const [dir, base] = seed.calls[Math.floor(random() * seed.calls.length)]!;
        let data: Uint8Array;
        const mode = random();
        if (mode < 0.3) data = Uint8Array.from({ length: Math.floor(random() * 600) }, byte); // noise
        else {
          data = base.slice();
          const flips = Math.floor(random() * 6);
          for (let f = 0; f < flips; f++) data[Math.floor(random() * data.length)] = byte();
          if (random() < 0.3) data = data.subarray(0, Math.floor(random() * data.length));
        }
        // sizes that lie: more than captured (a big uncaptured rest) and sometimes absurdly more
        const size = data.length + (random() < 0.3 ? Math.floor(random() * (random() < 0.1 ? 2 ** 31 : 5000)) : 0);
        const captured = random() < 0.2 ? data.subarray(0, 64) : data;
        parser.push({ conn: 1n, dir: random() < 0.8 ? dir : dir === 'egress' ? 'ingress' : 'egress', time: BigInt(++time), data: captured, size: Math.max(size, captured.length) });
        assert.ok(parser.buffered() <= 2 * maxBuffer + 5000, `buffered ${parser.buffered()}`);
      }
      parser.close(BigInt(++time));
      records += out.length;
      for (const r of out) assert.ok(r.end >= r.start || r.responseStart !== undefined, 'times in order');
    }
  }
  assert.ok(records > 0);
});

test('a header that never ends, a deep reply and a flood of pipelined commands are bounded', () => {
  const out: L7Record[] = [];
  const t = new L7Tracker({ maxBuffer: 8192, maxPending: 64, onRecord: (r) => out.push(r) });
  t.push(chunk(1n, 'egress', 1, 'GET / HTTP/1.1\r\n'));
  for (let i = 0; i < 1000; i++) t.push(chunk(1n, 'egress', 2 + i, `X-Junk-${i}: ${'y'.repeat(1000)}\r\n`));
  t.push(chunk(2n, 'egress', 1, '*1\r\n$4\r\nPING\r\n'.repeat(10_000)));
  t.push(chunk(2n, 'ingress', 2, '+PONG\r\n'.repeat(10_000)));
  assert.ok(t.stats.desyncs >= 1);
  assert.equal(t.stats.pendingOverflow, 10_000 - 64);
  // every reply is counted; the 64 kept commands are named, the replies to dropped ones are not
  assert.equal(out.filter((r) => r.conn === 2n && r.status === 'ok').length, 10_000);
  assert.equal(out.filter((r) => r.protocol === 'redis' && r.command === 'PING').length, 64);
  assert.equal(t.stats.unmatchedResponses, 10_000 - 64);
});
