import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LruMap } from './lru.js';
import { rng } from './test-util.js';

/** The order the connection tables kept before: a Map re-inserted at each use. */
class MapInUseOrder<K, V> {
  readonly map = new Map<K, V>();
  use(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
}

test('an LRU map keeps the order a Map re-inserted at each use keeps, through uses, sets, deletes and evictions', () => {
  const random = rng(17);
  const lru = new LruMap<bigint, number>();
  const ref = new MapInUseOrder<bigint, number>();
  for (let i = 0; i < 20000; i++) {
    const k = BigInt(Math.floor(random() * 40));
    const op = random();
    if (op < 0.5) assert.equal(lru.use(k), ref.use(k));
    else if (op < 0.7) {
      lru.set(k, i);
      ref.map.delete(k);
      ref.map.set(k, i);
    } else if (op < 0.85) assert.equal(lru.delete(k), ref.map.delete(k));
    else if (op < 0.9 && lru.size > 0) {
      const [oldest] = lru.oldest()!;
      assert.equal(oldest, ref.map.keys().next().value);
      lru.delete(oldest);
      ref.map.delete(oldest);
    } else assert.equal(lru.get(k), ref.map.get(k));
    assert.equal(lru.size, ref.map.size);
  }
  assert.deepEqual([...lru], [...ref.map]);
});

test('an LRU map can delete the entry its iteration stands on, as a sweep does', () => {
  const lru = new LruMap<number, string>();
  for (let i = 0; i < 10; i++) lru.set(i, `v${i}`);
  lru.use(3);
  const seen: number[] = [];
  for (const [k] of lru) {
    seen.push(k);
    if (k % 2 === 0) lru.delete(k);
  }
  assert.deepEqual(seen, [0, 1, 2, 4, 5, 6, 7, 8, 9, 3]);
  assert.deepEqual([...lru].map(([k]) => k), [1, 5, 7, 9, 3]);
  assert.equal(lru.oldest()![0], 1);
  for (const [k] of lru) lru.delete(k);
  assert.equal(lru.size, 0);
  assert.equal(lru.oldest(), undefined);
});
