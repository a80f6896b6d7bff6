import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Http1Parser } from './http1.js';
import { chunks, inn, out, rng, run, splitChunks } from './test-util.js';
import type { Call } from './test-util.js';
import type { ConnectionParser, HttpRecord, ParserContext } from './types.js';

const http1 = (ctx: ParserContext): ConnectionParser => new Http1Parser(ctx);

const get = (path: string, extra = ''): string => `GET ${path} HTTP/1.1\r\nHost: api.example\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n${extra}\r\n`;
const ok = (body: string, extra = ''): string => `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\n${extra}\r\n${body}`;
const chunked = (status: number, parts: string[]): string =>
  `HTTP/1.1 ${status} X\r\nTransfer-Encoding: chunked\r\n\r\n` + parts.map((p) => `${p.length.toString(16)}\r\n${p}\r\n`).join('') + '0\r\n\r\n';

const brief = (r: HttpRecord): string => `${r.method} ${r.path} ${r.status}${r.requestPartial ? ' req-partial' : ''}${r.responsePartial ? ' res-partial' : ''}`;

test('three pipelined requests in one write are matched in order to three responses in one read', () => {
  const calls: Call[] = [
    out(get('/a?x=1'), get('/users/42'), 'POST /items HTTP/1.1\r\nHost: api.example\r\nContent-Length: 11\r\n\r\n{"n":"abc"}'),
    inn(ok('hello'), 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n', 'HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy'),
  ];
  const { records, stats } = run(http1, chunks(calls));
  const recs = records as HttpRecord[];
  assert.deepEqual(recs.map(brief), ['GET /a 200', 'GET /users/42 404', 'POST /items 503']);
  assert.deepEqual(recs.map((r) => r.route), ['/a', '/users/{id}', '/items']);
  assert.equal(recs[2]!.error, true);
  assert.equal(recs[0]!.host, 'api.example');
  assert.equal(recs[0]!.start, 1000n);
  assert.equal(recs[0]!.end, 2000n);
  assert.equal(recs.reduce((n, r) => n + r.requestBytes, 0), calls[0]!.data.length);
  assert.equal(recs.reduce((n, r) => n + r.responseBytes, 0), calls[1]!.data.length);
  assert.equal(stats.desyncs, 0);
});

test('keep-alive with chunked responses follows every chunk to the next response', () => {
  const calls: Call[] = [
    out(get('/stream/1')),
    inn(chunked(200, ['first part ', 'x'.repeat(300), 'last'])),
    out(get('/stream/2')),
    inn(chunked(500, ['oops'])),
    out('HEAD /big HTTP/1.1\r\nHost: h\r\n\r\n'),
    inn('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n'),
    out(get('/nothing')),
    inn('HTTP/1.1 204 No Content\r\n\r\n'),
  ];
  const { records, stats } = run(http1, chunks(calls));
  assert.deepEqual((records as HttpRecord[]).map(brief), ['GET /stream/1 200', 'GET /stream/2 500', 'HEAD /big 200', 'GET /nothing 204']);
  assert.equal(records[0]!.responseBytes, calls[1]!.data.length);
  assert.equal(stats.desyncs, 0);
});

/** A conversation with bodies bigger than a capture, chunked and not, a 100 Continue and a pipelined pair. */
function conversation(): Call[] {
  const big = 'B'.repeat(5000);
  return [
    out(get('/one')),
    inn(ok(big)),
    out('PUT /upload/0f1e2d3c4b5a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3000\r\n\r\n'),
    inn('HTTP/1.1 100 Continue\r\n\r\n'),
    out('u'.repeat(3000)),
    inn('HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok'),
    out(get('/chunks')),
    inn('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'),
    inn('1000\r\n', 'c'.repeat(4096), '\r\n'),
    inn('800\r\n', 'd'.repeat(2048), '\r\n'),
    inn('0\r\n\r\n'),
    out(get('/p1'), get('/p2')),
    inn(ok('one')),
    inn(ok('two')),
  ];
}

test('any split of the calls gives the same records', () => {
  const whole = run(http1, chunks(conversation())).records;
  assert.deepEqual((whole as HttpRecord[]).map(brief), ['GET /one 200', 'PUT /upload/0f1e2d3c4b5a 201', 'GET /chunks 200', 'GET /p1 200', 'GET /p2 200']);
  assert.equal((whole[1] as HttpRecord).route, '/upload/{id}');
  const random = rng(7);
  for (let i = 0; i < 200; i++) assert.deepEqual(run(http1, splitChunks(chunks(conversation()), random)).records, whole);
});

test('a 64-byte capture with true sizes still matches every request whose call starts its message', () => {
  const { records, stats } = run(http1, chunks(conversation(), 64));
  const recs = records as HttpRecord[];
  // every head is longer than 64 bytes: each message is partial, and each call that starts one resynchronizes
  assert.deepEqual(recs.map((r) => `${r.method} ${r.status}`), ['GET 200', 'PUT 201', 'GET 200', 'GET 200', 'undefined 200']);
  assert.ok(recs.every((r) => r.requestPartial));
  assert.equal(recs[3]!.path, '/p1');
  assert.ok(stats.desyncs > 0);
  assert.equal(stats.unmatchedResponses, 1); // /p2 was past the capture of the write that held both requests
});

test('a capture that holds the heads follows bodies by their declared lengths alone', () => {
  const whole = run(http1, chunks(conversation())).records;
  const cut = run(http1, chunks(conversation(), 200));
  assert.deepEqual(cut.records, whole);
  assert.equal(cut.stats.desyncs, 0);
});

test('a chunked body whose size lines were not captured resynchronizes on the next response line', () => {
  const calls: Call[] = [
    out('GET /c HTTP/1.1\r\nHost: h\r\n\r\n'),
    inn('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n', '20\r\n', 'x'.repeat(32), '\r\n0\r\n\r\n'),
    out('GET /d HTTP/1.1\r\nHost: h\r\n\r\n'),
    inn('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine'),
  ];
  const { records, stats } = run(http1, chunks(calls, 64));
  assert.deepEqual((records as HttpRecord[]).map(brief), ['GET /c 200 res-partial', 'GET /d 200']);
  assert.equal(records[0]!.end, 2000n);
  assert.equal(stats.desyncs, 1);
});

test('a chunked response past the capture, ended in the same read as nginx writes it, is whole; a read that ends elsewhere is not', () => {
  // nginx's echo and proxied responses: head, one chunk, the last chunk, all in one write, read at once
  const calls: Call[] = [out(get('/users/1')), inn(chunked(200, ['x'.repeat(3000)])), out(get('/users/2')), inn(chunked(404, ['y'.repeat(2000), 'z'.repeat(10)]))];
  const { records, stats } = run(http1, chunks(calls, 512));
  assert.deepEqual((records as HttpRecord[]).map(brief), ['GET /users/1 200', 'GET /users/2 404 res-partial']);
  assert.equal(records[0]!.end, 2000n);
  assert.equal(records[0]!.responseBytes, calls[1]!.data.length);
  assert.equal(stats.desyncs, 1); // the second body's second size line was not captured
  // the blank line after an uncaptured "0\r\n" alone: the same
  const trailer = [out('GET /t HTTP/1.1\r\nHost: h\r\n\r\n'), inn('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n')];
  const cut = run(http1, chunks(trailer, trailer[1]!.data.length - 2));
  assert.deepEqual((cut.records as HttpRecord[]).map(brief), ['GET /t 200']);
  assert.equal(cut.stats.desyncs, 0);
  // the capture ending inside the last chunk ("\r\n0" seen, "\r\n\r\n" not): the same
  const inside = [out('GET /i HTTP/1.1\r\nHost: h\r\n\r\n'), inn(chunked(200, ['w'.repeat(500)]))];
  const i = run(http1, chunks(inside, inside[1]!.data.length - 4));
  assert.deepEqual((i.records as HttpRecord[]).map(brief), ['GET /i 200']);
  assert.equal(i.stats.desyncs, 0);
  // a read that ends three bytes into the last chunk is no end: partial, as before
  const short = [out(get('/s')), inn('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', 'a'.repeat(600).length.toString(16), '\r\n', 'a'.repeat(600), '\r\n0\r\n')];
  const partial = run(http1, chunks(short, 512));
  assert.deepEqual((partial.records as HttpRecord[]).map(brief), ['GET /s 200 res-partial']);
});

test('a server sees requests as ingress; an upgrade ends parsing; unanswered requests are recorded at close', () => {
  const calls: Call[] = [
    inn(get('/ws', 'Upgrade: websocket\r\nConnection: Upgrade\r\n')),
    out('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n'),
    inn([0x81, 0x05, 1, 2, 3, 4, 5]),
  ];
  const { records } = run(http1, chunks(calls), 'server');
  assert.deepEqual((records as HttpRecord[]).map(brief), ['GET /ws 101']);
  const lost = run(http1, chunks([out(get('/slow'))]));
  assert.deepEqual((lost.records as HttpRecord[]).map(brief), ['GET /slow none res-partial']);
  assert.equal(lost.stats.unansweredRequests, 1);
});

test('credentials are never kept and shapes-only mode keeps no path or host', () => {
  const calls = [out(get('/users/7?token=abc', 'Authorization: Bearer secret\r\nCookie: s=1\r\n')), inn(ok('x', 'Set-Cookie: s=2\r\n'))];
  const samples = run(http1, chunks(calls)).records[0] as HttpRecord;
  assert.ok(!JSON.stringify(samples, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).includes('secret'));
  assert.equal(samples.path, '/users/7');
  const shapes = run(http1, chunks(calls), 'client', { payload: 'shapes' }).records[0] as HttpRecord;
  assert.equal(shapes.path, undefined);
  assert.equal(shapes.host, undefined);
  assert.equal(shapes.route, '/users/{id}');
});
