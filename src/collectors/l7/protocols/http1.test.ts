import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crlfBefore, Http1Parser, parseHead, quickHead } from './http1.js';
import { indexOfBlankLine, indexOfCrlf } from './bytes.js';
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

/** Heads of both kinds as clients and servers write them, and odd ones the quick reader must leave or read alike. */
const HEADS: [boolean, string][] = [
  [true, 'GET /users/0 HTTP/1.1\r\nHost: 127.0.0.1:34953\r\nAccept-Encoding: identity\r\n\r\n'],
  [false, 'HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Thu, 03 Dec 2026 13:33:05 GMT\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n'],
  [true, 'POST /items?x=1#f HTTP/1.0\r\nhOsT:  api.example \r\nCONTENT-LENGTH: 11\r\nAuthorization: Bearer secret\r\n\r\n'],
  [true, 'PROPFIND * HTTP/1.1\r\n\r\n'],
  [true, 'BREW-2_X http://proxy.example:8080/a/b?c HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'],
  [true, 'GET /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: x\r\nContent-Length:\u00a07\u00a0\r\n\r\n'],
  [true, 'GET /a HTTP/1.1\r\nContent-Length:\t7\r\nTransfer-Encoding: gzip, Chunked \r\n: empty name\r\nno colon\r\n\r\n'],
  [true, 'GET /a HTTP/1.1\r\nContent-Length: 1234567890123456\r\nTransfer-Encoding: chunked, gzip\r\n\r\n'],
  [true, 'GET /a HTTP/2.0\r\n\r\n'],
  [true, 'GET /a\r\n\r\n'],
  [true, 'get /a HTTP/1.1\r\n\r\n'],
  [true, 'GET  /a HTTP/1.1\r\n\r\n'],
  [false, 'HTTP/1.0 404 Not Found\r\ncontent-length: 0\r\nset-cookie: s=2\r\n\r\n'],
  [false, 'HTTP/1.1 2000\r\nX-Long-Header-Name-That-Goes-On-And-On-Past-Sixty-Four-Characters-Of-Name: 1\r\n\r\n'],
  [false, 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'],
  [false, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\nHost: not\u00ffascii\r\n\r\nbody'],
];

/** What parseHead reads of the head at the start of `b` (the reference), or undefined where it waits or fails. */
function reference(b: Uint8Array, request: boolean): ReturnType<typeof parseHead> {
  const blank = indexOfBlankLine(b);
  return blank < 0 ? undefined : parseHead(b.subarray(0, blank + 4), request, true, blank + 4);
}

const latin1 = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));

test('the quick head reader reads the common heads, and every head it reads as the general reader does', () => {
  const quick = (i: number): boolean => quickHead(latin1(HEADS[i]![1]), HEADS[i]![0]) !== undefined;
  assert.ok([0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15].every(quick), 'plain heads, any case, odd values');
  assert.ok(![8, 9, 10, 11].some(quick), 'HTTP/2.0, no version, a lowercase method, two spaces: the general reader');
  const h = quickHead(latin1(HEADS[2]![1]), true)!;
  assert.deepEqual([h.method, h.target, h.host, h.contentLength, h.chunked], ['POST', '/items?x=1#f', 'api.example', 11, false]);
  assert.equal(quickHead(latin1(HEADS[1]![1]), false)!.chunked, true);
  const random = rng(11);
  const interesting = [0x0d, 0x0a, 0x3a, 0x20, 0x09, 0xa0, 0x7f, 0x00, 0x41, 0x61, 0x30, 0x2d, 0x48];
  let read = 0;
  for (let i = 0; i < 20000; i++) {
    const [request, head] = HEADS[Math.floor(random() * HEADS.length)]!;
    const b = latin1(head);
    for (let m = Math.floor(random() * 4); m > 0; m--) {
      const at = Math.floor(random() * b.length);
      b[at] = random() < 0.7 ? interesting[Math.floor(random() * interesting.length)]! : Math.floor(random() * 256);
    }
    const cut = b.subarray(0, random() < 0.2 ? Math.floor(random() * b.length) : b.length);
    const got = quickHead(cut, request);
    // in place, inside a longer buffer, with a host it may know
    const from = Math.floor(random() * 5);
    const inside = new Uint8Array(from + cut.length + 3).fill(0x0d);
    inside.set(cut, from);
    assert.deepEqual(quickHead(inside, request, from, from + cut.length, random() < 0.5 ? '127.0.0.1:34953' : 'api.example'), got);
    if (got === undefined) continue;
    read++;
    assert.deepEqual(got, reference(cut, request), JSON.stringify(String.fromCharCode(...cut)));
  }
  assert.ok(read > 5000, `the quick reader read ${read} of the mutated heads`);
});

test('heads with names in any case, odd framing values and pipelined messages give the same records split anywhere', () => {
  // latin1, not UTF-8: NBSP is one byte 0xa0 on the wire here
  const lout = (...parts: string[]): Call => ({ dir: 'egress', data: latin1(parts.join('')) });
  const linn = (...parts: string[]): Call => ({ dir: 'ingress', data: latin1(parts.join('')) });
  const calls: Call[] = [
    lout('GET /v1/items/77 HTTP/1.1\r\nhost: api.example\r\nCOOKIE: s=secret\r\n\r\n', 'POST /v1/items HTTP/1.1\r\nHOST: api.example\r\ncontent-LENGTH:\u00a03\r\n\r\nabc'),
    linn('HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', 'HTTP/1.1 201 Created\r\nContent-Length: 2\r\nSet-Cookie: t=secret\r\n\r\nok'),
    lout('DELETE /v1/items/78 HTTP/1.0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', '2\r\nzz\r\n0\r\n\r\n'),
    linn('HTTP/1.0 500 Oops\r\nContent-Length: 4\r\n\r\nfail'),
  ];
  const whole = run(http1, chunks(calls));
  const recs = whole.records as HttpRecord[];
  assert.deepEqual(recs.map(brief), ['GET /v1/items/77 200', 'POST /v1/items 201', 'DELETE /v1/items/78 500']);
  assert.deepEqual(recs.map((r) => r.route), ['/v1/items/{id}', '/v1/items', '/v1/items/{id}']);
  assert.deepEqual(recs.map((r) => r.host), ['api.example', 'api.example', undefined]);
  assert.equal(whole.stats.desyncs, 0);
  assert.ok(!JSON.stringify(recs, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).includes('secret'));
  const random = rng(5);
  for (let i = 0; i < 300; i++) assert.deepEqual(run(http1, splitChunks(chunks(calls), random)).records, whole.records);
});

test('a chunked body gives the same records read in place from one call or across calls split at any byte', () => {
  const body = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n1A\r\n' + 'q'.repeat(26) + '\r\n0\r\nX-Trailer: 1\r\n\r\n';
  const calls = [out(get('/c/1')), inn(body), out(get('/c/2')), inn(ok('fine'))];
  const whole = run(http1, chunks(calls));
  assert.deepEqual((whole.records as HttpRecord[]).map(brief), ['GET /c/1 200', 'GET /c/2 200']);
  assert.equal(whole.records[0]!.responseBytes, calls[1]!.data.length);
  assert.equal(whole.stats.desyncs, 0);
  const all = chunks(calls);
  const response = all[1]!;
  for (let at = 1; at < response.size; at++) {
    const split = [all[0]!, { ...response, data: response.data.subarray(0, at), size: at }, { ...response, data: response.data.subarray(at), size: response.size - at }, all[2]!, all[3]!];
    assert.deepEqual(run(http1, split).records, whole.records, `split at ${at}`);
  }
});

test('looking at every other byte finds the first CRLF, as looking at each does', () => {
  const random = rng(23);
  for (let i = 0; i < 20000; i++) {
    const b = Uint8Array.from({ length: Math.floor(random() * 12) }, () => [0x0d, 0x0a, 0x41][Math.floor(random() * 3)]!);
    const at = Math.floor(random() * (b.length + 1));
    const to = at + Math.floor(random() * (b.length - at + 1));
    const each = indexOfCrlf(b.subarray(0, to), at);
    assert.equal(crlfBefore(b, at, to), each, `${Array.from(b).join(',')} from ${at} before ${to}`);
  }
});
