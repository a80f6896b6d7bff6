/**
 * The L7 protocol parsers held to real servers from Debian, without the kernel: real clients talk to
 * nginx, PostgreSQL, Redis and a gRPC server through a recording proxy (l7-proxy.ts) that hands every
 * read of either side to L7Trackers as the kernel would capture it from the client's side — once
 * whole and once cut to each capture limit. Every count is held to what the server itself counted
 * (nginx's access log, PostgreSQL's statement log, Redis's INFO commandstats, the gRPC client's status
 * codes), exactly; latency percentiles to within 10% of the server's own durations.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import http2 from 'node:http2';
import { type GrpcRecord, type HttpRecord, L7Tracker, type L7Record, type PostgresRecord, type RedisRecord, normalizeSql, templatePath } from '../src/collectors/l7/protocols/index.js';
import { rng, shuffle } from '../src/collectors/l7/protocols/test-util.js';
import { startProxy, truncate, type ProxyOptions } from './l7-proxy.js';
import { run, TestCgroup } from './kernel.js';
import { grpcCalls, httpRequests, inCgroup, inNetns, startGrpc, startNginx, startPostgres, startRedis, whyServersCannotRun, type Target } from './servers.js';

/** Capture limits the counts must stay exact under (the kernel side's default is 1024 bytes; 4096 on HTTP/2 connections). */
const CAPTURE_LIMITS = [Infinity, 16384, 4096, 1024, 512];

interface View {
  limit: number;
  tracker: L7Tracker;
  records: L7Record[];
  /** the largest read of each direction seen */
  largest: Record<'egress' | 'ingress', number>;
}

const largest = (v: View, dir: 'egress' | 'ingress'): number => v.largest[dir];

/** A proxy in front of `upstream` feeding one tracker per capture limit; `done()` waits for every connection to close. */
async function observe(t: TestContext, upstream: Target, opts: { tls?: ProxyOptions['tls']; limits?: number[] } = {}): Promise<{ proxy: Target; views: View[]; done: () => Promise<View[]> }> {
  const views: View[] = (opts.limits ?? CAPTURE_LIMITS).map((limit) => {
    const records: L7Record[] = [];
    return { limit, records, tracker: new L7Tracker({ onRecord: (r) => records.push(r) }), largest: { egress: 0, ingress: 0 } };
  });
  const proxy = await startProxy(upstream, {
    ...(opts.tls ? { tls: opts.tls } : {}),
    onChunk: (c) => {
      for (const v of views) {
        v.largest[c.dir] = Math.max(v.largest[c.dir], c.size);
        v.tracker.push(truncate(c, v.limit));
      }
    },
    onClose: (conn, time) => {
      for (const v of views) v.tracker.close(conn, time);
    },
  });
  t.after(() => proxy.close());
  return {
    proxy,
    views,
    done: async () => {
      await proxy.idle();
      return views;
    },
  };
}

/** Counts of `key` over `items`, as a sorted object (stable for deepEqual and readable in a diff). */
function countBy<T>(items: readonly T[], key: (x: T) => string | undefined): Record<string, number> {
  const m = new Map<string, number>();
  for (const x of items) {
    const k = key(x);
    if (k !== undefined) m.set(k, (m.get(k) ?? 0) + 1);
  }
  return Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Each group's items in order, as one string per group; the groups sorted (who numbered them does not matter). */
function sequences<T>(items: readonly T[], group: (x: T) => string, item: (x: T) => string): string[] {
  const m = new Map<string, string[]>();
  for (const x of items) m.set(group(x), [...(m.get(group(x)) ?? []), item(x)]);
  return [...m.values()].map((l) => l.join(' | ')).sort();
}

/** The p-th percentile (nearest rank) of `xs`. */
function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

const latencyMs = (r: L7Record): number => Number(r.end - r.start) / 1e6;
const limitName = (v: View): string => (v.limit === Infinity ? 'whole' : `${v.limit} bytes`);

function within(actual: number, expected: number, share: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= share * expected, `${what}: ${actual.toFixed(2)} ms, the server's ${expected.toFixed(2)} ms (±${share * 100}%)`);
}

function gate(t: TestContext): boolean {
  const why = whyServersCannotRun();
  if (!why) return true;
  if (process.env.CI === 'true') assert.fail(`the real servers cannot run: ${why}`);
  t.skip(why);
  return false;
}

// --- HTTP/1.1: nginx ---------------------------------------------------------------------------

/** 300 requests: 200 GET /users/<id> (200), 60 POST /status/404 with bodies, 40 GET /status/500, 20-150 ms each, shuffled. */
function httpPlan(seed: number, scale = 1): [string, string, number][] {
  const random = rng(seed);
  const delay = (): string => (0.02 + Math.round(random() * 130) / 1000).toFixed(3);
  const plan: [string, string, number][] = [];
  for (let i = 0; i < 200 * scale; i++) plan.push(['GET', `/users/${1 + Math.floor(random() * 1e6)}?delay=${delay()}&size=${Math.floor(random() * 3000)}`, 0]);
  for (let i = 0; i < 60 * scale; i++) plan.push(['POST', `/status/404?delay=${delay()}`, Math.floor(random() * 2000)]);
  for (let i = 0; i < 40 * scale; i++) plan.push(['GET', `/status/500?delay=${delay()}`, 0]);
  shuffle(plan, random);
  return plan;
}

async function httpScenario(t: TestContext, tls: boolean): Promise<void> {
  const nginx = await startNginx(t, { tls });
  const certs = nginx.certificates;
  const { proxy, done } = await observe(t, nginx, certs ? { tls: { cert: readFileSync(certs.certFile, 'utf8'), key: readFileSync(certs.keyFile, 'utf8'), ca: certs.ca } } : {});
  const plan = httpPlan(tls ? 2 : 1, tls ? 0.5 : 1);
  // four keep-alive connections, each replaced after 40 requests: new connections on reused descriptors
  const client = await httpRequests(proxy, plan, { conns: 4, perConn: 40, ...(certs ? { tls: { caFile: certs.caFile } } : {}) });
  const views = await done();
  assert.equal(client.responses.length, plan.length);
  const log = nginx.accessLog();
  assert.equal(log.length, plan.length, 'nginx logged every request');
  const served = countBy(log, (e) => `${e.method} ${templatePath(e.path)} ${e.status}`);
  assert.deepEqual(served, countBy(plan, ([m, target]) => `${m} ${templatePath(target.split('?')[0]!)} ${target.startsWith('/users/') ? 200 : target.slice(8, 11)}`));
  const serverMs = log.map((e) => e.seconds * 1000);
  const nginxSequences = sequences(
    [...log].sort((a, b) => a.connectionRequests - b.connectionRequests),
    (e) => String(e.connection),
    (e) => `${e.method} ${e.path} ${e.status}`,
  );
  for (const v of views) {
    const http = v.records.filter((r): r is HttpRecord => r.protocol === 'http1');
    assert.equal(http.length, v.records.length, `${limitName(v)}: only HTTP/1 records`);
    assert.deepEqual(countBy(http, (r) => `${r.method} ${r.route} ${r.status}`), served, `${limitName(v)}: counts per method, route and status`);
    // each connection's requests in order, as nginx numbered them on its connection: nothing moved between connections
    assert.deepEqual(sequences(http, (r) => String(r.conn), (r) => `${r.method} ${r.path} ${r.status}`), nginxSequences, `${limitName(v)}: per-connection sequences`);
    const ms = http.map(latencyMs);
    const partial = http.filter((r) => r.requestPartial || r.responsePartial).length;
    t.diagnostic(
      `${tls ? 'TLS ' : ''}${limitName(v)}: ${http.length} records (${partial} partial, ${v.tracker.stats.desyncs} desyncs), p50 ${percentile(ms, 50).toFixed(2)} ms / nginx ${percentile(serverMs, 50).toFixed(2)} ms, p90 ${percentile(ms, 90).toFixed(2)} / ${percentile(serverMs, 90).toFixed(2)} ms`,
    );
    for (const p of [50, 90]) within(percentile(ms, p), percentile(serverMs, p), 0.1, `${limitName(v)}: p${p}`);
    assert.equal(v.tracker.stats.desyncs, 0, `${limitName(v)}: no desync`);
    assert.equal(partial, 0, `${limitName(v)}: nothing partial`);
  }
  t.diagnostic(`${client.connections} client connections, nginx served ${new Set(log.map((e) => e.connection)).size}; ${JSON.stringify(served)}`);
}

test('nginx over keep-alive: exact counts per method, route and status, latency percentiles within 10% of $request_time', async (t) => {
  if (!gate(t)) return;
  await httpScenario(t, false);
});

test('nginx through TLS (a client on OpenSSL 3, the plaintext as SSL_read/SSL_write see it): the same exact counts', async (t) => {
  if (!gate(t)) return;
  await httpScenario(t, true);
});

// --- Redis -------------------------------------------------------------------------------------

test('redis-benchmark -P 16: every SET and GET counted as INFO commandstats counts them; a WRONGTYPE error counted', async (t) => {
  if (!gate(t)) return;
  const redis = await startRedis(t);
  const { proxy, done } = await observe(t, redis);
  const before = await redis.commandstats();
  await redis.benchmark(['-P', '16', '-n', '10000', '-c', '8', '-t', 'set,get', '-q'], { port: proxy.port });
  // one connection of redis-cli's: a list where a string is, then DEBUG SLEEP for known latencies
  await redis.cli(['SET', 'greeting', 'hello'], { port: proxy.port });
  const wrong = await redis.cli(['LPUSH', 'greeting', 'x'], { port: proxy.port });
  assert.match(wrong, /WRONGTYPE/);
  const random = rng(3);
  const sleeps = Array.from({ length: 30 }, () => `DEBUG SLEEP ${(0.02 + Math.round(random() * 100) / 1000).toFixed(3)}`);
  await redis.cli([], { port: proxy.port, input: sleeps.join('\n') + '\n' });
  const views = await done();
  const after = await redis.commandstats();
  const served: Record<string, number> = {};
  for (const [cmd, s] of Object.entries(after)) {
    // calls include the failed ones (executed, then an error); rejected ones were never executed
    const n = s.calls + s.rejectedCalls - ((before[cmd]?.calls ?? 0) + (before[cmd]?.rejectedCalls ?? 0));
    if (n > 0 && cmd !== 'info') served[cmd.toUpperCase().replace('|', ' ')] = n;
  }
  assert.ok((served.SET ?? 0) >= 10000 && (served.GET ?? 0) >= 10000, `the benchmark ran: ${JSON.stringify(served)}`);
  const total = Object.values(served).reduce((a, b) => a + b, 0);
  // the server's own latency of DEBUG SLEEP (Redis 7's latency tracking), in ms
  const latency = (await redis.info('latencystats')).latency_percentiles_usec_debug ?? '';
  const debugP50 = Number(/p50=([\d.]+)/.exec(latency)?.[1]) / 1000;
  const debugMean = after.debug!.usec / after.debug!.calls / 1000;
  for (const v of views) {
    const records = v.records.filter((r): r is RedisRecord => r.protocol === 'redis');
    assert.equal(records.length, v.records.length);
    // Redis counts some commands with their subcommand (config|get), others not (debug)
    const named = countBy(records, (r) => (r.command && !(r.command in served) ? r.command.split(' ')[0] : r.command));
    if (v.limit >= largest(v, 'egress')) {
      assert.deepEqual(named, served, `${limitName(v)}: commands as the server counted them`);
    } else {
      // a pipelined write longer than the capture: the commands past it are counted (by their replies) but not named
      assert.equal(records.length, total, `${limitName(v)}: every command counted`);
      for (const [cmd, n] of Object.entries(named)) assert.ok(n <= (served[cmd] ?? 0), `${limitName(v)}: never more ${cmd} than served`);
      const unnamed = records.filter((r) => r.command === undefined).length;
      assert.equal(unnamed, total - Object.values(named).reduce((a, b) => a + b, 0), `${limitName(v)}: the rest counted without a name`);
    }
    assert.deepEqual(countBy(records, (r) => (r.status === 'ok' ? undefined : `${r.command} ${r.status}`)), { 'LPUSH WRONGTYPE': 1 }, `${limitName(v)}: the one error`);
    const sleepsMs = records.filter((r) => r.command === 'DEBUG SLEEP').map(latencyMs);
    assert.equal(sleepsMs.length, 30);
    within(percentile(sleepsMs, 50), debugP50, 0.1, `${limitName(v)}: DEBUG SLEEP p50`);
    within(sleepsMs.reduce((a, b) => a + b, 0) / sleepsMs.length, debugMean, 0.1, `${limitName(v)}: DEBUG SLEEP mean`);
    t.diagnostic(
      `${limitName(v)}: ${JSON.stringify(named)}, ${v.tracker.stats.desyncs} desyncs, ${v.tracker.stats.unmatchedResponses} unmatched; DEBUG SLEEP p50 ${percentile(sleepsMs, 50).toFixed(2)} ms / redis ${debugP50.toFixed(2)} ms, mean ${(sleepsMs.reduce((a, b) => a + b, 0) / 30).toFixed(2)} / ${debugMean.toFixed(2)} ms`,
    );
  }
  t.diagnostic(`commandstats: ${JSON.stringify(served)}, largest write ${largest(views[0]!, 'egress')} bytes`);
});

// --- PostgreSQL --------------------------------------------------------------------------------

test('PostgreSQL, simple (psql) and extended (pgbench -M prepared and extended) protocol: queries per shape as the statement log has them, 42P01 counted, pg_sleep latency within 10%', async (t) => {
  if (!gate(t)) return;
  const pg = await startPostgres(t);
  const { proxy, done } = await observe(t, pg);
  const random = rng(4);
  const script = ['CREATE TABLE items (id int PRIMARY KEY, name text, price numeric);'];
  for (let i = 1; i <= 50; i++) script.push(`INSERT INTO items VALUES (${i}, 'item ''${i}''', ${i * 1.5});`);
  for (let i = 0; i < 100; i++) script.push(`SELECT name, price FROM items WHERE id = ${1 + Math.floor(random() * 60)};`);
  for (let i = 0; i < 30; i++) script.push(`SELECT pg_sleep(${(0.02 + Math.round(random() * 80) / 1000).toFixed(3)});`);
  for (let i = 0; i < 5; i++) script.push(`UPDATE items SET price = price + 1 WHERE id = ${i + 1};`);
  // results bigger than a capture: 50 rows, one long value
  for (let i = 0; i < 10; i++) script.push('SELECT * FROM items ORDER BY id;', `SELECT repeat('x', ${1000 * (i + 1)});`);
  for (let i = 0; i < 3; i++) script.push('SELECT * FROM missing_table;');
  const psql = await pg.psql(script.join('\n') + '\n', { port: proxy.port });
  assert.equal((psql.stderr.match(/ERROR:/g) ?? []).length, 3, psql.stderr);
  await pg.pgbench(['-n', '-M', 'prepared', '-c', '2', '-t', '100'], { port: proxy.port, script: '\\set id random(1, 50)\nSELECT name FROM items WHERE id = :id;\n' });
  await pg.pgbench(['-n', '-M', 'extended', '-c', '1', '-t', '50'], { port: proxy.port, script: '\\set id random(1, 50)\nUPDATE items SET price = price * 2 WHERE id = :id;\n' });
  const views = await done();
  // the server's count: every simple statement and every extended-protocol execute it logged
  const logged = pg.statements().filter((s) => s.kind === 'statement' || s.kind === 'execute');
  const served = countBy(logged, (s) => normalizeSql(s.text));
  const failed = pg.errors();
  assert.deepEqual(countBy(failed, (e) => e.sqlstate), { '42P01': 3 });
  const sleepShape = normalizeSql('SELECT pg_sleep(0.01);');
  const serverSleeps = logged.filter((s) => normalizeSql(s.text) === sleepShape).map((s) => s.ms);
  assert.equal(serverSleeps.length, 30);
  for (const v of views) {
    const records = v.records.filter((r): r is PostgresRecord => r.protocol === 'postgres');
    assert.equal(records.length, v.records.length);
    const failedRecords = records.filter((r) => r.status !== 'ok' && r.status !== 'unknown');
    assert.deepEqual(countBy(failedRecords, (r) => `${r.shape} ${r.status}`), { [`${normalizeSql('SELECT * FROM missing_table;')} 42P01`]: 3 }, `${limitName(v)}: the errors`);
    // a result longer than the capture whose end (CommandComplete, ReadyForQuery) was not captured: counted, its outcome unknown
    const unknown = records.filter((r) => r.status === 'unknown');
    assert.ok(unknown.every((r) => r.responsePartial && r.responseBytes > v.limit), `${limitName(v)}: only results past the capture are unknown`);
    assert.deepEqual(countBy([...records.filter((r) => r.status === 'ok'), ...unknown], (r) => r.shape), served, `${limitName(v)}: statements per shape as the server logged them`);
    if (v.limit === Infinity) assert.equal(unknown.length, 0);
    const sleeps = records.filter((r) => r.shape === sleepShape).map(latencyMs);
    for (const p of [50, 90]) within(percentile(sleeps, p), percentile(serverSleeps, p), 0.1, `${limitName(v)}: pg_sleep p${p}`);
    t.diagnostic(
      `${limitName(v)}: ${records.length} records (${unknown.length} results past the capture unknown: ${JSON.stringify(countBy(unknown, (r) => r.shape))}), ${v.tracker.stats.desyncs} desyncs; pg_sleep p50 ${percentile(sleeps, 50).toFixed(2)} ms / log ${percentile(serverSleeps, 50).toFixed(2)} ms, p90 ${percentile(sleeps, 90).toFixed(2)} / ${percentile(serverSleeps, 90).toFixed(2)} ms`,
    );
  }
  t.diagnostic(`statement log: ${JSON.stringify(served)}`);
});

// --- gRPC --------------------------------------------------------------------------------------

for (const tls of [false, true]) {
  test(`gRPC${tls ? ' through TLS' : ''} (Python grpcio, HTTP/2 with HPACK from a real peer): calls per service, method and grpc-status as the client counted them`, async (t) => {
    if (!gate(t)) return;
    const rpc = await startGrpc(t, { tls });
    const certs = rpc.certificates;
    const { proxy, done } = await observe(
      t,
      rpc,
      certs ? { tls: { cert: readFileSync(certs.certFile, 'utf8'), key: readFileSync(certs.keyFile, 'utf8'), ca: certs.ca, alpn: ['h2'] } } : {},
    );
    const client = await grpcCalls(proxy, { Say: 120, Missing: 40 }, { seed: 5, ...(certs ? { tls: { caFile: certs.caFile } } : {}) });
    assert.deepEqual(client, { 'Say OK': 120, 'Missing NOT_FOUND': 40 });
    const views = await done();
    for (const v of views) {
      const calls = v.records.filter((r): r is GrpcRecord => r.protocol === 'grpc');
      assert.deepEqual(countBy(v.records, (r) => r.protocol), { grpc: 160 }, `${limitName(v)}: one gRPC record per call and nothing else`);
      assert.deepEqual(countBy(calls, (r) => `${r.service} ${r.method} ${r.grpcStatus} ${r.status}`), {
        'periscope.test.Echo Missing 5 NOT_FOUND': 40,
        'periscope.test.Echo Say 0 OK': 120,
      });
      assert.ok(calls.every((r) => !r.requestPartial && !r.responsePartial && !r.midStream), `${limitName(v)}: nothing partial`);
      assert.equal(v.tracker.stats.headerBlockFailures, 0);
      t.diagnostic(`${tls ? 'TLS ' : ''}${limitName(v)}: ${JSON.stringify(countBy(calls, (r) => `${r.method} ${r.status}`))}, p50 ${percentile(calls.map(latencyMs), 50).toFixed(2)} ms`);
    }
  });
}

// Whole, the parsers follow large messages exactly. A prefix of each read cannot: a read of 64 KiB
// holds the end of one message, the next call's HEADERS and trailers and the start of its message, and
// what follows the first 16 KiB is lost — calls go uncounted or without their grpc-status, but are
// never misnamed. So the kernel walks an HTTP/2 connection's frames instead (l7.test.ts holds that to
// exact counts); a prefix is what is left where the walk is lost (docs/ARCHITECTURE.md).
test('gRPC with 200 kB messages each way (grpcio): exact when captured whole; cut to 16 or 4 KiB a read, no call misnamed and no grpc-status wrong', async (t) => {
  if (!gate(t)) return;
  const rpc = await startGrpc(t);
  const { proxy, done } = await observe(t, rpc, { limits: [Infinity, 16384, 4096] });
  const client = await grpcCalls(proxy, { Say: 30, Missing: 10 }, { seed: 7, size: 200_000 });
  assert.deepEqual(client, { 'Say OK': 30, 'Missing NOT_FOUND': 10 });
  const views = await done();
  for (const v of views) {
    const calls = v.records.filter((r): r is GrpcRecord => r.protocol === 'grpc');
    const counted = countBy(calls, (r) => `${r.service} ${r.method} ${r.grpcStatus} ${r.status}`);
    t.diagnostic(`${limitName(v)}: ${JSON.stringify(counted)}, ${calls.filter((r) => r.requestPartial || r.responsePartial).length} partial, ${v.tracker.stats.headerBlockFailures} header blocks lost, largest read ${largest(v, 'egress')} / ${largest(v, 'ingress')}`);
    assert.ok(largest(v, 'egress') > 16384 || largest(v, 'ingress') > 16384, 'reads longer than the capture');
    for (const r of calls) {
      if (r.method !== undefined) assert.ok(r.service === 'periscope.test.Echo' && ['Say', 'Missing'].includes(r.method), `${limitName(v)}: named right: ${r.service} ${r.method}`);
      if (r.grpcStatus !== undefined && r.method !== undefined) assert.equal(r.grpcStatus, r.method === 'Say' ? 0 : 5, `${limitName(v)}: never a wrong grpc-status`);
    }
    if (v.limit === Infinity) {
      assert.deepEqual(countBy(v.records, (r) => r.protocol), { grpc: 40 }, 'one gRPC record per call');
      assert.deepEqual(counted, { 'periscope.test.Echo Missing 5 NOT_FOUND': 10, 'periscope.test.Echo Say 0 OK': 30 });
      assert.ok(calls.every((r) => !r.requestPartial && !r.responsePartial), 'nothing partial');
      assert.equal(v.tracker.stats.headerBlockFailures, 0);
    }
  }
});

// --- HTTP/2: nginx and curl --------------------------------------------------------------------

test('nginx over HTTP/2 (h2c, 100 requests multiplexed on one connection by Node\'s nghttp2 client): exact counts per route and status when captured whole, no wrong name when cut', async (t) => {
  if (!gate(t)) return;
  const nginx = await startNginx(t, { http2: true });
  const { proxy, done } = await observe(t, nginx);
  const random = rng(6);
  const paths: string[] = [];
  for (let i = 0; i < 60; i++) paths.push(`/users/${1 + Math.floor(random() * 1e6)}?size=${Math.floor(random() * 3000)}&delay=${(random() * 0.02).toFixed(3)}`);
  for (let i = 0; i < 20; i++) paths.push(`/status/404?delay=${(random() * 0.02).toFixed(3)}`, `/status/503?delay=${(random() * 0.02).toFixed(3)}`);
  // curl 7.88 (Debian 12) cannot reuse an h2c connection ("Error in the HTTP2 framing layer" on the second request)
  const session = http2.connect(`http://${proxy.host}:${proxy.port}`);
  const statuses = await Promise.all(
    paths.map(
      (path) =>
        new Promise<number>((resolve, reject) => {
          const req = session.request({ ':path': path });
          let status = 0;
          req.on('response', (h) => (status = Number(h[':status'])));
          req.on('data', () => undefined);
          req.on('end', () => resolve(status));
          req.on('error', reject);
        }),
    ),
  );
  await new Promise<void>((resolve) => session.close(resolve));
  assert.deepEqual(countBy(statuses, String), { 200: 60, 404: 20, 503: 20 });
  const views = await done();
  const log = nginx.accessLog();
  assert.equal(log.length, paths.length);
  const served: Record<string, number> = countBy(log, (e) => `${e.method} ${templatePath(e.path)} ${e.status}`);
  assert.deepEqual({ ...served }, { 'GET /status/{id} 404': 20, 'GET /status/{id} 503': 20, 'GET /users/{id} 200': 60 });
  for (const v of views) {
    const http = v.records.filter((r): r is HttpRecord => r.protocol === 'http2');
    assert.equal(http.length, v.records.length, `${limitName(v)}: only HTTP/2 records`);
    const counted = countBy(http, (r) => `${r.method} ${r.route} ${r.status}`);
    t.diagnostic(`${limitName(v)}: ${http.length} records on ${new Set(http.map((r) => r.conn)).size} connection(s), ${http.filter((r) => r.responsePartial).length} partial, ${v.tracker.stats.desyncs} desyncs, ${v.tracker.stats.headerBlockFailures} header blocks lost; ${JSON.stringify(counted)}`);
    if (v.limit >= Math.max(largest(v, 'egress'), largest(v, 'ingress'))) {
      assert.deepEqual(counted, served, `${limitName(v)}: counts per method, route and status`);
      assert.equal(v.tracker.stats.headerBlockFailures, 0);
    } else {
      // calls of many frames past the capture lose frames (requests never seen) and the frame boundaries,
      // and a header block cut distrusts HPACK's table: streams go uncounted or unknown, never wrongly named
      for (const r of http) if (r.method && r.route && r.statusCode) assert.ok((served[`${r.method} ${r.route} ${r.status}`] ?? 0) > 0, `${limitName(v)}: no wrong name: ${r.method} ${r.route} ${r.status}`);
    }
  }
});

// --- where the servers run ---------------------------------------------------------------------

test('the fixtures put a server where a kernel test wants it: in a test cgroup and a network namespace of its own', async (t) => {
  if (!gate(t)) return;
  const cgroup = new TestCgroup('l7-server');
  const netns = `periscope-l7-${process.pid}`;
  await run('ip', ['netns', 'add', netns]);
  t.after(async () => {
    await run('ip', ['netns', 'del', netns]);
    cgroup.remove();
  });
  await run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  const here = inNetns(`/var/run/netns/${netns}`);
  const redis = await startRedis(t, { wrap: [...inCgroup(cgroup), ...here], exec: here });
  assert.equal((await redis.cli(['PING'])).trim(), 'PONG');
  assert.ok(readFileSync(join(cgroup.dir, 'cgroup.procs'), 'utf8').split('\n').includes(String(redis.pid)), 'redis-server is in the test cgroup');
  assert.equal(readlinkSync(`/proc/${redis.pid}/ns/net`), `net:[${statSync(`/var/run/netns/${netns}`).ino}]`, 'and in the namespace');
  await redis.stop();
});
