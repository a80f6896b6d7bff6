/**
 * The hub faces every node of a cluster: no request, however malformed, may crash it or make it hang.
 * A real hub process gets hostile ingest bodies and query strings over raw TCP; every answer must be a
 * 4xx (or the 200 of a harmless query), never a 500, and afterwards it must still apply a good batch.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { exchange, request } from '../raw-http.js';
import { BIN, freePort } from '../agent-process.js';
import { eventually } from '../kernel.js';

const close = ['Connection: close'];
const post = (target: string, body: Buffer | string, headers: string[] = ['Content-Type: application/json', 'Content-Encoding: gzip']): Buffer[] => {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  return [Buffer.from(request(target, [...headers, `Content-Length: ${b.length}`, ...close], 'POST')), b];
};
const gz = (s: string | Buffer): Buffer => gzipSync(s);

const GOOD = {
  version: 1,
  agent: { node: 'hostile-node', instance: 'instance-hostile-1', version: '0.1.0', started: '2026-11-28T10:00:00Z', cgroup_subtree: '/' },
  seq: 1,
  time: new Date().toISOString(),
  status: { collectors: [], capabilities: {}, kernel: 'x' },
  families: [{ name: 'periscope_cpu_seconds_total', type: 'counter', help: 'x', labels: ['cgroup'], series: [{ labels: ['/a'], value: 1, delta: 1 }] }],
  events: [],
  dropped: { batches: 0, events: 0, samples: 0 },
};

/** A cpu profile of one cgroup as an agent ships it (src/wire/profiles.ts), its window just ended. */
const PROFILE = {
  type: 'cpu',
  from: new Date(Date.now() - 10_000).toISOString(),
  to: new Date().toISOString(),
  period: 1e9 / 99,
  labels: { cgroup: '/a', namespace: '', pod: '', container: '', workload_kind: '', workload: '' },
  // SQL in a name (no ';': the separator of folded stacks is refused in a name)
  frames: ['app', "x') OR '1'='1' -- DROP TABLE profile_stacks", 'leaf\\'],
  stacks: [{ f: [0, 1, 2], v: 3 }],
};
const manyStacks = { ...PROFILE, stacks: Array.from({ length: 100_000 }, () => ({ f: [0], v: 1 })) };

interface Case {
  name: string;
  send: (string | Buffer)[] | string | Buffer;
  expect: number;
}

const CORPUS: Case[] = [
  { name: 'a body that declares 10 GiB', send: request('/api/v1/ingest', ['Content-Type: application/json', `Content-Length: ${10 * 2 ** 30}`, ...close], 'POST'), expect: 413 },
  { name: 'a chunked body past 8 MiB', send: [request('/api/v1/ingest', ['Content-Type: application/json', 'Transfer-Encoding: chunked', ...close], 'POST'), ...Array.from({ length: 9 }, () => `100000\r\n${'x'.repeat(1 << 20)}\r\n`), '0\r\n\r\n'], expect: 413 },
  { name: 'a gzip bomb (100 MiB of zeros)', send: post('/api/v1/ingest', gz(Buffer.alloc(100 << 20))), expect: 413 },
  { name: 'gzip of garbage', send: post('/api/v1/ingest', Buffer.from('1f8b0800000000000003ffffffff', 'hex')), expect: 400 },
  { name: 'JSON nested 100,000 deep', send: post('/api/v1/ingest', gz(`${'['.repeat(100_000)}${']'.repeat(100_000)}`)), expect: 400 },
  { name: 'a batch with __proto__ keys', send: post('/api/v1/ingest', gz(JSON.stringify(GOOD).replace('"version":1', '"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}},"version":1'))), expect: 200 },
  { name: 'a batch with a 1 MiB label value', send: post('/api/v1/ingest', gz(JSON.stringify({ ...GOOD, seq: 2, families: [{ ...GOOD.families[0], series: [{ labels: ['x'.repeat(1 << 20)], value: 1, delta: 1 }] }] }))), expect: 400 },
  { name: 'a batch with NaN written as a string', send: post('/api/v1/ingest', gz(JSON.stringify({ ...GOOD, seq: 3, families: [{ ...GOOD.families[0], series: [{ labels: ['/a'], value: 'NaN', delta: 1 }] }] }))), expect: 400 },
  { name: 'a batch whose seq is 2^63', send: post('/api/v1/ingest', gz(JSON.stringify(GOOD).replace('"seq":1', '"seq":9223372036854775808'))), expect: 400 },
  { name: 'a batch from the year 275760', send: post('/api/v1/ingest', gz(JSON.stringify({ ...GOOD, seq: 4, time: '+275760-09-13T00:00:00Z' }))), expect: 400 },
  { name: 'an instance id with SQL in it', send: post('/api/v1/ingest', gz(JSON.stringify({ ...GOOD, agent: { ...GOOD.agent, instance: "x'); DROP TABLE samples; --" } }))), expect: 400 },
  { name: 'a node name with SQL in it', send: post('/api/v1/ingest', gz(JSON.stringify({ ...GOOD, seq: 5, agent: { ...GOOD.agent, node: "n'); DROP TABLE samples; --" } }))), expect: 200 },
  { name: 'plain JSON without a content type', send: post('/api/v1/ingest', JSON.stringify(GOOD), []), expect: 415 },
  { name: 'ingest with GET', send: request('/api/v1/ingest', close), expect: 405 },
  { name: 'workloads from a NUL', send: request('/api/v1/workloads?from=%00', close), expect: 400 },
  { name: 'workloads for a 10 KiB namespace', send: request(`/api/v1/workloads?namespace=${'n'.repeat(10 << 10)}`, close), expect: 200 },
  { name: 'workloads with 1000 namespaces', send: request(`/api/v1/workloads?${'namespace=a&'.repeat(1000)}`, close), expect: 400 },
  { name: 'series with step=0', send: request('/api/v1/series?metric=periscope_cpu_seconds_total&step=0', close), expect: 400 },
  { name: 'series with step=1e309', send: request('/api/v1/series?metric=periscope_cpu_seconds_total&step=1e309', close), expect: 400 },
  { name: 'series by every column twice', send: request(`/api/v1/series?metric=periscope_cpu_seconds_total&by=${'node,cgroup,'.repeat(50)}`, close), expect: 200 },
  { name: 'series of a metric with SQL in its name', send: request("/api/v1/series?metric=x'%3B%20DROP%20TABLE%20series", close), expect: 400 },
  { name: 'events with limit=1e309', send: request('/api/v1/events?limit=1e309', close), expect: 400 },
  { name: 'events of a cgroup with a LIKE pattern', send: request('/api/v1/events?cgroup=/%25%25_', close), expect: 200 },
  { name: 'the map from 99999999999 days ago', send: request('/api/v1/network/map?from=-99999999999d', close), expect: 400 },
  { name: 'a stream with a bad Last-Event-ID', send: request('/api/v1/events/stream', ['Last-Event-ID: x', ...close]), expect: 400 },
  { name: 'requests with an unknown parameter', send: request('/api/v1/requests?namespace=a&workload=b&drop=table', close), expect: 400 },
  { name: 'requests without a workload', send: request('/api/v1/requests?namespace=a', close), expect: 400 },
  { name: 'requests of protocol ftp', send: request('/api/v1/requests?namespace=a&workload=b&protocol=ftp', close), expect: 400 },
  { name: 'requests since 99999999999 days', send: request('/api/v1/requests?namespace=a&workload=b&since=99999999999d', close), expect: 400 },
  { name: 'requests since 999999999 weeks', send: request('/api/v1/requests?namespace=a&workload=b&since=999999999w', close), expect: 400 },
  { name: 'requests of a 10 KiB workload', send: request(`/api/v1/requests?namespace=a&workload=${'w'.repeat(10 << 10)}`, close), expect: 400 },
  { name: 'requests with limit=1e309', send: request('/api/v1/requests?namespace=a&workload=b&limit=1e309', close), expect: 400 },
  { name: 'requests of a namespace with SQL in it', send: request("/api/v1/requests?namespace=x'%3B%20DROP%20TABLE%20series%3B%20--&workload=b", close), expect: 200 },
  { name: 'series of a route with SQL in it', send: request("/api/v1/series?metric=periscope_http_requests_total&route=x'%20OR%20'1'='1&status_class=%00", close), expect: 200 },
  { name: 'series of a 4 KiB route', send: request(`/api/v1/series?metric=periscope_http_requests_total&route=${'r'.repeat(4 << 10)}`, close), expect: 400 },
  { name: 'series by an l7 label and SQL', send: request('/api/v1/series?metric=periscope_http_requests_total&by=route,1);DROP%20TABLE%20series', close), expect: 400 },
  { name: 'the map between two equal far pasts', send: request('/api/v1/network/map?from=-999999999w&to=-999999999w', close), expect: 400 },
  { name: 'a profile whose frame index is past its table', send: post('/api/v1/ingest', gz(JSON.stringify({ ...GOOD, seq: 6, profiles: [{ ...PROFILE, stacks: [{ f: [3], v: 1 }] }] }))), expect: 400 },
  { name: 'a batch of 200,001 profile stacks', send: post('/api/v1/ingest', gz(JSON.stringify({ ...GOOD, seq: 6, profiles: [manyStacks, manyStacks, { ...PROFILE, stacks: [{ f: [0], v: 1 }] }] }))), expect: 400 },
  { name: 'a profile with SQL in a frame name', send: post('/api/v1/ingest', gz(JSON.stringify({ ...GOOD, seq: 6, profiles: [PROFILE] }))), expect: 200 },
  { name: 'profiles of type bogus', send: request('/api/v1/profiles?type=bogus', close), expect: 400 },
  { name: 'profiles with limit=1e309', send: request('/api/v1/profiles?limit=1e309', close), expect: 400 },
  { name: 'profiles of a cgroup with a LIKE pattern, as pprof', send: request('/api/v1/profiles?cgroup=/%25%25_&format=pprof', close), expect: 200 },
  { name: 'profiles of a workload with SQL in it', send: request("/api/v1/profiles?workload=x'%3B%20DROP%20TABLE%20profile_stacks%3B--&format=folded", close), expect: 200 },
  { name: 'an unknown path', send: request('/api/v2/everything', close), expect: 404 },
];

test('a corpus of hostile ingest bodies and queries gets 4xx answers, and the hub keeps applying batches', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'periscope-hub-hostile-'));
  const port = await freePort();
  const child = spawn(BIN, ['hub', '--listen', `127.0.0.1:${port}`, '--store', `duckdb:${join(dir, 'hub.duckdb')}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  t.after(() => {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });
  await eventually(() => (/ingest: /.test(log) ? true : undefined), 30_000, 'the hub to listen');
  for (const c of CORPUS) {
    const r = await exchange(c.send, { port, timeoutMs: 20_000, responses: 1 });
    assert.equal(r.hung, false, `${c.name}: hung`);
    assert.equal(r.responses[0]?.status, c.expect, `${c.name}: ${r.raw.slice(0, 300).toString()}`);
    assert.equal(child.exitCode, null, `${c.name}: the hub exited: ${log}`);
  }
  const health = (await (await fetch(`http://127.0.0.1:${port}/api/v1/health`)).json()) as { status: string; batches_applied: number };
  assert.equal(health.status, 'ok');
  assert.equal(health.batches_applied, 3, 'the three good batches, nothing else');
  const good = await fetch(`http://127.0.0.1:${port}/api/v1/ingest`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...GOOD, seq: 9 }) });
  assert.deepEqual(await good.json(), { applied: true, seq: 9 });
  const series = (await (await fetch(`http://127.0.0.1:${port}/api/v1/workloads?group=container&from=-1h`)).json()) as { workloads: unknown[] };
  assert.ok(series.workloads.length >= 1, 'the tables are all still there');
  const folded = await (await fetch(`http://127.0.0.1:${port}/api/v1/profiles?format=folded&node=hostile-node`)).text();
  assert.equal(folded, `${PROFILE.frames.join(';')} 3\n`, 'a frame name with SQL in it is a value, stored and served as sent');
});
