/**
 * End to end: the l7 collector in a real agent process (`--l7-select namespace:shop`) on a test node
 * whose pods are network namespaces on a bridge with kubelet-style cgroups, named by the fake API
 * server. nginx and Redis from Debian run in their own pods' containers, their clients in another
 * pod's; a client in a namespace nobody selected talks to the same servers. Every count is held to
 * the server's own (nginx's access log, Redis' INFO commandstats), every latency to nginx's
 * `$request_time`, and each series is named by both ends' pods and workloads as the network
 * collector names its edges.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cluster, place } from './cluster.js';
import { eventually, needsKernel } from '../kernel.js';
import { sumOf, type RunningAgent } from '../agent-process.js';
import { httpRequests, inNetns, startNginx, startRedis, whyServersCannotRun, type AccessEntry } from '../servers.js';
import { rng, shuffle } from '../../src/collectors/l7/protocols/test-util.js';
import { supported } from '../../src/kernel/features.js';

const metrics = async (a: RunningAgent): Promise<string> => (await fetch(`${a.url}/metrics`)).text();

/** The quantile q of sorted values (nearest rank). */
const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;

function gate(t: TestContext): boolean {
  if (!needsKernel(t)) return false;
  if (!supported('sk_storage_tracing')) {
    // the collector's own tests hold what it says there; nothing to measure end to end
    t.skip('this kernel has no alternative for the l7 capture');
    return false;
  }
  const why = whyServersCannotRun();
  if (why) assert.fail(`the real servers cannot run: ${why}`);
  return true;
}

test('l7 in test pods: nginx and Redis counted per edge, named by pod and workload on both ends, exactly as the servers count, latencies as nginx logs them', async (t) => {
  if (!gate(t)) return;
  const c = await cluster(t, (nodeName, kubeconfig) => ['--kubeconfig', kubeconfig, '--node', nodeName, '--aggregation', 'pod', '--collectors', 'l7', '--l7-select', 'namespace:shop', '--l7-slow', '0.015']);
  const api = await place(c, 'shop', 'api');
  const cache = await place(c, 'shop', 'cache');
  const web = await place(c, 'shop', 'web');
  const batch = await place(c, 'batch', 'report');
  await eventually(async () => (await metrics(c.agent)).includes('periscope_collector_up{collector="l7"') || undefined, 10_000, 'the l7 collector up');
  const nginx = await startNginx(t, { wrap: api.wrap, host: api.pod.ip, port: 8080 });
  const redis = await startRedis(t, { wrap: cache.wrap, exec: inNetns(cache.pod.netnsPath), host: cache.pod.ip, port: 6379 });
  const toApi = { namespace: 'shop', pod: web.name, workload: 'web', peer_kind: 'pod', peer_namespace: 'shop', peer_workload: 'api', peer: api.name, peer_port: '8080', side: 'client' };
  const fromWeb = { namespace: 'shop', pod: api.name, workload: 'api', peer_kind: 'pod', peer_namespace: 'shop', peer_workload: 'web', peer: web.name, peer_port: '', side: 'server' };
  // the agent learns the pods from the API and selects their cgroups: until then nothing is captured.
  // A request of a route the test does not otherwise use, until both ends have counted one.
  const warm = { method: 'GET', route: '/status/{id}', status_class: '2xx' };
  await eventually(async () => {
    await httpRequests({ host: api.pod.ip, port: 8080 }, [['GET', '/status/200', 0]], { wrap: web.wrap });
    await new Promise((r) => setTimeout(r, 300));
    const text = await metrics(c.agent);
    return sumOf(text, 'periscope_http_requests_total', { ...toApi, ...warm }) > 0 && sumOf(text, 'periscope_http_requests_total', { ...fromWeb, ...warm }) > 0 ? true : undefined;
  }, 20_000, 'a first request counted on both ends of web → api');
  const warmLog = nginx.accessLog().length;

  await t.test('nginx over keep-alive, 6 connections two at a time reusing descriptors: requests per method, route and status class as the access log has them, on both ends; each latency within 10% of $request_time', async () => {
    const random = rng(7);
    const plan: [string, string, number][] = [];
    // delayed requests, 20 to 150 ms: latencies nginx measures to the ms
    for (let i = 0; i < 90; i++) plan.push(['GET', `/users/${100 + i}?delay=${(0.02 + random() * 0.13).toFixed(3)}`, 0]);
    for (let i = 0; i < 30; i++) plan.push(['POST', `/status/404?delay=0.03&n=${i}`, 200 + Math.floor(random() * 900)]);
    for (let i = 0; i < 24; i++) plan.push(['GET', `/status/500?delay=0.025&n=${i}`, 0]);
    for (let i = 0; i < 12; i++) plan.push(['PUT', `/status/201?n=${i}`, 20]);
    for (let i = 0; i < 24; i++) plan.push(['GET', '/health', 0]);
    shuffle(plan, random);
    const client = await httpRequests({ host: api.pod.ip, port: 8080 }, plan, { conns: 2, perConn: 30, wrap: web.wrap });
    assert.equal(client.responses.length, plan.length);
    // the unselected namespace's client: the server side still counts it, its own side has nothing
    await httpRequests({ host: api.pod.ip, port: 8080 }, [['GET', '/health', 0], ['GET', '/status/503', 0]], { wrap: batch.wrap });
    const log = nginx.accessLog().slice(warmLog);
    assert.equal(log.length, plan.length + 2, 'nginx logged every request');
    // the unselected client's two come last
    assert.deepEqual(log.slice(plan.length).map((e) => e.path), ['/health', '/status/503']);
    const webLog = log.slice(0, plan.length);

    const want = new Map<string, number>();
    const route = (e: AccessEntry): string => (e.path.startsWith('/users/') ? '/users/{id}' : e.path.startsWith('/status/') ? '/status/{id}' : e.path);
    for (const r of client.responses) {
      const path = r.target.split('?')[0]!;
      const k = `${r.method} ${path.startsWith('/users/') ? '/users/{id}' : path.startsWith('/status/') ? '/status/{id}' : path} ${String(r.status)[0]}xx`;
      want.set(k, (want.get(k) ?? 0) + 1);
    }
    const total = plan.length;
    const planned = (text: string, labels: Record<string, string>): number => sumOf(text, 'periscope_http_requests_total', labels) - sumOf(text, 'periscope_http_requests_total', { ...labels, ...warm });
    const m = await eventually(async () => {
      const text = await metrics(c.agent);
      return planned(text, toApi) === total && planned(text, fromWeb) === total ? text : undefined;
    }, 15_000, `${total} requests on both ends of web → api`);
    for (const [k, n] of want) {
      const [method, r, status_class] = k.split(' ') as [string, string, string];
      assert.equal(sumOf(m, 'periscope_http_requests_total', { ...toApi, method, route: r, status_class }), n, `client side ${k}`);
      assert.equal(sumOf(m, 'periscope_http_requests_total', { ...fromWeb, method, route: r, status_class }), n, `server side ${k}`);
    }
    // the access log's own view, by route and status: the same
    const logged = new Map<string, number>();
    for (const e of webLog) logged.set(`${e.method} ${route(e)} ${String(e.status)[0]}xx`, (logged.get(`${e.method} ${route(e)} ${String(e.status)[0]}xx`) ?? 0) + 1);
    assert.deepEqual([...logged].sort(), [...want].sort(), 'the client and nginx agree');
    assert.equal(sumOf(m, 'periscope_http_request_duration_seconds_count', toApi), sumOf(m, 'periscope_http_requests_total', toApi), 'every request answered and timed');
    assert.equal(sumOf(m, 'periscope_http_requests_total', { namespace: 'batch' }), 0, 'nothing for the unselected namespace\'s own side');
    assert.equal(sumOf(m, 'periscope_http_requests_total', { namespace: 'shop', pod: api.name, peer_namespace: 'batch', peer_workload: 'report', side: 'server' }), 2, 'the server counts what it served the unselected client');

    // latencies: the server side's slow events (over 15 ms) against $request_time, request by request
    const events = await eventually(async () => {
      const body = (await (await fetch(`${c.agent.url}/api/v1/events?type=http_request&namespace=shop&pod=${api.name}&limit=1000`)).json()) as { events: Record<string, unknown>[] };
      const ev = body.events.filter((e) => e.reason === 'slow' && e.side === 'server');
      return ev.filter((e) => String(e.request).includes('/users/')).length >= 90 ? ev : undefined;
    }, 10_000, 'slow events for the delayed requests').catch(async (e: unknown) => {
      const body = (await (await fetch(`${c.agent.url}/api/v1/events?type=http_request&limit=1000`)).json()) as { events: Record<string, unknown>[] };
      t.diagnostic(JSON.stringify(body.events.slice(0, 3)));
      t.diagnostic(`${body.events.length} events`);
      throw e;
    });
    // the /users/N requests have a path each (the query, which may be masked, is not needed)
    const byPath = new Map(webLog.filter((e) => e.path.startsWith('/users/')).map((e) => [e.path, e.seconds]));
    const pairs: [number, number][] = [];
    for (const e of events) {
      const path = String(e.request).split(' ')[1]?.split('?')[0] ?? '';
      const seconds = byPath.get(path);
      if (seconds !== undefined) pairs.push([Number(e.duration_ms) / 1000, seconds]);
    }
    assert.equal(pairs.length, 90, 'each delayed /users/N request matched to its log line');
    assert.equal(sumOf(await metrics(c.agent), 'periscope_events_sampled_out_total', { collector: 'l7' }), 0, 'no event over the budget');
    for (const [ours, theirs] of pairs) assert.ok(Math.abs(ours - theirs) <= 0.1 * theirs + 0.001, `${ours} s against nginx's ${theirs} s`);
    const ours = pairs.map((p) => p[0]).sort((a, b) => a - b);
    const theirs = pairs.map((p) => p[1]).sort((a, b) => a - b);
    for (const q of [0.5, 0.9, 0.99]) {
      const [a, b] = [quantile(ours, q), quantile(theirs, q)];
      t.diagnostic(`p${q * 100}: ${(a * 1000).toFixed(1)} ms, nginx ${(b * 1000).toFixed(1)} ms`);
      assert.ok(Math.abs(a - b) <= 0.1 * b, `p${q * 100} ${a} s within 10% of nginx's ${b} s`);
    }
  });

  await t.test('redis-benchmark -P 16 from the web pod: every command counted as INFO commandstats counts it, on both ends', async () => {
    const before = await redis.commandstats();
    await redis.benchmark(['-P', '16', '-t', 'set,get', '-n', '20000', '-c', '4', '-q'], { wrap: web.wrap });
    const after = await redis.commandstats();
    const calls = (k: string): number => (after[k]?.calls ?? 0) - (before[k]?.calls ?? 0);
    assert.equal(calls('set'), 20_000);
    assert.equal(calls('get'), 20_000);
    const toCache = { namespace: 'shop', pod: web.name, workload: 'web', peer_namespace: 'shop', peer_workload: 'cache', peer: cache.name, peer_port: '6379', side: 'client' };
    const fromWebR = { namespace: 'shop', pod: cache.name, workload: 'cache', peer_namespace: 'shop', peer_workload: 'web', side: 'server' };
    const m = await eventually(async () => {
      const text = await metrics(c.agent);
      return sumOf(text, 'periscope_redis_commands_total', { ...toCache, command: 'GET' }) === 20_000 && sumOf(text, 'periscope_redis_commands_total', { ...fromWebR, command: 'GET' }) === 20_000 ? text : undefined;
    }, 20_000, '20,000 GETs on both ends').catch(async (e: unknown) => {
      t.diagnostic((await metrics(c.agent)).split('\n').filter((l) => l.startsWith('periscope_redis_commands_total') || l.startsWith('periscope_l7_')).join('\n'));
      throw e;
    });
    for (const side of [toCache, fromWebR]) {
      assert.equal(sumOf(m, 'periscope_redis_commands_total', { ...side, command: 'SET' }), 20_000, `SET, ${side.side}`);
      assert.equal(sumOf(m, 'periscope_redis_commands_total', { ...side, command: 'GET' }), 20_000, `GET, ${side.side}`);
    }
    assert.equal(sumOf(m, 'periscope_l7_capture_events_total', { event: 'ring_full' }), 0, 'nothing lost');
  });
});
