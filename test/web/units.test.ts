/** The UI's pure parts: units as people read them, URL state that round-trips, quantiles over time. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bytes, byteRate, cores, count, percent, rate, seconds } from '../../src/web/src/format.js';
import { formatHash, parseHash, rangeSeconds, validTime, type Route } from '../../src/web/src/route.js';
import { quantileAt, quantileSeries } from '../../src/web/src/histogram.js';
import { entryName, entryParams, pageFilters } from '../../src/web/src/names.js';
import { errorRatio, requestTotals } from '../../src/web/src/requests.js';

test('numbers with units: 1.2 s, 340 MiB, 12 k/s', () => {
  assert.equal(seconds(1.2), '1.2 s');
  assert.equal(seconds(0.00034), '340 µs');
  assert.equal(seconds(0.0123), '12.3 ms');
  assert.equal(seconds(2.5e-8), '25 ns');
  assert.equal(seconds(0), '0 s');
  assert.equal(seconds(150), '2.5 min');
  assert.equal(seconds(null), '–');
  assert.equal(bytes(340 * 1024 * 1024), '340 MiB');
  assert.equal(bytes(512), '512 B');
  assert.equal(bytes(1536), '1.5 KiB');
  assert.equal(bytes(1023.9), '1 KiB', 'no "1024 B"');
  assert.equal(byteRate(2 * 1024 ** 3), '2 GiB/s');
  assert.equal(rate(12_000), '12 k/s');
  assert.equal(rate(0.5), '0.5/s');
  assert.equal(count(999), '999');
  assert.equal(count(999_600), '1 M', 'rounds up into the next unit rather than "1000 k"');
  assert.equal(count(1234), '1.23 k');
  assert.equal(cores(1), '1 core');
  assert.equal(cores(1.5), '1.5 cores');
  assert.equal(cores(0.012), '12 m');
  assert.equal(percent(0.125), '12.5%');
  assert.equal(count(Number.NaN), '–');
});

const route = (over: Partial<Route>): Route => ({ view: 'overview', params: {}, from: '-15m', to: '', refresh: 10, ...over });

test('URL state: a view and its parameters round-trip; defaults are left out; bad values fall back', () => {
  const r = route({ view: 'workload', params: { level: 'workload', namespace: 'shop', kind: 'Deployment', workload: 'cart & co' }, from: '-1h', refresh: 30 });
  const hash = formatHash(r);
  assert.equal(hash, '#/workload?level=workload&namespace=shop&kind=Deployment&workload=cart+%26+co&from=-1h&refresh=30');
  assert.deepEqual(parseHash(hash), r);
  assert.equal(formatHash(route({})), '#/overview');
  assert.deepEqual(parseHash(''), route({}));
  assert.deepEqual(parseHash('#/nope?from=yesterday&refresh=7&to=garbage'), route({}), 'unknown view, bad times and refresh: defaults');
  const fixed = parseHash('#/events?from=2026-12-01T10:00:00Z&to=2026-12-01T11:00:00Z&refresh=5');
  assert.equal(fixed.refresh, 0, 'a fixed range does not refresh');
  assert.equal(rangeSeconds(fixed), 3600);
  assert.equal(rangeSeconds(route({ from: '-5m' }), 1e12), 300);
  assert.ok(validTime('-7d') && validTime('now') && !validTime('-7x') && !validTime('2026-13-45T99:00:00Z'));
  assert.equal(Object.keys(parseHash(`#/overview?namespace=${'x'.repeat(600)}`).params).length, 0, 'an overlong value is dropped');
});

test('quantiles from cumulative buckets, as histogram_quantile computes them', () => {
  const b = [
    { le: 0.001, value: 50 },
    { le: 0.01, value: 90 },
    { le: 0.1, value: 100 },
    { le: Infinity, value: 100 },
  ];
  assert.equal(quantileAt(0.5, b), 0.001);
  assert.ok(Math.abs(quantileAt(0.9, b)! - 0.01) < 1e-12);
  assert.ok(Math.abs(quantileAt(0.95, b)! - 0.055) < 1e-12);
  assert.equal(quantileAt(0.99, [{ le: 1, value: 1 }, { le: Infinity, value: 10 }]), 1, 'in +Inf: the highest finite bound');
  assert.equal(quantileAt(0.5, [{ le: Infinity, value: 0 }]), null, 'no observation: no quantile');
  const s = quantileSeries(0.5, [
    { le: '0.5', points: [[10, 1], [20, 0]] },
    { le: '+Inf', points: [[10, 2], [20, 0]] },
    { le: 'bogus', points: [[10, 5]] },
  ]);
  assert.deepEqual(s, [[10, 0.5], [20, null]]);
});

test('a workload entry links to its workload, else its pod, else its node\'s cgroup', () => {
  const e = { namespace: 'shop', workload_kind: 'Deployment', workload: 'cart', pod: 'cart-1', node: 'n1', cgroup: '/kubepods/x' };
  assert.deepEqual(entryParams(e), { level: 'workload', namespace: 'shop', kind: 'Deployment', workload: 'cart' });
  assert.deepEqual(entryParams(e, 'pod'), { level: 'pod', namespace: 'shop', pod: 'cart-1' });
  assert.deepEqual(entryParams({ ...e, workload: '', pod: '' }), { level: 'container', node: 'n1', cgroup: '/kubepods/x' });
  assert.equal(entryName({ ...e, workload: '' }), 'shop/cart-1');
  assert.deepEqual(pageFilters({ level: 'container', node: 'n1', cgroup: '/a' }), { node: 'n1', cgroup: '/a' });
});

test('an edge\'s requests: totals over its protocols, and the share that failed', () => {
  const stats = (requests: number, errors: number, rate: number) => ({ requests, errors, client_errors: 0, rate, p50_seconds: null, p99_seconds: null, side: 'client' as const });
  const edge = { requests: { http: stats(100, 6, 1), grpc: stats(10, 2, 0.1) } };
  assert.deepEqual(requestTotals(edge), { requests: 110, rate: 1.1, errors: 8 });
  assert.equal(errorRatio(edge), 8 / 110);
  assert.equal(errorRatio({ requests: {} }), 0, 'no requests, nothing failing');
  assert.equal(errorRatio({ requests: { redis: stats(3, 3, 0.01) } }), 1, 'every request failed');
});
