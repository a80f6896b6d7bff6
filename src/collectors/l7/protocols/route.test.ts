import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIdSegment, OTHER_ROUTE, RouteSet, splitTarget, templatePath } from './route.js';
import { rng } from './test-util.js';

test('ids in paths become {id}: numbers, UUIDs, long hex, random tokens; names stay', () => {
  const cases: [string, string][] = [
    ['/users/123', '/users/{id}'],
    ['/users/123/orders/9f8e7d6c', '/users/{id}/orders/{id}'],
    ['/objects/3fa85f64-5717-4562-b3fc-2c963f66afa6', '/objects/{id}'],
    ['/blobs/sha256:abc', '/blobs/sha256:abc'],
    ['/commits/4b825dc642cb6eb9a060e54bf8d69288fbee4904', '/commits/{id}'],
    ['/s/aZ3kQ9xL2mN8pR4tV6wY', '/s/{id}'],
    ['/api/v2/healthz', '/api/v2/healthz'],
    ['/user-profile/settings', '/user-profile/settings'],
    ['/deadbeef', '/deadbeef'], // hex-looking but no digit: a word
    ['/', '/'],
    ['*', '*'],
  ];
  for (const [path, route] of cases) assert.equal(templatePath(path), route, path);
});

test('a request target loses its query and fragment; an absolute URI gives its authority', () => {
  assert.deepEqual(splitTarget('/search?q=secret#top'), { path: '/search' });
  assert.deepEqual(splitTarget('http://example.com:8080/a/b?x=1'), { path: '/a/b', authority: 'example.com:8080' });
  assert.deepEqual(splitTarget('http://example.com'), { path: '/', authority: 'example.com' });
});

test('a route set keeps at most its maximum and folds the rest into other, counted', () => {
  const routes = new RouteSet(3);
  assert.deepEqual(['/a', '/b', '/a', '/c', '/d', '/e', '/b'].map((r) => routes.admit(r)), ['/a', '/b', '/a', '/c', OTHER_ROUTE, OTHER_ROUTE, '/b']);
  assert.equal(routes.folded, 2);
  assert.equal(routes.size, 3);
});

/** The patterns the segment classifier stands for, as the header of route.ts states them. */
const PATTERNS = [/^-?\d+$/, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, /^(?=.*\d)[0-9a-f]{8,}$/i, /^(?=.*\d)(?=.*[a-z])[\w\-=.~%]{16,}$/i];
const byPatterns = (seg: string): boolean => seg.length > 64 || PATTERNS.some((p) => p.test(seg));

test('the segment classifier says what the id patterns say, on every kind of segment', () => {
  const fixed = ['', '-', '-1', '1-', '--1', '12', 'abc', 'deadbeef', 'deadbee1', 'DEADBEE1', 'abcdefab-abcd-abcd-abcd-abcdefabcdef', '3FA85F64-5717-4562-B3FC-2C963F66AFA6',
    '3fa85f64-5717-4562-b3fc-2c963f66afa', 'aZ3kQ9xL2mN8pR4t', 'aZ3kQ9xL2mN8pR4', 'aaaaaaaaaaaaaaaaaaaa', '1111111111111111111_', 'a%2F1~=.-_bbbbbbbb', 'é1aaaaaaaaaaaaaaaa',
    'x'.repeat(64), 'x'.repeat(65), 'ſ1aaaaaaaaaaaaaaaaa', 'K1aaaaaaaaaaaaaaaaa'];
  for (const seg of fixed) assert.equal(isIdSegment(seg), byPatterns(seg), JSON.stringify(seg));
  const random = rng(3);
  const alphabet = '0123456789abcdefABCDEFxyzXYZ-_=.~%:é?';
  for (let i = 0; i < 50000; i++) {
    const n = [1, 2, 8, 9, 15, 16, 17, 36, 64, 65][Math.floor(random() * 10)]!;
    let seg = '';
    for (let j = 0; j < n; j++) seg += random() < 0.1 && (j === 8 || j === 13 || j === 18 || j === 23) ? '-' : alphabet[Math.floor(random() * (random() < 0.5 ? 16 : alphabet.length))];
    assert.equal(isIdSegment(seg), byPatterns(seg), JSON.stringify(seg));
  }
});

/** Templates as split and join make them (what templatePath did before it scanned in place). */
function splitTemplate(path: string, maxSegments = 16): string {
  if (!path.startsWith('/')) return path === '*' ? '*' : OTHER_ROUTE;
  const out: string[] = [];
  const segs = path.split('/');
  for (let i = 0; i < segs.length; i++) {
    if (i > maxSegments) {
      out.push('…');
      break;
    }
    out.push(segs[i] !== '' && byPatterns(segs[i]!) ? '{id}' : segs[i]!);
  }
  return out.join('/');
}

test('a template is the path itself without ids, and cut after its maximum of segments, as split and join made it', () => {
  const path = '/a/b/c';
  assert.equal(templatePath(path), path);
  for (const [p, max] of [['/a//b/', 16], ['/1/a/2/', 16], ['/a/b/c/d/e', 3], ['/a/1/c/d/e', 3], ['/a/1/c', 3], ['/a/b/c/4', 3], ['/a/b/4', 3], ['/', 0], ['/1', 0], ['/1', 1], ['x', 3]] as const) {
    assert.equal(templatePath(p, max), splitTemplate(p, max), `${p} ${max}`);
  }
  const random = rng(9);
  const parts = ['', 'a', 'users', '42', 'deadbeef1', 'v2', '3fa85f64-5717-4562-b3fc-2c963f66afa6', 'aZ3kQ9xL2mN8pR4tV6wY'];
  for (let i = 0; i < 5000; i++) {
    const n = Math.floor(random() * 22);
    let p = '';
    for (let j = 0; j < n; j++) p += `/${parts[Math.floor(random() * parts.length)]}`;
    const max = random() < 0.5 ? 16 : Math.floor(random() * 6);
    assert.equal(templatePath(p || '/', max), splitTemplate(p || '/', max), `${p} ${max}`);
  }
  assert.deepEqual(splitTarget('/a?'), { path: '/a' });
  assert.deepEqual(splitTarget('/a#b?c'), { path: '/a' });
});
