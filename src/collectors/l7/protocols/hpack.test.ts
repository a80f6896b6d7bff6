import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HpackDecoder, type HeaderField } from './hpack.js';
import { huffmanCode, huffmanDecode, huffmanEncode } from './huffman.js';

/** The RFC's examples are written as hex in groups; spaces are ignored. */
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
const f = (name: string, value: string): HeaderField => ({ name, value });

test('the Huffman code is the one listed in RFC 7541 Appendix B', () => {
  const listed: [number, number, number][] = [
    [0, 0x1ff8, 13], [1, 0x7fffd8, 23], [9, 0xffffea, 24], [10, 0x3ffffffc, 30], [32, 0x14, 6], [48, 0x0, 5],
    [58, 0x5c, 7], [88, 0xfc, 8], [92, 0x7fff0, 19], [97, 0x3, 5], [122, 0x7b, 7], [124, 0x7fc, 11], [127, 0xffffffc, 28],
    [128, 0xfffe6, 20], [200, 0x3ffffe2, 26], [254, 0x7fffff0, 27], [255, 0x3ffffee, 26], [256, 0x3fffffff, 30],
  ];
  for (const [symbol, code, length] of listed) assert.deepEqual(huffmanCode(symbol), { code, length }, `symbol ${symbol}`);
  const all = Array.from({ length: 257 }, (_, i) => huffmanCode(i));
  assert.ok(all.every((c) => c !== undefined), 'every symbol has a code');
  // a complete prefix code: the Kraft sum is exactly 1
  assert.equal(all.reduce((s, c) => s + 2 ** -(c?.length ?? 0), 0), 1);
});

test('Huffman round-trips every byte value, and rejects EOS, long padding and padding of zeros', () => {
  const every = Uint8Array.from({ length: 256 }, (_, i) => i);
  assert.deepEqual(huffmanDecode(huffmanEncode(every)), every);
  assert.equal(huffmanDecode(hex('ffffffff')), undefined); // EOS then ones
  assert.equal(huffmanDecode(hex('1fff')), undefined); // 'a'-less: 00011111 11111111 = 'a' + 11 bits of padding
  assert.equal(huffmanDecode(hex('00')), undefined); // '0' then 000 padding
  assert.deepEqual(huffmanDecode(hex('1f')), Uint8Array.from([0x61])); // 'a' + 111
});

const C3_FIRST = [f(':method', 'GET'), f(':scheme', 'http'), f(':path', '/'), f(':authority', 'www.example.com')];
const C3_SECOND = [...C3_FIRST, f('cache-control', 'no-cache')];
const C3_THIRD = [f(':method', 'GET'), f(':scheme', 'https'), f(':path', '/index.html'), f(':authority', 'www.example.com'), f('custom-key', 'custom-value')];

function decodeAll(decoder: HpackDecoder, blocks: string[]): { fields: HeaderField[]; size: number }[] {
  return blocks.map((b) => {
    const d = decoder.decode(hex(b));
    assert.equal(d.failed, false);
    assert.equal(d.unknown, 0);
    return { fields: d.fields, size: decoder.dynamicSize };
  });
}

test('RFC 7541 C.3: requests without Huffman coding share one dynamic table', () => {
  const got = decodeAll(new HpackDecoder(), [
    '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
    '8286 84be 5808 6e6f 2d63 6163 6865',
    '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
  ]);
  assert.deepEqual(got, [
    { fields: C3_FIRST, size: 57 },
    { fields: C3_SECOND, size: 110 },
    { fields: C3_THIRD, size: 164 },
  ]);
});

test('RFC 7541 C.4: the same requests with Huffman coding', () => {
  const got = decodeAll(new HpackDecoder(), [
    '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
    '8286 84be 5886 a8eb 1064 9cbf',
    '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
  ]);
  assert.deepEqual(got, [
    { fields: C3_FIRST, size: 57 },
    { fields: C3_SECOND, size: 110 },
    { fields: C3_THIRD, size: 164 },
  ]);
});

const DATE1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const LOCATION = 'https://www.example.com';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const C5 = [
  { fields: [f(':status', '302'), f('cache-control', 'private'), f('date', DATE1), f('location', LOCATION)], size: 222 },
  { fields: [f(':status', '307'), f('cache-control', 'private'), f('date', DATE1), f('location', LOCATION)], size: 222 },
  {
    fields: [f(':status', '200'), f('cache-control', 'private'), f('date', DATE2), f('location', LOCATION), f('content-encoding', 'gzip'), f('set-cookie', COOKIE)],
    size: 215,
  },
];

test('RFC 7541 C.5: responses without Huffman coding evict from a 256-octet table', () => {
  const got = decodeAll(new HpackDecoder(256), [
    `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474
     7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d`,
    '4803 3330 37c1 c0bf',
    `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a
     4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31`,
  ]);
  assert.deepEqual(got, C5);
});

test('RFC 7541 C.6: responses with Huffman coding', () => {
  const got = decodeAll(new HpackDecoder(256), [
    `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae
     82ae 43d3`,
    '4883 640e ffc1 c0bf',
    `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960
     d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
  ]);
  assert.deepEqual(got, C5);
});

test('a decoder that never saw an entry says the field is unknown and distrusts its table from then on', () => {
  const d = new HpackDecoder();
  // joined mid-stream: C.3's second block refers to index 62 (:authority) it never saw
  const second = d.decode(hex('8286 84be 5808 6e6f 2d63 6163 6865'));
  assert.deepEqual(second.fields, [f(':method', 'GET'), f(':scheme', 'http'), f(':path', '/'), f('cache-control', 'no-cache')]);
  assert.equal(second.unknown, 1);
  assert.equal(d.reliable, false);
  // the third refers to index 63, which this decoder did insert (cache-control), but it no longer trusts positions
  const third = d.decode(hex('8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65'));
  assert.equal(third.unknown, 1);
  assert.ok(!third.fields.some((x) => x.name === ':authority'));
  // a static-only response still decodes: :status 200 is static index 8
  assert.deepEqual(new HpackDecoder().decode(hex('88')).fields, [f(':status', '200')]);
});

test('a cut or malformed block fails without throwing and distrusts the table', () => {
  const d = new HpackDecoder();
  const cut = d.decode(hex('8286 8441 0f77 7777 2e65'));
  assert.equal(cut.failed, true);
  assert.equal(d.reliable, false);
  for (const bad of ['80', 'ff ff ff ff ff ff ff 7f', '3f ff ff ff ff 0f', '41 ff ff ff ff 0f']) assert.equal(new HpackDecoder().decode(hex(bad)).failed, true);
  // a size update the peer may announce is bounded by the decoder's memory limit
  const big = new HpackDecoder(4096, 1024);
  big.decode(hex('3fe1 1f')); // size update to 4096
  assert.ok(big.dynamicSize <= 1024);
});
