/**
 * The agent faces a cluster network: no request, however malformed, may crash it. A real agent
 * process gets a corpus of malformed and hostile requests over raw TCP (and plain text on its TLS
 * port); every answer must be a proper HTTP status, never a 500 and never a hang, and afterwards the
 * agent must still serve /healthz and /metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { exchange, request, type Exchange, type ExchangeOptions } from '../raw-http.js';
import { eventually, needsKernel } from '../kernel.js';
import { startAgent, type RunningAgent } from '../agent-process.js';
import { makeCertificates } from '../tls.js';

interface Case {
  name: string;
  send: (string | Buffer)[] | string | Buffer;
  /** the statuses, in order; [] when the server should close without an answer */
  expect: number[];
  /** other acceptable outcomes, where timing decides */
  or?: number[][];
  opts?: Partial<ExchangeOptions>;
}

/** Bytes from a fixed-seed generator: the same garbage every run. */
function garbage(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const close = ['Connection: close'];
const get = (target: string, headers: string[] = close): string => request(target, headers);

const CORPUS: Case[] = [
  // request targets
  { name: 'a target the URL parser rejects: //x:99999999/', send: get('//x:99999999/'), expect: [400] },
  { name: 'absolute form with a bad port', send: get('http://x:99999999/metrics'), expect: [400] },
  { name: 'absolute form', send: get('http://example.com/healthz'), expect: [200] },
  { name: 'asterisk form', send: get('*'), expect: [404] },
  { name: 'dot segments', send: get('/../../../etc/passwd'), expect: [404] },
  { name: 'NUL byte in the path', send: get('/metrics\0x'), expect: [400] },
  { name: 'raw UTF-8 in the path', send: Buffer.from('GET /\xc3\xbc HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1'), expect: [400] },
  { name: 'invalid percent-encoding in the path', send: get('/%zz%%/%'), expect: [404] },
  { name: 'NUL (encoded) in the query', send: get('/api/v1/events?type=exec%00'), expect: [400] },
  { name: 'invalid percent-encoding in the query', send: get('/api/v1/events?limit=%E0%A4%A&since=%ff%fe'), expect: [400] },
  // the network collector's routes
  { name: 'the service map with a window that is not one', send: get('/api/v1/network/edges?window=5x'), expect: [400] },
  { name: 'the service map with an enormous window', send: get(`/api/v1/network/edges?window=${'9'.repeat(400)}m`), expect: [400] },
  { name: 'the service map with a window past what is kept', send: get('/api/v1/network/edges?window=999999m&limit=-5'), expect: [200] },
  { name: 'the service map with a limit that is not a number', send: get('/api/v1/network/edges?limit=1e309&limit=x'), expect: [200] },
  { name: 'failing DNS names with a query it ignores', send: get('/api/v1/network/dns?%00=%ff'), expect: [200] },
  { name: 'a very long path (8 KiB)', send: get(`/${'a'.repeat(8 << 10)}`), expect: [404] },
  { name: 'a very long query value (15 KiB)', send: get(`/api/v1/events?cgroup=${'b'.repeat(15 << 10)}`), expect: [200] },
  { name: 'a URL past the header limit (20 KiB)', send: get(`/${'c'.repeat(20 << 10)}`), expect: [431] },
  // request lines
  { name: 'garbage request line', send: 'GARBAGE\r\n\r\n', expect: [400] },
  { name: 'method alone', send: 'GET\r\n\r\n', expect: [400] },
  { name: 'unknown protocol version', send: 'GET / HTTP/9.9\r\nHost: a\r\n\r\n', expect: [400] },
  { name: 'not HTTP', send: 'GET / FOO/1.1\r\nHost: a\r\n\r\n', expect: [400] },
  { name: 'tab as separator', send: 'GET\t/healthz HTTP/1.1\r\nHost: a\r\n\r\n', expect: [400] },
  { name: 'bare LF line endings', send: 'GET /healthz HTTP/1.1\nHost: a\n\n', expect: [400] },
  { name: 'HTTP/0.9 request, then the client half-closes', send: 'GET /\r\n', expect: [400], opts: { end: true } },
  { name: 'HTTP/2 connection preface', send: 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', expect: [400] },
  { name: 'a TLS ClientHello on the plain port', send: Buffer.from('16030100a5010000a10303', 'hex'), expect: [400] },
  { name: '4 KiB of garbage', send: garbage(4096, 1), expect: [400] },
  // Node answers 400 only while nothing has been written on the connection: whether the 200 is out yet is timing
  { name: 'garbage after a good request on the same connection', send: [request('/healthz'), 'GARBAGE\r\n\r\n'], expect: [200, 400], or: [[200]] },
  // headers
  { name: 'a header past 16 KiB', send: get('/healthz', [`X-Big: ${'a'.repeat(20 << 10)}`]), expect: [431] },
  { name: '3000 small headers', send: get('/healthz', Array.from({ length: 3000 }, (_x, i) => `X-H${i}: v`)), expect: [431] },
  { name: 'a control character in a header value', send: get('/healthz', ['X-Bad: a\x01b']), expect: [400] },
  { name: 'a space in a header name', send: get('/healthz', ['Bad Header: x']), expect: [400] },
  { name: 'obsolete line folding', send: get('/healthz', ['X: a', ' b']), expect: [400] },
  { name: 'no Host header', send: 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n', expect: [400] },
  { name: 'two different Content-Lengths', send: 'GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', expect: [400] },
  { name: 'Transfer-Encoding and Content-Length together', send: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n', expect: [400] },
  { name: 'an absurd chunk size', send: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nffffffffffffffffff\r\n', expect: [405] },
  { name: 'Expect: 100-continue', send: get('/healthz', ['Expect: 100-continue', ...close]), expect: [200] },
  { name: 'an unknown expectation', send: get('/healthz', ['Expect: teapot', ...close]), expect: [417] },
  { name: 'an upgrade to WebSocket', send: get('/healthz', ['Upgrade: websocket', 'Connection: Upgrade']), expect: [200] },
  { name: 'an Authorization header where none is needed', send: get('/healthz', ['Authorization: Bearer x y z', ...close]), expect: [200] },
  { name: 'DEL characters in a header value', send: get('/healthz', ['Authorization: Bearer \x7f\x7f', ...close]), expect: [400] },
  // pipelines and fragments
  { name: 'three pipelined requests', send: [request('/healthz'), request('/nope'), get('/api/v1/status')].join(''), expect: [200, 404, 200] },
  { name: '100 pipelined requests in one write', send: Array.from({ length: 100 }, () => request('/healthz')).join(''), expect: Array<number>(100).fill(200) },
  { name: 'a request split byte by byte', send: [...Buffer.from(get('/healthz'))].map((b) => Buffer.from([b])), expect: [200], opts: { delayMs: 3 } },
  // methods
  ...['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND'].map((m) => ({ name: `method ${m}`, send: request('/metrics', [...close, 'Content-Length: 0'], m), expect: [405] })),
  { name: 'method CONNECT', send: request('example.com:443', [], 'CONNECT'), expect: [405] },
  { name: 'an unknown method', send: request('/', close, 'FROBNICATE'), expect: [400] },
  // kept alive, so that the server reads the body it does not want: closing with unread data sends a reset that may overtake the 405
  { name: 'POST with a 1 MiB body', send: [request('/metrics', [`Content-Length: ${1 << 20}`], 'POST'), Buffer.alloc(1 << 20, 120)], expect: [405] },
  { name: 'HEAD', send: request('/metrics', close, 'HEAD'), expect: [200], opts: { head: true } },
  // absurd query values
  { name: 'limit=-1', send: get('/api/v1/events?limit=-1'), expect: [400] },
  { name: 'limit=1e309', send: get('/api/v1/events?limit=1e309'), expect: [400] },
  { name: 'limit=NaN', send: get('/api/v1/events?limit=NaN'), expect: [400] },
  { name: 'a limit of 20 digits', send: get('/api/v1/events?limit=99999999999999999999'), expect: [200] },
  { name: 'since=abc', send: get('/api/v1/events?since=abc'), expect: [400] },
  { name: 'type= repeated 1000 times', send: get(`/api/v1/events?${'type=exec&'.repeat(1000)}limit=1`), expect: [200] },
  { name: 'an unknown type repeated 1000 times', send: get(`/api/v1/events?${'type=x&'.repeat(1000)}`), expect: [400] },
  { name: 'a stream with a bad Last-Event-ID', send: get('/api/v1/events/stream', ['Last-Event-ID: \x7fabc', ...close]), expect: [400] },
  { name: 'a stream with since=-1', send: get('/api/v1/events/stream?since=-1'), expect: [400] },
  { name: 'HEAD of the stream', send: request('/api/v1/events/stream', close, 'HEAD'), expect: [200], opts: { head: true } },
  // connections that end badly
  { name: 'a connection closed at once', send: [], expect: [], opts: { end: true } },
  { name: 'half a request, then the client half-closes', send: 'GET /healthz HTTP/1.1\r\nHo', expect: [400], opts: { end: true } },
];

function assertProper(c: Case, r: Exchange): void {
  const got = r.responses.map((x) => x.status);
  assert.equal(r.hung, false, `${c.name}: hung (got ${JSON.stringify(got)} ${JSON.stringify(r.raw.slice(0, 200))})`);
  assert.ok(got.every((s) => s >= 200 && s < 500), `${c.name}: ${got.join(',')}`);
  const expected = [c.expect, ...(c.or ?? [])].find((e) => e.join() === got.join()) ?? c.expect;
  assert.deepEqual(got, expected, `${c.name}: ${JSON.stringify(r.raw.slice(0, 300))}`);
}

function alive(agent: RunningAgent): void {
  assert.equal(agent.child.exitCode, null, `the agent exited: ${agent.log()}`);
  assert.equal(agent.child.signalCode, null, `the agent was killed: ${agent.log()}`);
  process.kill(agent.child.pid!, 0);
}

async function stillServing(agent: RunningAgent): Promise<void> {
  alive(agent);
  assert.equal((await fetch(`${agent.url}/healthz`)).status, 200);
  const metrics = await fetch(`${agent.url}/metrics`);
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /^periscope_build_info\{/m);
}

/** A client that starts a request and adds a header line every second, never finishing. */
function slowClient(port: number): Promise<Exchange> {
  const lines = Array.from({ length: 40 }, (_x, i) => `X-Slow-${i}: ${i}\r\n`);
  return exchange(['GET /healthz HTTP/1.1\r\nHost: a\r\n', ...lines], { port, delayMs: 1_000, timeoutMs: 30_000 });
}

test('a corpus of malformed and hostile requests gets proper statuses, and the agent stays up', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await startAgent();
  t.after(() => agent.stop());
  const port = Number(new URL(agent.url).port);
  const started = Date.now();

  // the slow ones run beside the rest: the server must time them out on its own
  const slow = slowClient(port);
  const http09 = exchange('GET /\r\n', { port, timeoutMs: 30_000 });

  for (const c of CORPUS) {
    const r = await exchange(c.send, { port, timeoutMs: 10_000, ...(c.expect.length ? { responses: c.expect.length } : {}), ...c.opts });
    assertProper(c, r);
    alive(agent);
  }
  for (const c of CORPUS.filter((x) => x.name === 'method OPTIONS' || x.name === 'HEAD')) {
    const r = await exchange(c.send, { port, responses: 1, ...c.opts });
    assert.equal(r.responses[0]?.headers.allow ?? 'GET, HEAD', 'GET, HEAD', `${c.name}: Allow`);
  }
  const corpusMs = Date.now() - started;

  const s = await slow;
  assert.equal(s.closedByServer, true, 'the slow client was disconnected by the server');
  assert.ok(s.ms >= 9_000 && s.ms <= 16_000, `after the 10 s header timeout, not ${s.ms} ms`);
  assert.ok(s.responses.every((x) => x.status === 408), `408 or nothing: ${s.raw.slice(0, 100)}`);
  const h = await http09;
  assert.equal(h.closedByServer, true, 'an HTTP/0.9 request that waits for an answer is timed out');
  assert.ok(h.responses.every((x) => x.status === 408 || x.status === 400), h.raw);

  await stillServing(agent);
  t.diagnostic(`${CORPUS.length} cases in ${corpusMs} ms; the slow client was cut after ${s.ms} ms, the HTTP/0.9 one after ${h.ms} ms; total ${Date.now() - started} ms`);
});

test('many connections from one client: past its share 429, others are still served, and the counts go back', async (t) => {
  if (!needsKernel(t)) return;
  const agent = await startAgent();
  t.after(() => agent.stop());
  const port = Number(new URL(agent.url).port);
  const sockets: Socket[] = [];
  t.after(() => sockets.forEach((s) => s.destroy()));
  for (let i = 0; i < 40; i++) {
    sockets.push(await new Promise<Socket>((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.9' }, () => resolve(s));
      s.once('error', reject);
    }));
  }
  const statuses = await Promise.all(
    sockets.map(
      (s) =>
        new Promise<number>((resolve) => {
          s.once('data', (d: Buffer) => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(d.toString('latin1'))?.[1])));
          s.write(request('/healthz'));
        }),
    ),
  );
  assert.equal(statuses.filter((x) => x === 200).length, 32, 'the share is 32 connections');
  assert.equal(statuses.filter((x) => x === 429).length, 8, `the rest get 429: ${statuses.join(',')}`);
  // another client is served meanwhile
  const other = await exchange(get('/healthz'), { port, localAddress: '127.0.0.10', responses: 1 });
  assert.equal(other.responses[0]?.status, 200);

  // a flood of connections that come and go leaves nothing counted
  await Promise.all(Array.from({ length: 200 }, () => exchange(get('/healthz'), { port, localAddress: '127.0.0.11', responses: 1 })));
  sockets.forEach((s) => s.destroy());
  type Status = { api: { connections: { open: number; clients: number }; refused: { connections: number } } };
  const status = await eventually(async () => {
    const st = (await (await fetch(`${agent.url}/api/v1/status`)).json()) as Status;
    return st.api.connections.open <= 1 ? st : undefined;
  }, 5_000, 'the connection counts to go back');
  assert.ok(status.api.refused.connections >= 8);
  await stillServing(agent);
});

test('plain text on the TLS port gets no answer and no hang, and the agent goes on serving TLS', async (t) => {
  if (!needsKernel(t)) return;
  const certs = await makeCertificates();
  const agent = await startAgent(['--tls-cert', certs.certFile, '--tls-key', certs.keyFile]);
  t.after(() => agent.stop());
  const port = Number(new URL(agent.url).port);
  const silentStarted = exchange([], { port, timeoutMs: 15_000 });
  for (const send of [get('/healthz'), 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', garbage(4096, 2), get('//x:99999999/'), Buffer.from('160301ffff', 'hex')]) {
    const r = await exchange(send, { port, timeoutMs: 12_000 });
    assert.equal(r.hung, false, `closed, not left open: ${JSON.stringify(r.raw.slice(0, 80))}`);
    assert.equal(r.responses.length, 0, 'no HTTP in plain text');
    alive(agent);
  }
  const silent = await silentStarted;
  assert.equal(silent.closedByServer, true, 'a connection that never starts its handshake is closed');
  t.diagnostic(`a silent connection to the TLS port was closed after ${silent.ms} ms`);
  const tls = await exchange(get('/healthz'), { port, tls: { ca: certs.ca }, responses: 1 });
  assert.equal(tls.responses[0]?.status, 200);
  alive(agent);
});
