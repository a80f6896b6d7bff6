/**
 * The HTTP API in process, over real sockets: an agent that is built but not started (no BPF), its
 * event log fed by the test, so that paging, filters, caps and backlogs are exact.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import { type AddressInfo } from 'node:net';
import { type Server } from 'node:http';
import { Agent } from './agent.js';
import { Api, type ApiOptions } from './api.js';
import { type ExecEvent } from '../collectors/process/index.js';
import { exchange, request } from '../../test/raw-http.js';
import { makeCertificates, type TestCertificates } from '../../test/tls.js';
import { eventually, sleep } from '../../test/kernel.js';

const TOKEN = 'a-token-long-enough-for-the-agent';

interface Served {
  agent: Agent;
  api: Api;
  server: Server;
  port: number;
  url: string;
}

async function serve(t: TestContext, opts: ApiOptions = {}): Promise<Served> {
  const agent = new Agent({ collectors: ['process'], node: 'test-node', log: () => undefined });
  const api = new Api(agent, opts);
  const server = await api.listen('127.0.0.1', 0, opts.tls);
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  return { agent, api, server, port, url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}` };
}

function exec(pid: number, args: string[] = ['/bin/true'], type: 'exec' | 'exit' = 'exec'): Omit<ExecEvent, 'seq'> {
  return {
    type: type as 'exec',
    time: new Date(0).toISOString(),
    node: 'test-node',
    cgroup: '/test',
    cgroup_id: 7,
    namespace: '',
    pod: '',
    container: '',
    workload_kind: '',
    workload: '',
    pid,
    ns_pid: pid,
    ppid: 1,
    uid: 0,
    comm: 'true',
    filename: '/bin/true',
    args,
    args_truncated: false,
  };
}

async function getJson(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: Record<string, unknown> }> {
  const res = await fetch(url, init);
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

const seqs = (body: Record<string, unknown>): number[] => (body.events as { seq: number }[]).map((e) => e.seq);

test('limit returns the newest events, since pages forward oldest first, and repeated type parameters combine', async (t) => {
  const { agent, url } = await serve(t);
  for (let pid = 1; pid <= 30; pid++) agent.events.push(exec(pid, ['/bin/true'], pid % 3 === 0 ? 'exit' : 'exec'));

  assert.deepEqual(seqs((await getJson(`${url}/api/v1/events?limit=3`)).body), [28, 29, 30], 'the newest three, oldest first');
  assert.deepEqual(seqs((await getJson(`${url}/api/v1/events?limit=3&since=10`)).body), [11, 12, 13], 'with since: the three after seq 10');
  assert.deepEqual(seqs((await getJson(`${url}/api/v1/events?limit=2&type=exit`)).body), [27, 30]);
  assert.equal(seqs((await getJson(`${url}/api/v1/events`)).body).length, 30, 'without limit: up to 1000');
  assert.deepEqual(seqs((await getJson(`${url}/api/v1/events?limit=0`)).body), []);

  const both = (await getJson(`${url}/api/v1/events?type=exec&type=exit`)).body;
  assert.equal(seqs(both).length, 30, 'type=exec&type=exit is both types, not the last one');
  const comma = (await getJson(`${url}/api/v1/events?type=exit,exec`)).body;
  assert.equal(seqs(comma).length, 30);
  const many = (await getJson(`${url}/api/v1/events?${'type=exit&'.repeat(1000)}limit=5`)).body;
  assert.deepEqual(seqs(many), [18, 21, 24, 27, 30], 'a type repeated 1000 times is still one type');

  for (const q of ['limit=-1', 'limit=1e309', 'limit=abc', 'limit=', 'limit=1.5', 'since=abc', 'since=-3', 'type=nonsense', 'type=exec&type=nonsense']) {
    const r = await getJson(`${url}/api/v1/events?${q}`);
    assert.equal(r.status, 400, q);
    assert.equal(typeof r.body.error, 'string', q);
    assert.equal(typeof r.body.hint, 'string', q);
  }
  const huge = await getJson(`${url}/api/v1/events?limit=99999999999`);
  assert.equal(huge.status, 200, 'a limit past the maximum is clamped');
});

test('HEAD works, unknown paths get 404 JSON and other methods 405 with Allow', async (t) => {
  const { port, url } = await serve(t);
  for (const path of ['/healthz', '/metrics', '/api/v1/events', '/api/v1/status', '/api/v1/events/stream']) {
    const r = await exchange(request(path, ['Connection: close'], 'HEAD'), { port, head: true, responses: 1 });
    assert.equal(r.responses[0]?.status, 200, `HEAD ${path}`);
    assert.equal(r.responses[0]?.body, '', `HEAD ${path} has no body`);
    assert.equal(r.hung, false, `HEAD ${path} ends`);
  }
  const missing = await getJson(`${url}/nope`);
  assert.equal(missing.status, 404);
  assert.match(missing.headers.get('content-type') ?? '', /^application\/json/);
  assert.match(missing.body.error as string, /no such path \/nope/);
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT']) {
    const target = method === 'CONNECT' ? 'example.com:443' : '/metrics';
    const r = await exchange(request(target, ['Content-Length: 0'], method), { port, responses: 1 });
    assert.equal(r.responses[0]?.status, 405, `${method}: ${r.raw}`);
    assert.equal(r.responses[0]?.headers.allow, 'GET, HEAD', method);
  }
});

test('a request target the URL parser rejects gets 400, and the server goes on', async (t) => {
  const { port, url } = await serve(t);
  for (const target of ['//x:99999999/', 'http://x:99999999/metrics', '//[::1/', 'http://%zz/']) {
    const r = await exchange(request(target, ['Connection: close']), { port, responses: 1 });
    assert.equal(r.responses[0]?.status, 400, `${target}: ${r.raw}`);
  }
  assert.equal((await fetch(`${url}/healthz`)).status, 200);
});

test('the stream rejects a bad since or Last-Event-ID with 400, like the JSON endpoint', async (t) => {
  const { url } = await serve(t);
  for (const [query, headers] of [['?since=abc', {}], ['?since=-1', {}], ['', { 'last-event-id': 'x' }], ['', { 'last-event-id': '-5' }], ['?type=bogus', {}]] as const) {
    const r = await getJson(`${url}/api/v1/events/stream${query}`, { headers });
    assert.equal(r.status, 400, `${query} ${JSON.stringify(headers)}`);
    assert.equal(typeof r.body.error, 'string');
  }
});

test('the stream resumes after Last-Event-ID and sends new events live', async (t) => {
  const { agent, url } = await serve(t);
  for (let pid = 1; pid <= 5; pid++) agent.events.push(exec(pid));
  const ac = new AbortController();
  t.after(() => ac.abort());
  const res = await fetch(`${url}/api/v1/events/stream`, { headers: { 'last-event-id': '3' }, signal: ac.signal });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  assert.equal(res.headers.get('transfer-encoding'), null, 'unframed: the stream ends with its connection');
  const reader = res.body!.getReader();
  let text = '';
  agent.events.push(exec(6));
  const ids = await eventually(async () => {
    const { value } = (await reader.read()) as { value?: Uint8Array };
    text += new TextDecoder().decode(value);
    const got = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    return got.length >= 3 ? got : undefined;
  }, 5_000, 'three events');
  assert.deepEqual(ids, [4, 5, 6]);
});

/** Opens the stream on a raw socket that never reads; resolves with the status line's code. */
function idleSubscriber(port: number, localAddress?: string): Promise<{ socket: Socket; status: number; headers: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ...(localAddress ? { localAddress } : {}) }, () => socket.write(request('/api/v1/events/stream')));
    socket.once('error', reject);
    socket.once('data', (d: Buffer) => {
      socket.pause(); // and never read again
      const head = d.toString('latin1');
      resolve({ socket, status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]), headers: head });
    });
  });
}

test('live streams are capped: past the cap 503 with Retry-After, and a closed one frees its place', async (t) => {
  const { url, port, api } = await serve(t, { maxStreamClients: 3 });
  const subs = await Promise.all([1, 2, 3].map(() => idleSubscriber(port)));
  t.after(() => subs.forEach((s) => s.socket.destroy()));
  assert.deepEqual(subs.map((s) => s.status), [200, 200, 200]);
  const refused = await fetch(`${url}/api/v1/events/stream`);
  assert.equal(refused.status, 503);
  assert.equal(refused.headers.get('retry-after'), '10');
  assert.match(((await refused.json()) as { error: string }).error, /3 live streams are open/);
  assert.equal(api.refused.streams, 1);
  subs[0]!.socket.destroy();
  const again = await eventually(async () => {
    const s = await idleSubscriber(port);
    if (s.status === 200) return s;
    s.socket.destroy();
    return undefined;
  }, 3_000, 'a place to free');
  again.socket.destroy();
});

test('a subscriber that does not read holds a bounded backlog: its events are dropped and counted, then it is disconnected', async (t) => {
  const { agent, port, api } = await serve(t, { streamBufferBytes: 64 << 10, streamStallMs: 1_000 });
  const sub = await idleSubscriber(port);
  t.after(() => sub.socket.destroy());
  assert.equal(sub.status, 200);
  // the paused client would not notice the close: ask the server
  const closed = (): boolean => api.status().streams === 0;
  const big = 'x'.repeat(8 << 10);
  const started = Date.now();
  let pushed = 0;
  // enough to fill the kernel's socket buffers and the backlog many times over
  while (!closed() && Date.now() - started < 20_000) {
    for (let i = 0; i < 50; i++) agent.events.push(exec(++pushed, ['/bin/echo', big]));
    await sleep(20);
  }
  assert.ok(closed(), 'the stalled subscriber was disconnected');
  assert.ok(agent.events.subscriberDrops > 0, 'its events were dropped');
  assert.ok(agent.events.subscriberDrops < pushed, 'some were sent first');
  const text = agent.scrape();
  assert.match(text, new RegExp(`^periscope_events_lost_total\\{source="api_stream"\\} ${agent.events.subscriberDrops}$`, 'm'));
  assert.equal(agent.events.subscriberCount, 0, 'unsubscribed');
  t.diagnostic(`${pushed} events of 8 KiB pushed, ${agent.events.subscriberDrops} dropped, disconnected after ${Date.now() - started} ms`);
});

test('a bearer token guards every route but /healthz, and --metrics-open leaves /metrics to Prometheus', async (t) => {
  const closed = await serve(t, { token: TOKEN });
  for (const path of ['/metrics', '/api/v1/events', '/api/v1/status', '/api/v1/pods', '/api/v1/events/stream', '/nope']) {
    for (const auth of [undefined, 'Bearer wrong-token', `Basic ${TOKEN}`, 'Bearer', `Bearer ${TOKEN}x`]) {
      const res = await fetch(`${closed.url}${path}`, { headers: auth ? { authorization: auth } : {} });
      assert.equal(res.status, 401, `${path} with ${auth}`);
      assert.equal(res.headers.get('www-authenticate')?.startsWith('Bearer realm="periscope"'), true, `${path} with ${auth}`);
      await res.body?.cancel();
    }
  }
  const ok = await fetch(`${closed.url}/api/v1/status`, { headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(ok.status, 200);
  const status = (await ok.json()) as { api: { refused: { unauthenticated: number } } };
  assert.equal(status.api.refused.unauthenticated, 30);
  assert.equal((await fetch(`${closed.url}/metrics`, { headers: { authorization: `bearer ${TOKEN}` } })).status, 200, 'the scheme is case-insensitive');
  assert.equal((await fetch(`${closed.url}/healthz`)).status, 200);

  const open = await serve(t, { token: TOKEN, metricsOpen: true });
  assert.equal((await fetch(`${open.url}/metrics`)).status, 200);
  assert.equal((await fetch(`${open.url}/api/v1/events`)).status, 401, 'only /metrics is open');
});

function httpsGet(url: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

let certs: Promise<TestCertificates> | undefined;
const testCertificates = (): Promise<TestCertificates> => (certs ??= makeCertificates());

test('over TLS it answers a client that trusts its CA and refuses plain HTTP', async (t) => {
  const c = await testCertificates();
  const { url, port } = await serve(t, { tls: { cert: c.cert, key: c.key }, token: TOKEN });
  const r = await httpsGet(`${url}/api/v1/status`, c.ca, { authorization: `Bearer ${TOKEN}` });
  assert.equal(r.status, 200);
  assert.equal((JSON.parse(r.body) as { node: string }).node, 'test-node');
  assert.equal((await httpsGet(`${url}/healthz`, c.ca)).status, 200);
  await assert.rejects(httpsGet(`${url}/healthz`, (await makeCertificates()).ca), /self-signed|unable to verify|certificate/i, 'another CA is not trusted');
  const plain = await exchange(request('/healthz', ['Connection: close']), { port, timeoutMs: 5_000 });
  assert.equal(plain.hung, false, 'plain HTTP on the TLS port is closed, not left hanging');
  assert.equal(plain.responses.length, 0, `no HTTP answer in plain text: ${plain.raw}`);
  await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
  assert.equal((await httpsGet(`${url}/healthz`, c.ca)).status, 200, 'still serving');
});

interface ConnectionCounts {
  open: number;
  clients: number;
}

const counts = (api: Api): ConnectionCounts => (api.status() as { connections: ConnectionCounts }).connections;

test('connections past a client\'s share are answered 429 and never reach a route; the counts go back to zero', async (t) => {
  const { port, api, agent } = await serve(t, { maxConnectionsPerClient: 3 });
  let scrapes = 0;
  const scrape = agent.scrape.bind(agent);
  agent.scrape = () => (scrapes++, scrape());
  // three connections held open from one address, a fourth and fifth from it are over its share
  const held = await Promise.all([1, 2, 3].map(() => idleSubscriber(port, '127.0.0.3')));
  t.after(() => held.forEach((h) => h.socket.destroy()));
  for (let i = 0; i < 2; i++) {
    const over = await exchange(request('/metrics'), { port, localAddress: '127.0.0.3', timeoutMs: 3_000 });
    assert.deepEqual(over.responses.map((r) => r.status), [429], `one 429 and nothing else: ${over.raw}`);
    assert.equal(over.hung, false, 'and the connection is closed');
  }
  assert.equal(scrapes, 0, 'a refused connection costs no scrape');
  assert.equal(api.refused.connections, 2);
  // another address has its own share
  const other = await exchange(request('/healthz', ['Connection: close']), { port, localAddress: '127.0.0.4', responses: 1 });
  assert.equal(other.responses[0]?.status, 200);
  // a connection that says nothing over the share is closed soon
  const silent = await exchange([], { port, localAddress: '127.0.0.3', timeoutMs: 5_000 });
  assert.equal(silent.closedByServer, true, 'a silent connection over the share is closed by the server');

  assert.deepEqual(counts(api), { open: 3, clients: 1 });
  held.forEach((h) => h.socket.destroy());
  await eventually(() => (counts(api).open === 0 && counts(api).clients === 0 ? true : undefined), 3_000, 'the counts to return to zero');
});

test('over TLS the share counts connections still in their handshake, and the 429 is sent over TLS', async (t) => {
  const c = await testCertificates();
  const { port, api } = await serve(t, { tls: { cert: c.cert, key: c.key }, maxConnectionsPerClient: 2 });
  // two TCP connections that never start TLS take the client's share
  const idle = await Promise.all(
    [1, 2].map(
      () =>
        new Promise<Socket>((resolve) => {
          const s = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.5' }, () => resolve(s));
        }),
    ),
  );
  t.after(() => idle.forEach((s) => s.destroy()));
  await eventually(() => (counts(api).open === 2 ? true : undefined), 3_000, 'two connections counted');
  const over = await exchange(request('/healthz'), { port, localAddress: '127.0.0.5', tls: { ca: c.ca }, timeoutMs: 5_000 });
  assert.deepEqual(over.responses.map((r) => r.status), [429], over.error ?? over.raw);
  const fine = await exchange(request('/healthz', ['Connection: close']), { port, localAddress: '127.0.0.6', tls: { ca: c.ca }, responses: 1 });
  assert.equal(fine.responses[0]?.status, 200);
  idle.forEach((s) => s.destroy());
  await eventually(() => (counts(api).open === 0 ? true : undefined), 3_000, 'the counts to return to zero');
});
