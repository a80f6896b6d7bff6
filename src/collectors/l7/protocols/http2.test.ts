import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FLAG, FRAME, Http2Parser, PREFACE } from './http2.js';
import { STATIC_TABLE } from './hpack.js';
import { huffmanEncode } from './huffman.js';
import { bytes, chunks, h2frame, HpackEncoder, inn, out, rng, run, splitChunks, type Call } from './test-util.js';
import type { ConnectionParser, GrpcRecord, HttpRecord, ParserContext } from './types.js';

const http2 = (ctx: ParserContext): ConnectionParser => new Http2Parser(ctx);
const { END_STREAM, END_HEADERS, PADDED, PRIORITY } = FLAG;
const SETTINGS = h2frame(FRAME.SETTINGS, 0, 0, [0, 3, 0, 0, 0, 100, 0, 4, 0, 0xff, 0xff, 0xff]);
const SETTINGS_ACK = h2frame(FRAME.SETTINGS, 1, 0);
const WINDOW = h2frame(FRAME.WINDOW_UPDATE, 0, 0, [0, 0x0f, 0, 1]);

/** A gRPC message: compressed flag, length, then the protobuf bytes. */
const grpcMessage = (body: number[]): Uint8Array => bytes([0, 0, 0, 0, body.length], body);

/** One client and one server encoder, as two peers have. */
function peers(): { client: HpackEncoder; server: HpackEncoder } {
  return { client: new HpackEncoder(STATIC_TABLE, huffmanEncode), server: new HpackEncoder(STATIC_TABLE, huffmanEncode) };
}

function grpcCall(): Call[] {
  const { client, server } = peers();
  const request = client.encode([
    [':method', 'POST'], [':scheme', 'http'], [':path', '/helloworld.Greeter/SayHello'], [':authority', 'localhost:50051'],
    ['content-type', 'application/grpc'], ['user-agent', 'grpc-go/1.62.0'], ['te', 'trailers'], ['grpc-timeout', '998m'],
  ]);
  return [
    out(PREFACE, SETTINGS),
    inn(SETTINGS, SETTINGS_ACK),
    out(SETTINGS_ACK, h2frame(FRAME.HEADERS, END_HEADERS, 1, request), h2frame(FRAME.DATA, END_STREAM, 1, grpcMessage([0x0a, 0x05, 0x77, 0x6f, 0x72, 0x6c, 0x64]))),
    inn(h2frame(FRAME.HEADERS, END_HEADERS, 1, server.encode([[':status', '200'], ['content-type', 'application/grpc']]))),
    inn(h2frame(FRAME.HEADERS, END_HEADERS | END_STREAM, 1, server.encode([['grpc-status', '5'], ['grpc-message', 'user%20not%20found']]))),
  ];
}

test('a gRPC call with trailers grpc-status 5 is a NOT_FOUND error of its service and method', () => {
  const { records, stats } = run(http2, chunks(grpcCall()));
  assert.equal(records.length, 1);
  const r = records[0] as GrpcRecord;
  assert.equal(r.protocol, 'grpc');
  assert.equal(r.service, 'helloworld.Greeter');
  assert.equal(r.method, 'SayHello');
  assert.equal(r.statusCode, 200);
  assert.equal(r.grpcStatus, 5);
  assert.equal(r.status, 'NOT_FOUND');
  assert.equal(r.error, true);
  assert.equal(r.errorMessage, 'user not found');
  assert.equal(r.start, 3000n);
  assert.equal(r.responseStart, 4000n);
  assert.equal(r.end, 5000n);
  assert.equal(r.midStream, false);
  assert.equal(stats.headerBlockFailures, 0);
});

/** Three GETs on streams 1, 3, 5, interleaved, with CONTINUATION, padding, priority and a reset. */
function browsing(): Call[] {
  const { client, server } = peers();
  const get = (path: string): Uint8Array =>
    client.encode([[':method', 'GET'], [':scheme', 'https'], [':path', path], [':authority', 'shop.example'], ['accept', '*/*'], ['user-agent', 'curl/8.5.0'], ['authorization', 'Bearer s3cret']]);
  const first = get('/items/123?full=1');
  const second = get('/items/456');
  const padded = (block: Uint8Array, pad: number): Uint8Array => bytes([pad], block, new Uint8Array(pad));
  const withPriority = (block: Uint8Array): Uint8Array => bytes([0, 0, 0, 1, 15], block);
  const third = get('/cart');
  const ok = server.encode([[':status', '200'], ['content-type', 'application/json'], ['server', 'envoy']]);
  const again = server.encode([[':status', '200'], ['content-type', 'application/json'], ['server', 'envoy']]);
  return [
    out(PREFACE, SETTINGS, WINDOW),
    inn(SETTINGS, SETTINGS_ACK),
    // stream 1's block split over HEADERS and two CONTINUATIONs
    out(h2frame(FRAME.HEADERS, END_STREAM, 1, first.subarray(0, 10)), h2frame(FRAME.CONTINUATION, 0, 1, first.subarray(10, 20)), h2frame(FRAME.CONTINUATION, END_HEADERS, 1, first.subarray(20))),
    out(h2frame(FRAME.HEADERS, END_STREAM | END_HEADERS | PADDED, 3, padded(second, 7))),
    out(h2frame(FRAME.HEADERS, END_STREAM | END_HEADERS | PRIORITY, 5, withPriority(third))),
    inn(h2frame(FRAME.HEADERS, END_HEADERS, 3, ok), h2frame(FRAME.DATA, PADDED, 3, bytes([2], '{"id":456}', [0, 0]))),
    inn(h2frame(FRAME.HEADERS, END_HEADERS, 1, again), h2frame(FRAME.DATA, 0, 1, 'x'.repeat(3000)), h2frame(FRAME.DATA, END_STREAM, 1, 'y'.repeat(100))),
    inn(h2frame(FRAME.DATA, END_STREAM, 3, [])),
    out(h2frame(FRAME.RST_STREAM, 0, 5, [0, 0, 0, 8])),
  ];
}

const brief = (r: HttpRecord): string => `${r.stream} ${r.method} ${r.path} ${r.status}${r.midStream ? ' mid' : ''}`;

test('interleaved streams with CONTINUATION, PADDED and PRIORITY are matched, and a reset ends its stream as an error', () => {
  const { records, stats } = run(http2, chunks(browsing()));
  assert.deepEqual((records as HttpRecord[]).map(brief), ['1 GET /items/123 200', '3 GET /items/456 200', '5 GET /cart reset']);
  assert.deepEqual((records as HttpRecord[]).map((r) => r.route), ['/items/{id}', '/items/{id}', '/cart']);
  assert.equal(records[2]!.error, true);
  assert.ok(records[0]!.responseBytes > 3100);
  assert.ok(!JSON.stringify(records, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).includes('s3cret'));
  assert.equal(stats.desyncs, 0);
});

test('any split of the calls gives the same records', () => {
  const whole = run(http2, chunks(browsing())).records;
  const random = rng(11);
  for (let i = 0; i < 200; i++) assert.deepEqual(run(http2, splitChunks(chunks(browsing()), random)).records, whole);
  const grpc = run(http2, chunks(grpcCall())).records;
  for (let i = 0; i < 100; i++) assert.deepEqual(run(http2, splitChunks(chunks(grpcCall()), random)).records, grpc);
});

/** A long-lived connection's calls: request i on stream 2i+1, each in its own write, answered in its own read. */
function longLived(n: number): Call[] {
  const { client, server } = peers();
  const calls: Call[] = [out(PREFACE, SETTINGS), inn(SETTINGS, SETTINGS_ACK)];
  for (let i = 0; i < n; i++) {
    const id = 2 * i + 1;
    const method = i % 3 === 0 ? 'POST' : 'GET';
    calls.push(out(h2frame(FRAME.HEADERS, END_HEADERS | (method === 'GET' ? END_STREAM : 0), id, client.encode([[':method', method], [':scheme', 'http'], [':path', `/api/v1/orders/${1000 + i}`], [':authority', 'orders:8080'], ['x-request-id', `r${i}`]]))));
    if (method === 'POST') calls.push(out(h2frame(FRAME.DATA, END_STREAM, id, '{"qty":1}')));
    calls.push(inn(h2frame(FRAME.HEADERS, END_HEADERS, id, server.encode([[':status', i % 5 === 4 ? '503' : '200'], ['content-type', 'application/json']])), h2frame(FRAME.DATA, END_STREAM, id, '{}')));
  }
  return calls;
}

test('a connection joined mid-stream counts every stream, and names none wrongly', () => {
  const all = longLived(12);
  const whole = run(http2, chunks(all)).records as HttpRecord[];
  assert.equal(whole.length, 12);
  // join after the first five requests: no preface, both tables missing the entries made so far
  const joinAt = all.findIndex((c, i) => i > 2 && c.dir === 'egress' && new TextDecoder().decode(c.data).length > 0 && all.slice(2, i).filter((x) => x.dir === 'ingress').length === 5);
  const { records, stats } = run(http2, chunks(all.slice(joinAt)));
  const recs = records as HttpRecord[];
  assert.equal(recs.length, 7);
  assert.ok(recs.every((r) => r.midStream));
  assert.equal(stats.midStreamConnections, 1);
  for (const r of recs) {
    const truth = whole.find((w) => w.stream === r.stream)!;
    // a name is either the true one or unknown, never another request's
    for (const k of ['method', 'path', 'host'] as const) assert.ok(r[k] === undefined || r[k] === truth[k], `${k} of stream ${r.stream}: ${r[k]}`);
    assert.ok(r.status === truth.status || r.status === 'unknown', `status of stream ${r.stream}`);
  }
  // :status 200 is in the static table: the 200s decode although the server's table is unknown
  assert.ok(recs.filter((r) => r.status === '200').length >= 1);
  // `:authority` was indexed before the join: unknown; methods are static entries and paths literals, so known
  assert.ok(recs.some((r) => r.host === undefined));
  assert.ok(recs.every((r) => r.method !== undefined && r.path !== undefined));
});

test('a 32-byte capture counts every stream; a header block cut by it makes later names unknown, not wrong', () => {
  const all = longLived(12);
  const whole = run(http2, chunks(all)).records as HttpRecord[];
  const { records, stats } = run(http2, chunks(all, 32));
  const recs = records as HttpRecord[];
  assert.equal(recs.length, 12);
  for (const r of recs) {
    const truth = whole.find((w) => w.stream === r.stream)!;
    for (const k of ['method', 'path', 'status'] as const) assert.ok(r[k] === undefined || r[k] === truth[k] || r[k] === 'unknown', `${k} of stream ${r.stream}`);
  }
  assert.ok(stats.headerBlockFailures > 0);
});

test('a frame header in uncaptured bytes loses the frame boundaries until a call starts with frames again', () => {
  const { client, server } = peers();
  const calls: Call[] = [
    out(PREFACE, SETTINGS),
    out(h2frame(FRAME.HEADERS, END_HEADERS | END_STREAM, 1, client.encode([[':method', 'GET'], [':scheme', 'http'], [':path', '/a'], [':authority', 'h']]))),
    // a big body in one read: the END_STREAM frame after it is past the capture
    inn(h2frame(FRAME.HEADERS, END_HEADERS, 1, server.encode([[':status', '200']])), h2frame(FRAME.DATA, 0, 1, 'z'.repeat(2000)), h2frame(FRAME.DATA, END_STREAM, 1, 'end')),
    out(h2frame(FRAME.HEADERS, END_HEADERS | END_STREAM, 3, client.encode([[':method', 'GET'], [':scheme', 'http'], [':path', '/b'], [':authority', 'h']]))),
    inn(h2frame(FRAME.HEADERS, END_HEADERS | END_STREAM, 3, server.encode([[':status', '404']]))),
  ];
  const { records, stats } = run(http2, chunks(calls, 512));
  assert.deepEqual((records as HttpRecord[]).map(brief), ['3 GET /b 404', '1 GET /a 200']);
  assert.equal(records[1]!.responsePartial, true); // ended by the connection's end
  assert.equal(stats.desyncs, 1);
});
