import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OTHER_ROUTE, RouteSet, splitTarget, templatePath } from './route.js';

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
