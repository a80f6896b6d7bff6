/**
 * The l7 collector against the real kernel and real servers from Debian (test/servers.ts): nginx,
 * Redis and PostgreSQL in test cgroups of their own, their clients in another, and every count held
 * to the server's own (nginx's access log, INFO commandstats, the statement log). A cgroup nobody
 * selected gives no series; events come for the slow and the failed requests only, with secrets
 * masked, and with no payload text at all in shapes mode. Then through an agent, as a selection.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { L7Collector, l7, optionsFrom, SETTINGS } from './index.js';
import { L7_SPEC, type CaptureRecord } from './capture.js';
import { normalizeSql, templatePath } from './protocols/index.js';
import { rng, shuffle } from './protocols/test-util.js';
import { cgroupSubject, type HistogramValue, type Sample } from '../contract.js';
import { alternativesHere, eventually, needsKernel, run, TestCgroup } from '../../../test/kernel.js';
import { testContext } from '../../../test/context.js';
import { GRPC_SERVICE, grpcCalls, httpRequests, inCgroup, startGrpc, startNginx, startPostgres, startRedis, whyServersCannotRun } from '../../../test/servers.js';
import { BpfObject } from '../../kernel/bpf-object.js';
import { supported } from '../../kernel/features.js';
import { KINDS, headerRow, tableRow } from '../../cli/trace.js';
import { startAgent, sumOf } from '../../../test/agent-process.js';

/** Counts of `key` over `items`, as a sorted object. */
function countBy<T>(items: readonly T[], key: (x: T) => string | undefined, n: (x: T) => number = () => 1): Record<string, number> {
  const m = new Map<string, number>();
  for (const x of items) {
    const k = key(x);
    if (k !== undefined) m.set(k, (m.get(k) ?? 0) + n(x));
  }
  return Object.fromEntries([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** Rows of a metric of one cgroup on one side, with the given peer port (undefined: the server side's, no port). */
function rowsOf(c: L7Collector, metric: string, cgroup: number, side: 'client' | 'server', port?: number): Sample[] {
  return (c.read().get(metric) ?? []).filter((r) => r.subject?.id === cgroup && r.labels?.side === side && (port === undefined || r.peer?.port === port));
}

const label = (r: Sample, names: string[]): string => names.map((n) => r.labels?.[n] ?? '').join(' ');
const value = (r: Sample): number => (typeof r.value === 'number' ? r.value : r.value.count);

/** Where the real servers cannot run (a package missing, not root), or the kernel test cannot. */
function gate(t: TestContext): string | undefined {
  if (!needsKernel(t)) return undefined;
  const alt = alternativesHere(L7_SPEC)[0];
  if (!alt || !supported('sk_storage_tracing')) {
    t.skip('this kernel has no alternative for the l7 capture (see the test below)');
    return undefined;
  }
  if (process.env.PERISCOPE_GUEST === '1') {
    // the servers take minutes to start under TCG; the capture's own tests run in the guests
    t.skip('real servers are the host\'s test; the guests run the capture\'s tests');
    return undefined;
  }
  const why = whyServersCannotRun();
  if (why) {
    if (process.env.CI === 'true') assert.fail(`the real servers cannot run: ${why}`);
    t.skip(why);
    return undefined;
  }
  return alt;
}

/** Polls the collectors as the agent does (every 50 ms) until stopped. */
function polling(t: TestContext, ...collectors: L7Collector[]): void {
  const timer = setInterval(() => {
    for (const c of collectors) c.poll();
  }, 50);
  t.after(() => clearInterval(timer));
}

test('l7 per edge: nginx, Redis and PostgreSQL counted as the servers count, on the client side and the server side, nothing of an unselected cgroup', async (t) => {
  const alt = gate(t);
  if (!alt) return;
  const web = new TestCgroup('l7-web');
  const cache = new TestCgroup('l7-cache');
  const db = new TestCgroup('l7-db');
  const clients = new TestCgroup('l7-clients');
  const outsider = new TestCgroup('l7-outsider');
  const rpcs = new TestCgroup('l7-rpc');
  const ctx = testContext();
  const collector = new L7Collector(ctx, { alternative: alt, slowSeconds: 0.1 });
  // the same traffic seen by a second capture that may ship no payload text
  const shapesCtx = testContext();
  const shapes = new L7Collector(shapesCtx, { alternative: alt, slowSeconds: 0.1, payload: 'shapes' });
  t.after(() => {
    collector.close();
    shapes.close();
    for (const cg of [web, cache, db, clients, outsider, rpcs]) cg.remove();
  });
  // the redis server's cgroup is not selected
  const selected = [web, db, clients, rpcs].map((cg) => ({ subject: cgroupSubject(cg.id), group: cg.path }));
  collector.select(selected);
  shapes.select(selected);
  assert.deepEqual(collector.capture.cgroups().map(Number).sort(), [web.id, db.id, clients.id, rpcs.id].sort());
  polling(t, collector, shapes);
  const [nginx, redis, pg, rpc] = await Promise.all([
    startNginx(t, { wrap: inCgroup(web) }),
    startRedis(t, { wrap: inCgroup(cache) }),
    startPostgres(t, { wrap: inCgroup(db) }),
    startGrpc(t, { wrap: inCgroup(rpcs) }),
  ]);
  const inClients = inCgroup(clients);

  await t.test('nginx over keep-alive: requests per method, route and status class exactly as its access log has them, both sides; events for the slow and the failed', async () => {
    const random = rng(10);
    const plan: [string, string, number][] = [];
    for (let i = 0; i < 120; i++) plan.push(['GET', `/users/${1 + Math.floor(random() * 1e6)}?size=${Math.floor(random() * 2000)}`, 0]);
    for (let i = 0; i < 30; i++) plan.push(['POST', '/status/404', 100 + Math.floor(random() * 1500)]);
    for (let i = 0; i < 20; i++) plan.push(['GET', '/status/500', 0]);
    for (let i = 0; i < 10; i++) plan.push(['PUT', '/status/201', 10]);
    for (let i = 0; i < 15; i++) plan.push(['GET', '/health', 0]);
    const slow = Array.from({ length: 5 }, (_x, i) => `/users/${900 + i}`);
    for (const p of slow) plan.push(['GET', `${p}?delay=0.2`, 0]);
    shuffle(plan, random);
    const client = await httpRequests(nginx, plan, { conns: 4, perConn: 40, wrap: inClients });
    assert.equal(client.responses.length, plan.length);
    const log = nginx.accessLog();
    assert.equal(log.length, plan.length, 'nginx logged every request');
    const served = countBy(log, (e) => `${e.method} ${templatePath(e.path)} ${Math.floor(e.status / 100)}xx`);
    const names = ['method', 'route', 'status_class'];
    const counted = (side: 'client' | 'server'): Record<string, number> =>
      countBy(rowsOf(collector, 'periscope_http_requests_total', side === 'client' ? clients.id : web.id, side, side === 'client' ? nginx.port : undefined), (r) => label(r, names), value);
    await eventually(() => (JSON.stringify(counted('client')) === JSON.stringify(served) && JSON.stringify(counted('server')) === JSON.stringify(served) ? true : undefined), 5_000, 'the counts of both sides').catch(() => undefined);
    assert.deepEqual(counted('client'), served, 'the client side, per method, route and status class');
    assert.deepEqual(counted('server'), served, 'the server side');
    const durations = countBy(rowsOf(collector, 'periscope_http_request_duration_seconds', clients.id, 'client', nginx.port), (r) => label(r, names), value);
    assert.deepEqual(durations, served, 'one duration per request');
    const slowCount = rowsOf(collector, 'periscope_http_request_duration_seconds', clients.id, 'client', nginx.port)
      .map((r) => r.value as HistogramValue)
      .reduce((a, h) => a + h.count - h.cumulative[h.bounds.indexOf(0.1)]!, 0);
    assert.ok(slowCount >= slow.length, `the delayed requests are in the buckets past 100 ms (${slowCount})`);
    t.diagnostic(`${plan.length} requests on ${client.connections} connections: ${JSON.stringify(served)}`);

    const events = ctx.events.filter((e) => e.type === 'http_request');
    for (const side of ['client', 'server'] as const) {
      const mine = events.filter((e) => e.side === side);
      const failed = mine.filter((e) => e.reason === 'error');
      assert.equal(failed.length, 20, `${side}: an event per 5xx`);
      assert.ok(failed.every((e) => e.request === 'GET /status/500' && e.status === '500' && e.status_code === 500));
      const slowSeen = mine.filter((e) => e.reason === 'slow');
      assert.ok(slowSeen.every((e) => (e.duration_ms as number) >= 100), `${side}: only slow ones`);
      assert.deepEqual(slow.filter((p) => !slowSeen.some((e) => e.request === `GET ${p}`)), [], `${side}: every delayed request (its query string dropped)`);
      assert.ok(mine.every((e) => e.status === '500' || (e.duration_ms as number) >= 100), `${side}: nothing but slow and failed`);
    }
    const clientEvent = events.find((e) => e.side === 'client')!;
    assert.equal(clientEvent.cgroup, clients.path);
    assert.equal(clientEvent.peer_port, nginx.port, 'the client side\'s peer is the server, at the port it listens on');
    assert.equal(events.find((e) => e.side === 'server')!.cgroup, web.path);
    assert.equal(events.find((e) => e.side === 'server')!.peer_port, null, 'the server side\'s peer is the client, without its ephemeral port');
    // shapes mode: the same counts, routes instead of paths
    const shapeEvents = shapesCtx.events.filter((e) => e.type === 'http_request' && e.side === 'client');
    assert.ok(shapeEvents.every((e) => e.request === `${String(e.method)} ${String(e.route)}`), `routes, not paths: ${JSON.stringify(shapeEvents.map((e) => e.request))}`);
    assert.ok(shapeEvents.filter((e) => e.reason === 'slow' && e.request === 'GET /users/{id}').length >= slow.length);
    assert.deepEqual(countBy(rowsOf(shapes, 'periscope_http_requests_total', clients.id, 'client', nginx.port), (r) => label(r, names), value), served);
  });

  await t.test('a client in a cgroup nobody selected has no series; the selected server still counts what it served it', async () => {
    const before = countBy(rowsOf(collector, 'periscope_http_requests_total', web.id, 'server'), () => 'all', value).all ?? 0;
    await httpRequests(nginx, Array.from({ length: 10 }, () => ['GET', '/health', 0] as [string, string, number]), { wrap: inCgroup(outsider) });
    await eventually(() => ((countBy(rowsOf(collector, 'periscope_http_requests_total', web.id, 'server'), () => 'all', value).all ?? 0) === before + 10 ? true : undefined), 5_000, 'the server side');
    collector.poll();
    assert.equal([...collector.subjects()].filter((s) => s.id === outsider.id).length, 0, 'nothing of the outsider');
    for (const rows of collector.read().values()) assert.ok(!rows.some((r) => r.subject?.id === outsider.id));
  });

  await t.test('redis-benchmark -P 16: every command counted as INFO commandstats counts it, a WRONGTYPE error counted; the unselected server has no series', async () => {
    const before = await redis.commandstats();
    await redis.benchmark(['-P', '16', '-n', '4000', '-c', '4', '-t', 'set,get', '-q'], { wrap: inClients });
    await redis.cli(['SET', 'greeting', 'hello'], { wrap: inClients });
    assert.match(await redis.cli(['LPUSH', 'greeting', 'x'], { wrap: inClients }), /WRONGTYPE/);
    const after = await redis.commandstats();
    const served: Record<string, number> = {};
    for (const [cmd, s] of Object.entries(after)) {
      const n = s.calls + s.rejectedCalls - ((before[cmd]?.calls ?? 0) + (before[cmd]?.rejectedCalls ?? 0));
      if (n > 0 && cmd !== 'info') served[cmd.toUpperCase().replace('|', ' ')] = n;
    }
    assert.ok((served.SET ?? 0) >= 4000 && (served.GET ?? 0) >= 4000, JSON.stringify(served));
    const counted = (): Record<string, number> => countBy(rowsOf(collector, 'periscope_redis_commands_total', clients.id, 'client', redis.port), (r) => r.labels!.command, value);
    await eventually(() => (JSON.stringify(counted()) === JSON.stringify(served) ? true : undefined), 5_000, 'the commands').catch(() => undefined);
    assert.deepEqual(counted(), served, 'commands as the server counted them');
    const errors = countBy(rowsOf(collector, 'periscope_redis_commands_total', clients.id, 'client', redis.port), (r) => (r.labels!.error ? `${r.labels!.command} ${r.labels!.error}` : undefined), value);
    assert.deepEqual(errors, { 'LPUSH WRONGTYPE': 1 });
    const failed = ctx.events.filter((e) => e.type === 'redis_command' && e.reason === 'error');
    assert.equal(failed.length, 1);
    assert.equal(failed[0]!.request, 'LPUSH greeting x');
    assert.equal(shapesCtx.events.find((e) => e.type === 'redis_command' && e.reason === 'error')?.request, 'LPUSH', 'shapes: the command\'s name alone');
    for (const rows of collector.read().values()) assert.ok(!rows.some((r) => r.subject?.id === cache.id), 'the redis server was not selected');
    t.diagnostic(`commandstats: ${JSON.stringify(served)}`);
  });

  await t.test('PostgreSQL through psql and pgbench: statements per shape as the statement log has them, 42P01 counted, each slow statement\'s latency within 10% of the log\'s duration, the query text masked and absent in shapes mode', async () => {
    const random = rng(11);
    const script = ['CREATE TABLE items (id int PRIMARY KEY, name text, price numeric);'];
    for (let i = 1; i <= 40; i++) script.push(`INSERT INTO items VALUES (${i}, 'item ${i}', ${i * 1.5});`);
    for (let i = 0; i < 60; i++) script.push(`SELECT name, price FROM items WHERE id = ${1 + Math.floor(random() * 50)};`);
    for (let i = 0; i < 3; i++) script.push("SELECT * FROM missing_table WHERE password = 'hunter2';");
    // slow statements (over the 0.1 s threshold: an event each, with its text and duration)
    const sleeps = Array.from({ length: 8 }, (_, i) => `SELECT pg_sleep(${(0.11 + i * 0.013).toFixed(3)});`);
    script.push(...sleeps);
    const psql = await pg.psql(script.join('\n') + '\n', { wrap: inClients });
    assert.equal((psql.stderr.match(/ERROR:/g) ?? []).length, 3, psql.stderr);
    await pg.pgbench(['-n', '-M', 'prepared', '-c', '2', '-t', '50'], { wrap: inClients, script: '\\set id random(1, 40)\nSELECT name FROM items WHERE id = :id;\n' });
    const logged = pg.statements().filter((s) => s.kind === 'statement' || s.kind === 'execute');
    const served = countBy(logged, (s) => normalizeSql(s.text));
    assert.deepEqual(countBy(pg.errors(), (e) => e.sqlstate), { '42P01': 3 });
    const byShape = (side: 'client' | 'server'): Record<string, number> =>
      countBy(rowsOf(collector, 'periscope_sql_queries_total', side === 'client' ? clients.id : db.id, side, side === 'client' ? pg.port : undefined), (r) => (r.labels!.error === '' || r.labels!.error === 'unknown' ? r.labels!.shape : undefined), value);
    await eventually(() => (JSON.stringify(byShape('client')) === JSON.stringify(served) && JSON.stringify(byShape('server')) === JSON.stringify(served) ? true : undefined), 5_000, 'the statements').catch(() => undefined);
    assert.deepEqual(byShape('client'), served, 'the client side, per shape');
    assert.deepEqual(byShape('server'), served, 'the server side, per shape');
    const missing = normalizeSql("SELECT * FROM missing_table WHERE password = 'x';");
    const errors = countBy(rowsOf(collector, 'periscope_sql_queries_total', clients.id, 'client', pg.port), (r) => (r.labels!.error && r.labels!.error !== 'unknown' ? `${r.labels!.operation} ${r.labels!.shape} ${r.labels!.error}` : undefined), value);
    assert.deepEqual(errors, { [`SELECT ${missing} 42P01`]: 3 });
    const failed = ctx.events.filter((e) => e.type === 'sql_query' && e.reason === 'error' && e.side === 'client');
    assert.equal(failed.length, 3);
    for (const e of failed) {
      assert.equal(e.sqlstate, '42P01');
      assert.match(String(e.request), /^SELECT \* FROM missing_table WHERE password = '\*\*\*';?$/, 'the literal masked');
      assert.match(String(e.error_message), /missing_table/);
    }
    // each slow statement against the duration PostgreSQL logged for it, on both sides
    const logMs = new Map(logged.filter((s) => s.text.includes('pg_sleep')).map((s) => [s.text.trim(), s.ms]));
    for (const side of ['client', 'server']) {
      const slow = ctx.events.filter((e) => e.type === 'sql_query' && e.reason === 'slow' && e.side === side && String(e.request).includes('pg_sleep'));
      assert.deepEqual(slow.map((e) => String(e.request)).sort(), [...sleeps].sort(), `${side}: an event per slow statement, its text`);
      for (const e of slow) {
        const theirs = logMs.get(String(e.request));
        assert.ok(theirs !== undefined, `${String(e.request)} in the statement log`);
        assert.ok(Math.abs(Number(e.duration_ms) - theirs) <= 0.1 * theirs, `${side}: ${String(e.request)} took ${String(e.duration_ms)} ms, the log says ${theirs} ms`);
      }
    }
    const shaped = shapesCtx.events.filter((e) => e.type === 'sql_query');
    assert.equal(shaped.filter((e) => e.reason === 'error' && e.request === missing).length, 6, 'both sides, the shape');
    for (const e of shaped) {
      assert.ok(!JSON.stringify(e).includes('hunter2') && !('error_message' in e), 'no payload text in shapes mode');
      assert.equal(e.request, e.shape, 'the shape, never the text');
    }
    assert.ok(!JSON.stringify(ctx.events).includes('hunter2'), 'never the secret');
    t.diagnostic(`statement log: ${Object.keys(served).length} shapes, ${logged.length} statements`);
  });

  await t.test('nothing lost: no ring record, no aggregate, no event, no parser desync', () => {
    collector.poll();
    assert.deepEqual(collector.drops(), { events: 0, aggregates: 0, sampled: 0 });
    const capture = Object.fromEntries((collector.read().get('periscope_l7_capture_events_total') ?? []).map((r): [string, number] => [r.labels!.event ?? '', value(r)]));
    t.diagnostic(JSON.stringify(capture));
    assert.equal(capture.ring_full, 0);
    assert.equal(capture.parser_desyncs, 0);
  });

  await t.test('gRPC (Python grpcio), both sides: calls per service, method and status code exactly as the client counted them; an event per failed call', async () => {
    const client = await grpcCalls(rpc, { Say: 30, Missing: 10 }, { wrap: inClients });
    assert.deepEqual(client, { 'Say OK': 30, 'Missing NOT_FOUND': 10 });
    const rows = (side: 'client' | 'server'): Sample[] => rowsOf(collector, 'periscope_grpc_requests_total', side === 'client' ? clients.id : rpcs.id, side, side === 'client' ? rpc.port : undefined);
    const expected = { [`${GRPC_SERVICE} Missing NOT_FOUND`]: 10, [`${GRPC_SERVICE} Say OK`]: 30 };
    const named = (side: 'client' | 'server'): Record<string, number> => countBy(rows(side), (r) => `${r.labels!.grpc_service} ${r.labels!.grpc_method} ${r.labels!.grpc_status}`, value);
    await eventually(() => (isDeepStrictEqual(named('client'), expected) && isDeepStrictEqual(named('server'), expected) ? true : undefined), 5_000, 'the calls on both sides').catch(() => undefined);
    t.diagnostic(`parser ${JSON.stringify(collector.tracker.stats)}`);
    // grpcio writes a response's HEADERS, DATA and trailers in one sendmsg of many iovecs (the capture
    // reads 64), and its server sends its SETTINGS before it reads the client's preface
    for (const side of ['client', 'server'] as const) assert.deepEqual(named(side), expected, `${side}: calls per service, method and status`);
    assert.equal(collector.tracker.stats.headerBlockFailures, 0, 'every header block decoded');
    assert.equal(collector.tracker.stats.midStreamConnections, 0, 'no connection taken for one joined mid-stream');
    const failed = ctx.events.filter((e) => e.type === 'grpc_request' && e.reason === 'error');
    assert.equal(failed.filter((e) => e.side === 'client').length, 10, 'a NOT_FOUND event per call, the client\'s');
    assert.equal(failed.filter((e) => e.side === 'server').length, 10, 'and the server\'s');
    assert.ok(failed.every((e) => e.grpc_status === 'NOT_FOUND' && e.request === `/${GRPC_SERVICE}/Missing`));
  });

  await t.test('gRPC with 200 kB messages each way, both sides: every call named with its status (the kernel walks HTTP/2 frames and skips DATA payloads; a 16 KiB prefix lost most of them)', async () => {
    const before = (side: 'client' | 'server'): Record<string, number> =>
      countBy(rowsOf(collector, 'periscope_grpc_requests_total', side === 'client' ? clients.id : rpcs.id, side, side === 'client' ? rpc.port : undefined), (r) => `${r.labels!.grpc_method} ${r.labels!.grpc_status}`, value);
    const was = { client: before('client'), server: before('server') };
    const capturedBefore = collector.capture.stats().chunks;
    const client = await grpcCalls(rpc, { Say: 30, Missing: 10 }, { wrap: inClients, size: 200_000, seed: 3 });
    assert.deepEqual(client, { 'Say OK': 30, 'Missing NOT_FOUND': 10 });
    const added = (side: 'client' | 'server'): Record<string, number> => {
      const now = before(side);
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(now)) if (v !== (was[side][k] ?? 0)) out[k] = v - (was[side][k] ?? 0);
      return out;
    };
    const expected = { 'Missing NOT_FOUND': 10, 'Say OK': 30 };
    await eventually(() => (isDeepStrictEqual(added('client'), expected) && isDeepStrictEqual(added('server'), expected) ? true : undefined), 10_000, 'the calls on both sides').catch(() => undefined);
    t.diagnostic(`parser ${JSON.stringify(collector.tracker.stats)}; ${collector.capture.stats().chunks - capturedBefore} chunks for ${40 * 2 * 200_000 * 2} bytes moved`);
    for (const side of ['client', 'server'] as const) assert.deepEqual(added(side), expected, `${side}: calls per method and status`);
    assert.equal(collector.tracker.stats.headerBlockFailures, 0, 'every header block decoded');
  });

  await t.test('a cgroup forgotten takes its rows and its place on the allow-list with it', () => {
    collector.forget([cgroupSubject(clients.id)]);
    assert.ok(![...collector.subjects()].some((s) => s.id === clients.id));
    assert.ok(!collector.capture.cgroups().map(Number).includes(clients.id));
  });
});

test('where routes run past --l7-max-names, the rest fold into "other" and are counted', async (t) => {
  const alt = gate(t);
  if (!alt) return;
  const web = new TestCgroup('l7-fold-web');
  const clients = new TestCgroup('l7-fold-clients');
  const ctx = testContext();
  const collector = new L7Collector(ctx, { alternative: alt, maxNames: 2 });
  t.after(() => {
    collector.close();
    web.remove();
    clients.remove();
  });
  collector.select([{ subject: cgroupSubject(clients.id), group: 'shop/Deployment/web' }]);
  polling(t, collector);
  const nginx = await startNginx(t, { wrap: inCgroup(web) });
  const plan: [string, string, number][] = [
    ['GET', '/health', 0],
    ['GET', '/users/1', 0],
    ['GET', '/status/404', 0],
    ['GET', '/status/201', 0],
    ['GET', '/health', 0],
  ];
  await httpRequests(nginx, plan, { wrap: inCgroup(clients) });
  const routes = (): Record<string, number> => countBy(rowsOf(collector, 'periscope_http_requests_total', clients.id, 'client', nginx.port), (r) => r.labels!.route, value);
  await eventually(() => (Object.values(routes()).reduce((a, b) => a + b, 0) === plan.length ? true : undefined), 5_000, 'every request');
  // /status/404 and /status/201 are one route, /status/{id}: three routes for two places
  assert.deepEqual(routes(), { '/health': 2, '/users/{id}': 1, other: 2 });
  assert.deepEqual((collector.read().get('periscope_l7_folded_total') ?? []).map((r) => [r.subject?.id, r.labels, r.value]), [[clients.id, { kind: 'route' }, 2]]);
});

test('through an agent: --l7-select by cgroup subtree captures the clients there, named and exported per edge', async (t) => {
  const alt = gate(t);
  if (!alt) return;
  const { Agent } = await import('../../agent/agent.js');
  const web = new TestCgroup('l7-agent-web');
  const clients = new TestCgroup('l7-agent-clients');
  const agent = new Agent({ collectors: [l7], selections: { l7: `cgroup:${clients.path}` }, settings: { l7: { slow: '5' } }, node: 'l7-node', log: () => undefined });
  agent.start();
  t.after(() => {
    agent.stop();
    web.remove();
    clients.remove();
  });
  assert.deepEqual(agent.failed, []);
  const collector = agent.collectors.get('l7')?.instance as L7Collector;
  assert.deepEqual(collector.capture.cgroups().map(Number), [clients.id], 'the subtree\'s cgroup, and nothing else');
  const nginx = await startNginx(t, { wrap: inCgroup(web) });
  await httpRequests(nginx, [['GET', '/users/7', 0], ['GET', '/status/503', 0], ['GET', '/users/8', 0]], { wrap: inCgroup(clients) });
  const series = (text: string): string[] => text.split('\n').filter((l) => l.startsWith('periscope_http_requests_total{'));
  const text = await eventually(() => {
    const s = agent.scrape();
    return series(s).length === 2 ? s : undefined;
  }, 5_000, 'two series');
  const common = `cgroup="${clients.path}",namespace="",pod="",container="",workload_kind="",workload="",node="l7-node",peer_kind="local",peer_namespace="",peer_workload="",peer="127.0.0.1",peer_port="${nginx.port}",side="client"`;
  assert.deepEqual(series(text).sort(), [
    `periscope_http_requests_total{${common},method="GET",route="/status/{id}",status_class="5xx"} 1`,
    `periscope_http_requests_total{${common},method="GET",route="/users/{id}",status_class="2xx"} 2`,
  ]);
  assert.match(text, /^# TYPE periscope_http_request_duration_seconds histogram$/m);
  assert.match(text, /^periscope_collector_up\{collector="l7",alternative="[^"]+"\} 1$/m);
  // Prometheus' own linter finds nothing
  const file = join(tmpdir(), `periscope-l7-metrics-${process.pid}.txt`);
  writeFileSync(file, text);
  t.after(() => rmSync(file, { force: true }));
  const lint = await run('sh', ['-c', `promtool check metrics < ${file}`]);
  assert.equal(lint.code, 0, `promtool: ${lint.stdout}${lint.stderr}`);
  const events = agent.events.since(0, 1000, (e) => e.type === 'http_request');
  assert.equal(events.length, 1, 'the 503 (nothing is slower than 5 s)');
  assert.equal(events[0]!.request, 'GET /status/503');
});

test('bin/periscope agent --l7-select: the flag reaches the collector in a real agent process, the settings too', async (t) => {
  const alt = gate(t);
  if (!alt) return;
  const web = new TestCgroup('l7-proc-web');
  const clients = new TestCgroup('l7-proc-clients');
  const agent = await startAgent(['--no-kubernetes', '--collectors', 'l7', '--l7-select', `cgroup:${clients.path}`, '--l7-payload', 'shapes', '--l7-ring-mib', '2']);
  t.after(async () => {
    await agent.stop();
    web.remove();
    clients.remove();
  });
  assert.match(agent.banner, /1 collectors running/);
  const rings = JSON.parse((await run('bpftool', ['-j', 'map', 'show'])).stdout) as { name?: string; max_entries: number }[];
  assert.ok(rings.some((m) => m.name === 'l7_events' && m.max_entries === 2 << 20), '--l7-ring-mib 2: a 2 MiB ring');
  const nginx = await startNginx(t, { wrap: inCgroup(web) });
  await httpRequests(nginx, [['GET', '/status/500', 0], ['GET', '/users/12345', 0]], { wrap: inCgroup(clients) });
  const text = await eventually(async () => {
    const m = await (await fetch(`${agent.url}/metrics`)).text();
    return sumOf(m, 'periscope_http_requests_total', { cgroup: clients.path, side: 'client' }) === 2 ? m : undefined;
  }, 10_000, 'two requests of the selected cgroup');
  assert.equal(sumOf(text, 'periscope_http_requests_total', { cgroup: web.path }), 0, 'the server was not selected');
  const body = (await (await fetch(`${agent.url}/api/v1/events?type=http_request`)).json()) as { events: Record<string, unknown>[] };
  assert.deepEqual(body.events.map((e) => [e.cgroup, e.request, e.reason]), [[clients.path, 'GET /status/{id}', 'error']], 'shapes: the route, not the path');
  assert.equal(await agent.stop(), 0);
});

test('--l7-ring-mib takes a power of two of 1 to 1024 MiB and nothing else', () => {
  const def = SETTINGS.find((s) => s.name === 'ring-mib');
  assert.ok(def);
  const check = (v: string): string | undefined => def.check(v);
  for (const good of ['1', '2', '16', '1024']) assert.equal(check(good), undefined, good);
  for (const bad of ['0', '3', '24', '2048', '-4', '1.5', '16MiB', '', '0x10']) assert.ok(check(bad), `refused: "${bad}"`);
  assert.equal(optionsFrom({ 'ring-mib': '2' }).ringBytes, 2 << 20);
  assert.equal(optionsFrom({}).ringBytes, undefined);
});

test('a Redis pipeline handed over as runs: every command counted and observed, an event per failed or slow command with its own arguments', (t) => {
  if (!needsKernel(t)) return;
  const alt = alternativesHere(L7_SPEC)[0];
  if (!alt || !supported('sk_storage_tracing')) {
    t.skip('this kernel has no alternative for the l7 capture');
    return;
  }
  const cg = new TestCgroup('l7-runs');
  const ctx = testContext();
  const collector = new L7Collector(ctx, { alternative: alt, slowSeconds: 0.1 });
  t.after(() => {
    collector.close();
    cg.remove();
  });
  // the chunks as the capture ships them, without the kernel: one client connection to 10.0.0.9:6379
  const take = (collector as unknown as { take(r: CaptureRecord): void }).take.bind(collector);
  const enc = new TextEncoder();
  const offsets = { egress: 0, ingress: 0 };
  const call = (dir: 'egress' | 'ingress', ms: number, text: string): void => {
    const data = enc.encode(text);
    take({
      kind: 'chunk', conn: 77n, tgid: 1, pid: 1, fd: 5, cgroup: BigInt(cg.id), dir, time: BigInt(ms) * 1_000_000n, size: data.length, offset: offsets[dir], data,
      protocol: 'redis', role: 'client', syscall: dir === 'egress' ? 'write' : 'read', family: 'ipv4', local: { addr: '10.0.0.1', port: 40000 }, remote: { addr: '10.0.0.9', port: 6379 },
    });
    offsets[dir] += data.length;
  };
  const cmd = (...args: string[]): string => `*${args.length}\r\n` + args.map((a) => `$${a.length}\r\n${a}\r\n`).join('');
  const wrongtype = '-WRONGTYPE Operation against a key holding the wrong kind of value\r\n';
  // 16 commands in one write, their replies 1 ms later in one read: two LPUSHes fail in the middle
  call('egress', 1000, [0, 1, 2, 3, 4].map((i) => cmd('SET', `k${i}`, 'v')).join('') + [0, 1, 2, 3].map((i) => cmd('GET', `k${i}`)).join('') + cmd('LPUSH', 'k0', 'x') + cmd('LPUSH', 'k1', 'y') + [0, 1, 2, 3, 4].map((i) => cmd('DEL', `k${i}`)).join(''));
  call('ingress', 1001, '+OK\r\n'.repeat(5) + '$1\r\nv\r\n'.repeat(4) + wrongtype + wrongtype + ':1\r\n'.repeat(5));
  // then 4 GETs answered 200 ms later: slow, an event each
  call('egress', 2000, [5, 6, 7, 8].map((i) => cmd('GET', `k${i}`)).join(''));
  call('ingress', 2200, '$-1\r\n'.repeat(4));
  const rows = rowsOf(collector, 'periscope_redis_commands_total', cg.id, 'client', 6379);
  assert.deepEqual(countBy(rows, (r) => `${r.labels!.command} ${r.labels!.error}`, value), { 'DEL ': 5, 'GET ': 8, 'LPUSH WRONGTYPE': 2, 'SET ': 5 });
  const hist = rowsOf(collector, 'periscope_redis_command_duration_seconds', cg.id, 'client', 6379);
  assert.deepEqual(countBy(hist, (r) => r.labels!.command, value), { DEL: 5, GET: 8, LPUSH: 2, SET: 5 });
  const get = hist.find((r) => r.labels!.command === 'GET')!.value as HistogramValue;
  assert.ok(Math.abs(get.sum - (4 * 0.001 + 4 * 0.2)) < 1e-9, `the sum of GET durations: ${get.sum}`);
  const events = ctx.events.filter((e) => e.type === 'redis_command');
  assert.deepEqual(events.map((e) => `${String(e.reason)} ${String(e.request)}`), ['error LPUSH k0 x', 'error LPUSH k1 y', 'slow GET k5', 'slow GET k6', 'slow GET k7', 'slow GET k8']);
});

test('where the kernel lacks socket storage for tracing programs, l7 says so and loads nothing', (t) => {
  if (!needsKernel(t)) return;
  if (supported('sk_storage_tracing')) {
    t.diagnostic('this kernel has it: the collector runs (see the tests above)');
    assert.ok(alternativesHere(L7_SPEC).length > 0);
    return;
  }
  assert.throws(() => BpfObject.load(L7_SPEC), /no alternative works on this kernel.*sk_storage_tracing/s);
});

test('periscope trace l7 shows a slow or failed request as a row: who, protocol, side, peer, request, status, duration, why', () => {
  const kind = KINDS.l7!;
  assert.deepEqual(kind.types, ['http_request', 'grpc_request', 'sql_query', 'redis_command']);
  assert.match(headerRow(kind), /^TIME +NAMESPACE\/POD +PROTOCOL +SIDE +PEER +REQUEST +STATUS +DURATION +WHY$/);
  const e = {
    seq: 1,
    type: 'sql_query',
    time: '2026-01-02T03:04:05.678Z',
    node: 'n1',
    cgroup: '/kubepods.slice/x',
    cgroup_id: 7,
    namespace: 'shop',
    pod: 'web-0',
    protocol: 'postgres',
    side: 'client',
    peer_addr: '10.0.1.9',
    peer_port: 5432,
    peer: 'db/pg-0',
    request: "SELECT * FROM users WHERE name = '***'",
    status: '42P01',
    duration_ms: 1.5,
    reason: 'error',
  };
  const cells = tableRow(kind, e).trim().split(/ {2,}/);
  assert.deepEqual([cells[1], cells[2], cells[3], cells[4], cells[5], cells[6], cells[8]], ['shop/web-0', 'postgres', 'client', 'db/pg-0', "SELECT * FROM users WHERE name = '***'", '42P01', 'error']);
  assert.match(cells[7]!, /^1\.5/);
  assert.equal(tableRow(kind, { ...e, peer: undefined }).includes('10.0.1.9:5432'), true, 'the address where the peer has no name');
});
