import { test } from 'node:test';
import assert from 'node:assert/strict';
import { classify, roleFrom } from './classify.js';
import { FLAG, FRAME, PREFACE } from './http2.js';
import { bytes, h2frame } from './test-util.js';

const int32 = (n: number): number[] => [(n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];

test('each protocol is told from its first bytes, with the side that sent them', () => {
  const cases: [string, Uint8Array, string, string | undefined][] = [
    ['h2 preface', bytes(PREFACE, h2frame(FRAME.SETTINGS, 0, 0)), 'http2', 'client'],
    ['h1 request', bytes('GET /index.html HTTP/1.1\r\nHost: a\r\n\r\n'), 'http1', 'client'],
    ['h1 request cut at 16 bytes', bytes('POST /api/v1/ord'), 'http1', 'client'],
    ['h1 response', bytes('HTTP/1.1 404 Not Found\r\n'), 'http1', 'server'],
    ['pg startup', bytes(int32(41), int32(196608), 'user\0app\0database\0shop\0\0'), 'postgres', 'client'],
    ['pg SSLRequest', bytes(int32(8), int32(80877103)), 'postgres', 'client'],
    ['pg query', bytes('Q', int32(13), 'SELECT 1\0'), 'postgres', 'client'],
    ['pg parse cut', bytes('P', int32(200), 'stmt\0SELECT a FROM'), 'postgres', 'client'],
    ['pg ready', bytes('Z', int32(5), 'I'), 'postgres', 'server'],
    ['pg auth ok', bytes('R', int32(8), int32(0), 'S', int32(22)), 'postgres', 'server'],
    ['redis command', bytes('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n'), 'redis', 'client'],
    ['redis inline', bytes('PING\r\n'), 'redis', 'client'],
    ['redis ok', bytes('+OK\r\n'), 'redis', 'server'],
    ['redis hello map', bytes('%7\r\n$6\r\nserver\r\n'), 'redis', 'server'],
    ['redis error', bytes('-WRONGTYPE Operation against a key\r\n'), 'redis', 'server'],
    ['h2 mid-stream response', h2frame(FRAME.HEADERS, FLAG.END_HEADERS, 7, [0x88]), 'http2', 'server'],
    ['h2 mid-stream request', h2frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 9, [0x82, 0x86, 0x84]), 'http2', 'client'],
    ['h2 server preface first (grpcio)', bytes(h2frame(FRAME.SETTINGS, 0, 0, [0, 3, 0, 0, 0, 100]), h2frame(FRAME.WINDOW_UPDATE, 0, 0, int32(100))), 'http2', 'server'],
    ['h2 mid-stream settings ack', h2frame(FRAME.SETTINGS, FLAG.ACK, 0), 'http2', undefined],
    ['h2 mid-stream data', bytes(h2frame(FRAME.DATA, 0, 3, 'abc'), h2frame(FRAME.WINDOW_UPDATE, 0, 0, int32(100))), 'http2', undefined],
    ['TLS client hello', bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), 'unknown', undefined],
    ['SSH', bytes('SSH-2.0-OpenSSH_9.2p1 Debian\r\n'), 'unknown', undefined],
    ['POP3 greeting', bytes('+OK POP3 server ready\r\n'), 'unknown', undefined],
    ['SMTP greeting', bytes('220 mail.example ESMTP\r\n'), 'unknown', undefined],
    ['text', bytes('hello world, this is not a protocol'), 'unknown', undefined],
    ['empty', bytes(), 'unknown', undefined],
  ];
  for (const [name, b, protocol, sender] of cases) assert.deepEqual(classify(b), sender ? { protocol, sender } : { protocol }, name);
});

test('the traced process is the client when it sent a client’s bytes or received a server’s', () => {
  assert.equal(roleFrom('egress', 'client'), 'client');
  assert.equal(roleFrom('ingress', 'server'), 'client');
  assert.equal(roleFrom('ingress', 'client'), 'server');
  assert.equal(roleFrom('egress', 'server'), 'server');
});
