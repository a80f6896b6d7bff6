import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readCString, readI64, readU64, sumValues, u64Codec, encode, decode } from './codec.js';

test('reads 64-bit integers exactly up to 2^53', () => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(2n ** 53n - 1n);
  assert.equal(readU64(new DataView(b.buffer, b.byteOffset, 8), 0), 2 ** 53 - 1);
  b.writeBigInt64LE(-5n);
  assert.equal(readI64(new DataView(b.buffer, b.byteOffset, 8), 0), -5);
  assert.equal(decode(u64Codec, encode(u64Codec, 123456789012)), 123456789012);
});

test('reads C strings up to the first NUL or the end of the array', () => {
  const b = Buffer.from('abc\0def\0');
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  assert.equal(readCString(v, 0, 8), 'abc');
  assert.equal(readCString(v, 4, 3), 'def');
  assert.equal(readCString(v, 4, 2), 'de');
});

test('sums per-CPU values field by field', () => {
  const a = { n: 1, slots: [1, 2], inner: { x: 5 }, name: 'first' };
  const b = { n: 2, slots: [10, 20], inner: { x: 1 }, name: 'second' };
  assert.deepEqual(sumValues(a, b), { n: 3, slots: [11, 22], inner: { x: 6 }, name: 'first' });
});
